"""The one training step every stage runs: prepare the batch on the device, then
gradients (accumulated over micro-batches) and the optax update.

A stage supplies two pure functions:

  prepare(rng, batch) -> (batch, metrics)   device-side batch preparation on the
      whole batch (masks for pre-training, erasing + mixup for fine-tuning);
  loss(model, batch, rng, frozen) -> (sum, count, sums)   the summed loss over the
      batch's rows, the number of rows (or tokens) it averages over, and other
      summed quantities (e.g. correct predictions) reported as sums / count.

Keeping sum and count apart makes gradient accumulation exact: the gradient of
sum/count is (sum of the micro-batches' gradients of their sums) / (total count),
which equals one pass over the whole batch (the official batch-global means).
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from vmae2.core.state import TrainState

LossFn = Callable[[nnx.Module, dict, jax.Array, Any], tuple[jax.Array, jax.Array, dict]]
PrepareFn = Callable[[jax.Array, dict], tuple[dict, dict]]


def accumulate_gradients(loss_terms, params, batch: dict, rng, steps: int):
    """Sums `loss_terms` outputs and gradients over `steps` equal micro-batches.

    Args:
      loss_terms: f(params, batch, rng) -> (summed loss, (count, sums)); the
        gradient is taken of the first output.
      batch: arrays with a leading batch dimension divisible by `steps`.
      steps: micro-batches (1 = a single pass). They run in a lax.scan, so
        activation memory is that of one micro-batch; micro-batch i uses the key
        fold_in(rng, i).

    Returns:
      ((loss sum, (count sum, sums)), gradient sum).

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
        out, grads = grad_fn(params, mb, jax.random.fold_in(rng, i))
        return jax.tree.map(jnp.add, carry, (out, grads)), None

    first = jax.eval_shape(grad_fn, params, jax.tree.map(lambda x: x[0], micro), rng)
    zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), first)
    total, _ = jax.lax.scan(body, zeros, (jnp.arange(steps), micro))
    return total


def make_train_step(
    loss: LossFn,
    prepare: PrepareFn,
    graphdef,
    tx: optax.GradientTransformation,
    schedule,
    grad_accum_steps: int = 1,
):
    """train_step(state, batch, frozen) -> (state, metrics) for jax.jit.

    The step key fold_in(key(seed), step) splits into the preparation key and the
    loss key (drop path), so a step is a pure function of (state, batch). The
    batch is prepared whole before it is split into micro-batches, so k
    micro-batches see the same masks and mixing as one step on the full batch.

    Returns metrics: 'loss' (sum / count), 'grad_norm', 'lr', every `sums`
    entry divided by count, and what `prepare` reports.
    """

    def train_step(state: TrainState, batch: dict, frozen: Any):
        prep_key, loss_key = jax.random.split(state.step_key())
        batch, prep_metrics = prepare(prep_key, batch)

        def loss_terms(params, mb, rng):
            total, count, sums = loss(nnx.merge(graphdef, nnx.State(params)), mb, rng, frozen)
            return total, (count, sums)

        (total, (count, sums)), grads = accumulate_gradients(
            loss_terms, state.params, batch, loss_key, grad_accum_steps
        )
        count = jnp.maximum(count, 1.0)
        grads = jax.tree.map(lambda g: g / count, grads)
        with jax.named_scope('optimizer'):  # names the update in profiles
            updates, opt_state = tx.update(grads, state.opt_state, state.params)
            new_state = state.replace(
                step=state.step + 1,
                params=optax.apply_updates(state.params, updates),
                opt_state=opt_state,
            )
        metrics = {
            'loss': total / count,
            'grad_norm': optax.tree.norm(grads),
            'lr': schedule(state.step),
            **{k: v / count for k, v in sums.items()},
            **prep_metrics,
        }
        return new_state, metrics

    return train_step
