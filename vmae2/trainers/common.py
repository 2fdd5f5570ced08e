"""Scaffolding shared by the trainers: specs from the config, sharded state
creation, the schedule, host batches to global arrays, the workdir."""

from __future__ import annotations

import json
import logging
import os
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx

from vmae2 import optim
from vmae2 import sharding
from vmae2.models import pretrain as pretrain_model

log = logging.getLogger('vmae2')

DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}


def compute_dtype(name: str):
    if name not in DTYPES:
        raise ValueError(f'dtype {name!r}: choose one of {sorted(DTYPES)}')
    return DTYPES[name]


def model_spec(cfg: ml_collections.ConfigDict) -> pretrain_model.PretrainSpec:
    m = cfg.model
    spec = pretrain_model.PretrainSpec(
        variant=m.variant,
        num_frames=m.num_frames,
        input_size=m.input_size,
        tubelet_size=m.tubelet_size,
        decoder_depth=m.decoder_depth,
        overrides=tuple(sorted(dict(m.overrides).items())),
    )
    p = spec.arch.patch_size
    if m.input_size % p or m.num_frames % m.tubelet_size:
        raise ValueError(
            f'input_size {m.input_size} must be a multiple of the patch size {p} and '
            f'num_frames {m.num_frames} a multiple of tubelet_size {m.tubelet_size}'
        )
    return spec


def save_config(workdir: str, cfg: ml_collections.ConfigDict) -> None:
    """Freezes the run's config as {workdir}/config.json (process 0)."""
    if jax.process_index() == 0:
        os.makedirs(workdir, exist_ok=True)
        with open(os.path.join(workdir, 'config.json'), 'w') as f:
            f.write(cfg.to_json_best_effort(indent=2))


def make_schedule(cfg: ml_collections.ConfigDict, steps_per_epoch: int):
    """(schedule, total_steps, peak_lr) from config.optim (official scaling)."""
    o = cfg.optim
    total = o.total_steps if o.total_steps > 0 else o.epochs * steps_per_epoch
    warmup = o.warmup_steps if o.warmup_steps >= 0 else o.warmup_epochs * steps_per_epoch
    if total < 1:
        raise ValueError(
            f'no training steps: {steps_per_epoch} steps per epoch x {o.epochs} epochs; '
            'add videos, lower batch_size or set optim.total_steps'
        )
    peak = optim.scaled_lr(o.base_lr, cfg.batch_size)
    final = optim.scaled_lr(o.min_lr, cfg.batch_size)
    return optim.cosine_schedule(peak, final, total, min(warmup, total)), total, peak


def make_mesh(cfg: ml_collections.ConfigDict):
    order = ('data', 'fsdp', 'tensor')
    axes = dict(cfg.mesh)
    unknown = set(axes) - set(order)
    if unknown:
        raise ValueError(f'mesh axes {sorted(unknown)} unknown; use {order}')
    return sharding.make_mesh([(a, axes[a]) for a in order if a in axes])


def state_shardings(
    build_model: Callable[[nnx.Rngs], nnx.Module],
    make_tx: Callable[[Any], optax.GradientTransformation],
    mesh,
    rules,
    seed: int,
):
    """Everything about the train state except its values; allocates nothing.

    Returns:
      (init, abstract, shardings, graphdef, tx): `init()` builds the state
      {'step': int32 [], 'params': pure dict, 'opt_state': optax state};
      `abstract` is its tree of jax.ShapeDtypeStruct (with .sharding), the input
      for ahead-of-time compilation (vmae2/tools/memory_plan.py) and checkpoint
      restores; `shardings` the matching NamedShardings (params from the rules,
      optimizer moments like their params, scalars replicated).
    """
    abstract_model = nnx.eval_shape(lambda: build_model(nnx.Rngs(seed)))
    graphdef, _ = nnx.split(abstract_model)
    pspecs = sharding.param_specs(abstract_model, mesh, rules)
    abstract_params = nnx.to_pure_dict(nnx.state(abstract_model, nnx.Param))
    tx = make_tx(abstract_params)

    def init():
        params = nnx.to_pure_dict(nnx.state(build_model(nnx.Rngs(seed)), nnx.Param))
        return {'step': jnp.zeros((), jnp.int32), 'params': params, 'opt_state': tx.init(params)}

    abstract = jax.eval_shape(init)
    param_sh = jax.tree.map(lambda s: jax.sharding.NamedSharding(mesh, s), pspecs)
    opt_sh = optax.tree_map_params(
        tx,
        lambda _, s: s,
        abstract['opt_state'],
        param_sh,
        transform_non_params=lambda _: sharding.replicated(mesh),
    )
    shardings = {'step': sharding.replicated(mesh), 'params': param_sh, 'opt_state': opt_sh}
    return init, abstract_like(abstract, shardings), shardings, graphdef, tx


