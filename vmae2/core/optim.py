"""Optimiser and schedule: AdamW, per-step warmup + cosine, no-decay set, layer decay.

Official: utils.cosine_scheduler, optim_factory.get_parameter_groups and
LayerDecayValueAssigner, run_mae_pretraining.py / run_class_finetuning.py
(spec 4.1, 5.1).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import optax

from vmae2.errors import ConfigError

# Official no_weight_decay(): {'pos_embed', 'cls_token'} (+ 'mask_token' for the
# pre-training model). pos_embed and cls_token are not parameters here.
NO_DECAY_NAMES = ('mask_token', 'pos_embed', 'cls_token')


def scaled_lr(base_lr: float, global_batch: int) -> float:
    """lr = base_lr * global_batch / 256, global_batch counting videos, not the
    num_sample clips per video (official run_mae_pretraining.py, spec 4.1)."""
    return base_lr * global_batch / 256.0


def cosine_schedule(peak: float, final: float, total_steps: int, warmup_steps: int):
    """Official utils.cosine_scheduler, evaluated per step.

    Warmup: np.linspace(0, peak, warmup_steps) (starts at 0, inclusive endpoint);
    then final + 0.5 (peak - final)(1 + cos(pi * i / n_cos)), i = 0..n_cos-1 with
    n_cos = total_steps - warmup_steps. Steps past the end keep the last value.

    Raises:
      ConfigError: if warmup_steps > total_steps or total_steps < 1.
    """
    if total_steps < 1 or not 0 <= warmup_steps <= total_steps:
        raise ConfigError(
            f'schedule needs 0 <= warmup_steps ({warmup_steps}) <= '
            f'total_steps ({total_steps}) and total_steps >= 1'
        )
    n_cos = total_steps - warmup_steps

    def schedule(step):
        step = jnp.minimum(jnp.asarray(step, jnp.float32), total_steps - 1)
        warm = peak * step / max(warmup_steps - 1, 1)
        i = step - warmup_steps
        cos = final + 0.5 * (peak - final) * (1 + jnp.cos(jnp.pi * i / max(n_cos, 1)))
        return jnp.where(step < warmup_steps, warm, cos)

    return schedule


def _path_name(path) -> str:
    return '.'.join(str(getattr(k, 'key', getattr(k, 'idx', k))) for k in path)


def decay_mask(params) -> Any:
    """True where weight decay applies: not 1-D, not a bias, not in NO_DECAY_NAMES.

    The official rule: `len(param.shape) == 1 or name.endswith('.bias')` or a
    name in no_weight_decay() gets no decay (optim_factory.get_parameter_groups).
    """

    def rule(path, x):
        name = _path_name(path)
        last = name.rsplit('.', 1)[-1]
        return not (x.ndim <= 1 or last == 'bias' or last in NO_DECAY_NAMES)

    return jax.tree_util.tree_map_with_path(rule, params)


def layer_id(name: str, depth: int) -> int:
    """Official LayerDecayValueAssigner ids: patch embedding 0, block i -> i+1,
    everything else depth+1 (spec 5.1). `name` is a dotted parameter path."""
    if re.search(r'(^|\.)(patch_embed|pos_embed|cls_token|mask_token)(\.|$)', name):
        return 0
    m = re.search(r'(^|\.)blocks\.(\d+)\.', name)
    if m:
        return int(m.group(2)) + 1
    return depth + 1


def layer_decay_scales(params, depth: int, layer_decay: float):
    """Per-parameter lr scale layer_decay ** (depth + 1 - layer_id)."""
    return jax.tree_util.tree_map_with_path(
        lambda p, _: layer_decay ** (depth + 1 - layer_id(_path_name(p), depth)), params
    )


def make_optimizer(
    params,
    *,
    schedule,
    weight_decay: float,
    b1: float,
    b2: float,
    eps: float = 1e-8,
    clip_grad: float | None = None,
    lr_scales: Mapping | None = None,
) -> optax.GradientTransformation:
    """AdamW with the no-decay mask, optional global-norm clipping and layer decay.

    The update is -lr * scale * (adam + wd * param), which equals the official
    per-group lr of lr * lr_scale (torch AdamW's decoupled decay uses the group lr).
    """
    parts = []
    if clip_grad:
        parts.append(optax.clip_by_global_norm(clip_grad))
    parts.append(
        optax.adamw(
            schedule, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay, mask=decay_mask(params)
        )
    )
    if lr_scales is not None:
        parts.append(_scale_by_tree(lr_scales))
    return optax.chain(*parts)


def _scale_by_tree(scales) -> optax.GradientTransformation:
    def init(params):
        del params
        return optax.EmptyState()

    def update(updates, state, params=None):
        del params
        return jax.tree.map(lambda u, s: u * s, updates, scales), state

    return optax.GradientTransformation(init, update)


@dataclasses.dataclass(frozen=True)
class Schedule:
    """The learning-rate schedule of a run and the numbers it came from."""

    fn: Callable[[Any], jax.Array]
    total_steps: int
    warmup_steps: int
    peak_lr: float


def schedule_from_config(cfg, steps_per_epoch: int) -> Schedule:
    """config.optim -> the official per-step schedule, lr scaled by cfg.batch_size / 256.

    optim.total_steps / warmup_steps (when set) override epochs / warmup_epochs
    times `steps_per_epoch`.

    Raises:
      ConfigError: no training steps.
    """
    o = cfg.optim
    total = o.total_steps if o.total_steps > 0 else o.epochs * steps_per_epoch
    warmup = o.warmup_steps if o.warmup_steps >= 0 else o.warmup_epochs * steps_per_epoch
    if total < 1:
        raise ConfigError(
            f'no training steps: {steps_per_epoch} steps per epoch x {o.epochs} epochs; '
            'add videos, lower batch_size or set optim.total_steps'
        )
    peak = scaled_lr(o.base_lr, cfg.batch_size)
    final = scaled_lr(o.min_lr, cfg.batch_size)
    warmup = min(warmup, total)
    return Schedule(cosine_schedule(peak, final, total, warmup), total, warmup, peak)


def optimizer_from_config(cfg, schedule: Schedule, params, depth: int):
    """AdamW of config.optim on `params` (arrays or shapes): the no-decay set, optional
    clipping, and layer decay (spec 5.1) when optim.layer_decay < 1."""
    o = cfg.optim
    layer_decay = o.get('layer_decay', 1.0)
    scales = layer_decay_scales(params, depth, layer_decay) if layer_decay < 1 else None
    return make_optimizer(
        params, schedule=schedule.fn, weight_decay=o.weight_decay, b1=o.b1, b2=o.b2, eps=o.eps,
        clip_grad=o.clip_grad or None, lr_scales=scales,
    )
