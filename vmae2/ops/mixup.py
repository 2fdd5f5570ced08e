"""Device-side fine-tuning augmentation: random-erasing fill and batch mixup/cutmix.

Pure jax, jit-able. Official sources (spec 5.2):

* random erasing: ``dataset/random_erasing.py`` ``RandomErasing(mode='pixel',
  cube=True)``; the box is drawn by the data pipeline
  (``finetune_transforms.sample_erase_box``), the noise here.
* mixup / cutmix: timm 0.4.12 ``timm/data/mixup.py`` ``Mixup(mode='batch')``
  as called by ``engine_for_finetuning.train_one_epoch`` on
  ``samples.view(B, C*T, H, W)`` (so the cutmix box is shared by all frames).

Difference on purpose: the official Mixup runs per GPU (one lambda per GPU batch,
each GPU batch mixed with its own flip); here one lambda and one box are drawn
per global batch and the global batch is mixed with its flip ``x[::-1]``.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from vmae2.ops import targets


@dataclasses.dataclass(frozen=True)
class MixupConfig:
    """timm Mixup arguments (official defaults, spec 5.1).

    Attributes:
      mixup_alpha: Beta(alpha, alpha) for mixup (0.8); 0 disables mixup.
      cutmix_alpha: Beta(alpha, alpha) for cutmix (1.0); 0 disables cutmix.
      prob: probability that a batch is mixed at all (``--mixup_prob`` 1.0).
      switch_prob: probability of cutmix when both are enabled (0.5).
      label_smoothing: folded into the one-hot targets (``--smoothing`` 0.1).
    """

    mixup_alpha: float = 0.8
    cutmix_alpha: float = 1.0
    prob: float = 1.0
    switch_prob: float = 0.5
    label_smoothing: float = 0.1

    @property
    def active(self) -> bool:
        return self.prob > 0 and (self.mixup_alpha > 0 or self.cutmix_alpha > 0)


def smoothed_one_hot(labels: jax.Array, num_classes: int, smoothing: float) -> jax.Array:
    """timm ``one_hot(target, num_classes, on_value, off_value)`` with
    ``off = smoothing / num_classes``, ``on = 1 - smoothing + off``.

    Args:
      labels: int [batch].

    Returns:
      float32 [batch, num_classes], rows summing to 1.
    """
    off = smoothing / num_classes
    on = 1.0 - smoothing + off
    return jax.nn.one_hot(labels, num_classes, dtype=jnp.float32) * (on - off) + off


def cutmix_box(rng: jax.Array, height: int, width: int, lam: jax.Array):
    """timm ``rand_bbox`` + ``correct_lam=True``.

    ``cut = int(side * sqrt(1 - lam))``; centre ``cy ~ U{0..H-1}``,
    ``cx ~ U{0..W-1}``; ``y0 = clip(cy - cut_h // 2, 0, H)``,
    ``y1 = clip(cy + cut_h // 2, 0, H)`` (x likewise); the corrected lambda is
    ``1 - (y1 - y0)(x1 - x0) / (H W)``.

    Returns:
      ((y0, y1, x0, x1) int32 scalars, corrected lam float32 scalar).
    """
    ratio = jnp.sqrt(1.0 - lam)
    cut_h = jnp.floor(height * ratio).astype(jnp.int32)
    cut_w = jnp.floor(width * ratio).astype(jnp.int32)
    ky, kx = jax.random.split(rng)
    cy = jax.random.randint(ky, (), 0, height)
    cx = jax.random.randint(kx, (), 0, width)
    y0 = jnp.clip(cy - cut_h // 2, 0, height)
    y1 = jnp.clip(cy + cut_h // 2, 0, height)
    x0 = jnp.clip(cx - cut_w // 2, 0, width)
    x1 = jnp.clip(cx + cut_w // 2, 0, width)
    area = ((y1 - y0) * (x1 - x0)).astype(jnp.float32)
    return (y0, y1, x0, x1), 1.0 - area / float(height * width)


def mix_batch(
    rng: jax.Array, x: jax.Array, labels: jax.Array, num_classes: int, cfg: MixupConfig
) -> tuple[jax.Array, jax.Array, dict]:
    """timm ``Mixup(mode='batch')``: one lambda (and box) for the whole batch.

    Draws ``use_cutmix = U < switch_prob`` (when both alphas > 0), ``lam ~
    Beta(alpha)`` of the chosen kind, applied with probability ``prob`` (else
    ``lam = 1``). Mixup: ``lam x + (1 - lam) x[::-1]``. Cutmix: the box (same
    for all frames and channels) is copied from ``x[::-1]`` and ``lam`` is
    corrected to the box area. Targets: ``lam y + (1 - lam) y[::-1]`` of
    smoothed one-hots.

    Args:
      x: float [batch, frames, height, width, channels] (normalised clips).
      labels: int [batch].

    Returns:
      (mixed x, float32 soft targets [batch, num_classes] whose rows sum to 1,
      {'lam': float32 [], 'cutmix': bool []}).
    """
    y = smoothed_one_hot(labels, num_classes, cfg.label_smoothing)
    if not cfg.active:
        return x, y, {'lam': jnp.ones((), jnp.float32), 'cutmix': jnp.zeros((), bool)}
    k_switch, k_mix, k_cut, k_prob, k_box = jax.random.split(rng, 5)
    if cfg.mixup_alpha > 0 and cfg.cutmix_alpha > 0:
        use_cutmix = jax.random.uniform(k_switch) < cfg.switch_prob
    else:
        use_cutmix = jnp.asarray(cfg.cutmix_alpha > 0)
    lam_mix = (
        jax.random.beta(k_mix, cfg.mixup_alpha, cfg.mixup_alpha) if cfg.mixup_alpha > 0 else 1.0
    )
    lam_cut = (
        jax.random.beta(k_cut, cfg.cutmix_alpha, cfg.cutmix_alpha) if cfg.cutmix_alpha > 0 else 1.0
    )
    lam = jnp.where(use_cutmix, lam_cut, lam_mix).astype(jnp.float32)
    apply = jax.random.uniform(k_prob) < cfg.prob
    lam = jnp.where(apply, lam, 1.0)

    h, w = x.shape[2], x.shape[3]
    (y0, y1, x0, x1), lam_box = cutmix_box(k_box, h, w, lam)
    flipped = x[::-1]
    rows = jnp.arange(h)[:, None]
    cols = jnp.arange(w)[None, :]
    inside = (rows >= y0) & (rows < y1) & (cols >= x0) & (cols < x1)  # [H, W]
    cut_x = jnp.where(inside[None, None, :, :, None], flipped, x)
    lam_c = lam.astype(x.dtype)
    mix_x = x * lam_c + flipped * (1 - lam_c)
    cutmix_on = use_cutmix & apply
    out_x = jnp.where(cutmix_on, cut_x, mix_x)
    lam = jnp.where(cutmix_on, lam_box, lam)
    targets = y * lam + y[::-1] * (1.0 - lam)
    return out_x, targets, {'lam': lam, 'cutmix': cutmix_on}


def erase_boxes(rng: jax.Array, x: jax.Array, boxes: jax.Array) -> jax.Array:
    """Random-erasing fill (mode 'pixel', cube): each clip's box, on every frame,
    gets fresh per-pixel, per-channel N(0, 1) noise (official
    ``_erase_cube``; reference: ``finetune_transforms.apply_erasing``).

    Args:
      x: float [batch, frames, height, width, channels], normalised.
      boxes: int32 [batch, 4] = (top, left, h, w); ``h == 0`` or ``w == 0``: none.

    Returns:
      x with the boxes filled (same dtype).
    """
    h, w = x.shape[2], x.shape[3]
    top, left, bh, bw = (boxes[:, i, None, None] for i in range(4))
    rows = jnp.arange(h)[None, :, None]
    cols = jnp.arange(w)[None, None, :]
    inside = (rows >= top) & (rows < top + bh) & (cols >= left) & (cols < left + bw)
    noise = jax.random.normal(rng, x.shape, jnp.float32).astype(x.dtype)
    return jnp.where(inside[:, None, :, :, None], noise, x)


def augment_batch(
    rng: jax.Array, batch: dict, num_classes: int, cfg: MixupConfig
) -> tuple[jax.Array, jax.Array, dict]:
    """The device half of fine-tuning augmentation, in the official order (spec 5.2):
    ImageNet normalisation -> random-erasing fill of the pipeline's boxes -> mixup/cutmix.

    Args:
      batch: 'video' uint8 [batch, frames, height, width, 3], 'label' int [batch],
        'erase_box' int32 [batch, 4] (top, left, height, width; height 0: none).

    Returns:
      (x float32 [batch, frames, height, width, 3], soft targets float32
      [batch, num_classes], {'lam', 'cutmix'} as from `mix_batch`).
    """
    k_erase, k_mix = jax.random.split(rng)
    x = targets.normalize(batch['video'])
    x = erase_boxes(k_erase, x, batch['erase_box'])
    return mix_batch(k_mix, x, batch['label'], num_classes, cfg)