def create_state(
    build_model: Callable[[nnx.Rngs], nnx.Module],
    make_tx: Callable[[Any], optax.GradientTransformation],
    mesh,
    rules,
    seed: int,
):
    """Creates the train state already sharded: nothing is built on one device.

    Returns:
      (state, state_shardings, graphdef, tx) where state is
      {'step': int32 [], 'params': pure dict, 'opt_state': optax state}.
    """
    init, abstract, shardings, graphdef, tx = state_shardings(
        build_model, make_tx, mesh, rules, seed
    )
    state = jax.jit(init, out_shardings=shardings)()
    frac = sharding.sharded_fraction(abstract['params'], shardings['params'])
    if any(v for v in dict(rules).values()):
        level = logging.WARNING if frac < 0.98 else logging.INFO
        log.log(
            level,
            'parameters sharded: %.1f %% of bytes; %.1f MiB of parameters per device',
            100 * frac,
            sharding.bytes_per_device(abstract['params'], shardings['params']) / 2**20,
        )
    return state, shardings, graphdef, tx


def abstract_like(state, shardings):
    """ShapeDtypeStructs with shardings, the restore target for a checkpoint."""
    return jax.tree.map(
        lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), state, shardings
    )


def global_batch(local: dict[str, np.ndarray], mesh) -> dict[str, jax.Array]:
    """Per-process numpy arrays -> global jax.Arrays split over the batch axes."""
    sh = sharding.batch_sharding(mesh)
    return {k: jax.make_array_from_process_local_data(sh, v) for k, v in local.items()}


def encode_iterator_state(state: Any) -> bytes:
    return json.dumps(state).encode('utf-8')


def decode_iterator_state(data: bytes) -> Any:
    return json.loads(data.decode('utf-8'))


def count_params(params) -> int:
    return int(sum(np.prod(x.shape) for x in jax.tree.leaves(params)))


def accumulate_gradients(loss_terms, params, batch: dict, rng, steps: int):
    """Sums `loss_terms` values and gradients over `steps` equal micro-batches.

    Args:
      loss_terms: f(params, batch, rng) -> (summed loss, aux count); the gradient
        is taken of the first output.
      batch: arrays with a leading batch dimension divisible by `steps`.
      steps: micro-batches (1 = a single pass). They run in a lax.scan, so
        activation memory is that of one micro-batch.

    Returns:
      ((loss sum, count sum), gradient sum).

    Raises:
      ValueError: when the batch does not split into `steps` equal parts.
    """
    grad_fn = jax.value_and_grad(loss_terms, has_aux=True)
    if steps == 1:
        return grad_fn(params, batch, rng)
    size = jax.tree.leaves(batch)[0].shape[0]
    if size % steps:
        raise ValueError(f'batch of {size} clips does not split into grad_accum_steps={steps}')
    micro = jax.tree.map(lambda x: x.reshape(steps, size // steps, *x.shape[1:]), batch)

    def body(carry, inputs):
        i, mb = inputs
        (value, aux), grads = grad_fn(params, mb, jax.random.fold_in(rng, i))
        acc_v, acc_a, acc_g = carry
        return (acc_v + value, acc_a + aux, jax.tree.map(jnp.add, acc_g, grads)), None

    zeros = jax.tree.map(jnp.zeros_like, params)
    init = (jnp.zeros((), jnp.float32), jnp.zeros((), jnp.float32), zeros)
    (value, aux, grads), _ = jax.lax.scan(body, init, (jnp.arange(steps), micro))
    return (value, aux), grads


def optimizer_step(loss_terms, tx, schedule, state, batch: dict, rng, grad_accum_steps: int):
    """One update from a loss written as (sum, count): mean gradient, then optax.

    The gradient of sum/count is taken as (sum of gradients of sum) / count, so
    accumulation over micro-batches equals one pass over the whole batch.

    Returns:
      (new state, {'loss', 'grad_norm', 'lr'} as device scalars).
    """
    (total, count), grads = accumulate_gradients(
        loss_terms, state['params'], batch, rng, grad_accum_steps
    )
    count = jnp.maximum(count, 1.0)
    grads = jax.tree.map(lambda g: g / count, grads)
    updates, opt_state = tx.update(grads, state['opt_state'], state['params'])
    params = optax.apply_updates(state['params'], updates)
    new_state = {**state, 'step': state['step'] + 1, 'params': params, 'opt_state': opt_state}
    metrics = {
        'loss': total / count,
        'grad_norm': optax.tree.norm(grads),
        'lr': schedule(state['step']),
    }
    return new_state, metrics


def make_tx_factory(cfg: ml_collections.ConfigDict, schedule, depth: int | None = None):
    """make_tx(params) for create_state: AdamW from config.optim with the no-decay
    set, optional clipping, and layer decay (spec 5.1) when optim.layer_decay < 1."""
    o = cfg.optim
    layer_decay = o.get('layer_decay', 1.0)

    def make_tx(params):
        scales = None
        if layer_decay < 1:
            scales = optim.layer_decay_scales(params, depth, layer_decay)
        return optim.make_optimizer(
            params,
            schedule=schedule,
            weight_decay=o.weight_decay,
            b1=o.b1,
            b2=o.b2,
            eps=o.eps,
            clip_grad=o.clip_grad or None,
            lr_scales=scales,
        )

    return make_tx
