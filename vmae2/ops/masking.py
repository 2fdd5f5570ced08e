"""Encoder and decoder masks as fixed-size index arrays, made inside the jitted step.

Official: dataset/masking_generator.py (TubeMaskingGenerator,
RunningCellMaskingGenerator, RandomMaskingGenerator) and the V1 fallback in
dataset/pretrain_datasets.py; spec section 2. The official masks are boolean
(1 = masked); here each mask is the ascending list of the token indices that are
kept (encoder: visible; decoder: positions that get a mask token), which gives
static shapes and the same token order as the official boolean indexing.
Tokens are indexed t-major: idx = t * H' * W' + h * W' + w.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from vmae2.errors import ConfigError

ENCODER_MASK_TYPES = ('tube', 'random')
DECODER_MASK_TYPES = ('run_cell', 'none')
RUN_CELL_RATIOS = (0.25, 0.5, 0.75)


@dataclasses.dataclass(frozen=True)
class MaskSpec:
    """Static description of the dual masks.

    Attributes:
      grid: token grid (T', H', W').
      mask_type: 'tube' (official) or 'random' (ablation).
      mask_ratio: encoder mask ratio (0.9 officially).
      decoder_mask_type: 'run_cell', or 'none' for the V1 decoder.
      decoder_mask_ratio: 0.25, 0.5 or 0.75 for run_cell; 0 means V1 mode (mask
        tokens exactly at the encoder-masked positions), as the official argparse
        default.
    """

    grid: tuple[int, int, int]
    mask_type: str = 'tube'
    mask_ratio: float = 0.9
    decoder_mask_type: str = 'run_cell'
    decoder_mask_ratio: float = 0.5

    def __post_init__(self):
        validate(self)

    @property
    def num_tokens(self) -> int:
        t, h, w = self.grid
        return t * h * w

    @property
    def num_visible(self) -> int:
        """Encoder-visible tokens: tube keeps HW - int(ratio*HW) per slice (160 for B)."""
        t, h, w = self.grid
        if self.mask_type == 'tube':
            return t * (h * w - int(self.mask_ratio * h * w))
        return self.num_tokens - int(self.mask_ratio * self.num_tokens)

    @property
    def v1_decoder(self) -> bool:
        return self.decoder_mask_type == 'none' or self.decoder_mask_ratio == 0

    @property
    def num_decode(self) -> int:
        """Mask tokens given to the decoder (784 for B with run_cell 0.5)."""
        if self.v1_decoder:
            return self.num_tokens - self.num_visible
        masked_per_cell = int(4 * self.decoder_mask_ratio)
        return self.num_tokens * (4 - masked_per_cell) // 4


def validate(spec: MaskSpec) -> None:
    """Raises ConfigError naming the setting that cannot work and what would."""
    t, h, w = spec.grid
    if spec.mask_type not in ENCODER_MASK_TYPES:
        raise ConfigError(f'mask_type {spec.mask_type!r}: choose one of {ENCODER_MASK_TYPES}')
    if spec.decoder_mask_type not in DECODER_MASK_TYPES:
        raise ConfigError(
            f'decoder_mask_type {spec.decoder_mask_type!r}: choose one of {DECODER_MASK_TYPES}'
        )
    if not 0.0 <= spec.mask_ratio < 1.0:
        raise ConfigError(f'mask_ratio {spec.mask_ratio}: must be in [0, 1)')
    if spec.num_visible < 1:
        raise ConfigError(
            f'mask_ratio {spec.mask_ratio} leaves no visible token on a {t}x{h}x{w} grid; lower it'
        )
    if spec.decoder_mask_type == 'run_cell' and spec.decoder_mask_ratio != 0:
        if spec.decoder_mask_ratio not in RUN_CELL_RATIOS:
            raise ConfigError(
                f'decoder_mask_ratio {spec.decoder_mask_ratio}: running-cell masking supports '
                f'{", ".join(map(str, RUN_CELL_RATIOS))} (or 0 for the V1 decoder)'
            )
        if h % 2 or w % 2:
            raise ConfigError(
                f'running-cell masking tiles 2x2 cells and needs an even token grid, got '
                f'{h}x{w}; choose input_size / patch_size even'
            )


@functools.lru_cache(maxsize=16)
def running_cell_table(grid: tuple[int, int, int], ratio: float) -> np.ndarray:
    """Decoder keep-indices for the 4 running-cell phases: int32 [4, n_decode].

    Closed form of RunningCellMaskingGenerator (spec 2.2): token (t, h, w) is
    dropped from the decoder iff ((2*(h%2) + (w%2) + k + t + 1) mod 4) < int(4*ratio),
    with phase k in {0, 1, 2, 3}.
    """
    t, h, w = np.meshgrid(*(np.arange(n) for n in grid), indexing='ij')
    m = int(4 * ratio)
    rows = []
    for k in range(4):
        dropped = ((2 * (h % 2) + (w % 2) + k + t + 1) % 4) < m
        rows.append(np.flatnonzero(~dropped.reshape(-1)))
    return np.stack(rows).astype(np.int32)


def _ascending_first_k(scores: jax.Array, k: int) -> jax.Array:
    """Indices of the k smallest scores per row, returned in ascending index order."""
    idx = jnp.argsort(scores, axis=-1)[..., :k]
    return jnp.sort(idx, axis=-1).astype(jnp.int32)


def encoder_visible(rng: jax.Array, spec: MaskSpec, batch: int) -> jax.Array:
    """Encoder-visible token indices: int32 [batch, num_visible], ascending.

    tube: one spatial permutation per clip, the same HW - int(ratio*HW) visible
    positions in every temporal slice. random: a global permutation of all tokens.
    """
    t, h, w = spec.grid
    if spec.mask_type == 'tube':
        keep = h * w - int(spec.mask_ratio * h * w)
        spatial = _ascending_first_k(jax.random.uniform(rng, (batch, h * w)), keep)
        offsets = (jnp.arange(t, dtype=jnp.int32) * h * w)[None, :, None]
        return (offsets + spatial[:, None, :]).reshape(batch, t * keep)
    scores = jax.random.uniform(rng, (batch, spec.num_tokens))
    return _ascending_first_k(scores, spec.num_visible)


def encoder_masked(visible: jax.Array, num_tokens: int) -> jax.Array:
    """0/1 float32 [batch, num_tokens]: 1 where the encoder did not see the token."""
    b = visible.shape[0]
    seen = jnp.zeros((b, num_tokens), jnp.float32)
    seen = seen.at[jnp.arange(b)[:, None], visible].set(1.0)
    return 1.0 - seen


def decoder_positions(rng: jax.Array, spec: MaskSpec, visible: jax.Array) -> jax.Array:
    """Positions that get a mask token: int32 [batch, num_decode], ascending.

    run_cell: one of the 4 precomputed phases per clip, chosen uniformly
    (independent of the encoder mask). V1 mode: the encoder-masked positions.
    """
    b = visible.shape[0]
    if spec.v1_decoder:
        masked = encoder_masked(visible, spec.num_tokens)
        # Masked tokens sort first (score 0); a stable sort keeps index order.
        order = jnp.argsort(1.0 - masked, axis=-1, stable=True)[:, : spec.num_decode]
        return jnp.sort(order, axis=-1).astype(jnp.int32)
    table = jnp.asarray(running_cell_table(spec.grid, spec.decoder_mask_ratio))
    phase = jax.random.randint(rng, (b,), 0, 4)
    return table[phase]


def sample_masks(rng: jax.Array, spec: MaskSpec, batch: int):
    """Both masks and the loss weight for one batch.

    Returns:
      visible_idx int32 [batch, num_visible], decode_idx int32 [batch, num_decode],
      loss_weight float32 [batch, num_decode]: 1 where the decoded token was
      encoder-masked (the official `cal_loss_mask`), else 0.
    """
    enc_rng, dec_rng = jax.random.split(rng)
    visible = encoder_visible(enc_rng, spec, batch)
    decode = decoder_positions(dec_rng, spec, visible)
    weight = jnp.take_along_axis(encoder_masked(visible, spec.num_tokens), decode, axis=1)
    return visible, decode, weight
