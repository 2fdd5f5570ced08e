"""The training loop every trainer shares: resume, steps, logging, checkpoints.

A trainer builds its sharded state, a jitted `step_fn(state, batch) ->
(state, metrics)` and a grain dataset, then hands them to `run`. Resuming is
automatic: the latest checkpoint in the workdir restores both the state and
the data iterator position, so the run continues exactly where it stopped.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from vmae2 import checkpointing
from vmae2 import metrics as metrics_lib
from vmae2.trainers import common

log = logging.getLogger('vmae2')

# hook(step, state, batch, writer) runs every `every` steps and after the last.
Hook = Callable[[int, Any, dict, metrics_lib.MetricWriter], None]


@dataclasses.dataclass
class Hooks:
    every: int
    fn: Hook


class _FiniteGuard:
    """Collects device losses and checks them on the host only when asked, so
    the loop never blocks on a step just to look for NaN."""

    def __init__(self):
        self.pending: list[tuple[int, jax.Array]] = []

    def add(self, step: int, loss: jax.Array):
        self.pending.append((step, loss))

    def check(self, workdir: str, last_good: int | None):
        if not self.pending:
            return
        values = np.asarray(jax.device_get(jnp.stack([loss for _, loss in self.pending])))
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            step = self.pending[int(bad[0])][0]
            where = (
                f'the last good checkpoint is step {last_good} in {workdir}/checkpoints'
                if last_good is not None
                else 'no checkpoint was written yet'
            )
            raise FloatingPointError(
                f'loss became non-finite at step {step}; {where}. Lower optim.base_lr, set '
                'optim.clip_grad, or use dtype=float32, then run the same command again.'
            )
        self.pending.clear()


def restore_or_start(ckpt: checkpointing.Checkpointer, state, shardings, iterator):
    """(state, first_step): the latest checkpoint's state and iterator position, if any."""
    start = ckpt.latest_step()
    if start is None:
        return state, 0
    state, data_state = ckpt.restore(start, common.abstract_like(state, shardings))
    if data_state is not None:
        iterator.set_state(common.decode_iterator_state(data_state))
    log.info('resumed from %s at step %d', ckpt.directory, start)
    return state, int(start)


def run(
    cfg: ml_collections.ConfigDict,
    workdir: str,
    *,
    state,
    shardings,
    step_fn,
    dataset,
    mesh,
    total_steps: int,
    clips_per_step: int,
    batch_keys: Sequence[str] = ('video',),
    hooks: Sequence[Hooks] = (),
) -> dict:
    """Trains from the latest checkpoint (or step 0) to `total_steps`.

    Every `cfg.log_every` steps: metrics.jsonl/TensorBoard row with the window's
    mean loss, the step's other scalars, clips/s and the count of skipped
    videos. Every `cfg.checkpoint_every` steps and at the end: an atomic
    checkpoint of state + iterator, written only after every loss since the last
    check was found finite.

    Returns:
      The last logged scalars.

    Raises:
      FloatingPointError: a non-finite loss (the last good checkpoint is kept).
    """
    iterator = iter(dataset)
    ckpt = checkpointing.Checkpointer(workdir, keep=cfg.keep_checkpoints)
    writer = metrics_lib.MetricWriter(workdir)
    progress = None
    try:
        state, start = restore_or_start(ckpt, state, shardings, iterator)
        progress = metrics_lib.Progress(start, total_steps)
        guard, last, skipped, batch = _FiniteGuard(), {}, 0, None
        last_saved = ckpt.latest_step()
        window, t0 = [], time.time()
        for step in range(start, total_steps):
            local = next(iterator)
            skipped += int(local.get('skipped', 0))
            batch = common.global_batch({k: local[k] for k in batch_keys}, mesh)
            state, m = step_fn(state, batch)
            guard.add(step, m['loss'])
            window.append(m)
            done = step + 1
            progress.update(done)
            if done % cfg.log_every == 0 or done == total_steps:
                guard.check(workdir, last_saved)
                last = _summarise(window, clips_per_step, time.time() - t0, skipped)
                writer.write_scalars(done, last)
                progress.update(done, {k: last[k] for k in ('loss', 'lr', 'clips_per_sec')})
                progress.log(done, last)
                window, t0 = [], time.time()
            if done % cfg.checkpoint_every == 0 or done == total_steps:
                guard.check(workdir, last_saved)
                ckpt.save(done, state, common.encode_iterator_state(iterator.get_state()))
                last_saved = done
            for h in hooks:
                if (h.every and done % h.every == 0) or done == total_steps:
                    h.fn(done, state, batch, writer)
        return last
    finally:
        ckpt.close()
        if progress is not None:
            progress.close()
        writer.close()


def _summarise(window: list[dict], clips_per_step: int, seconds: float, skipped: int) -> dict:
    """Mean loss over the window, the last value of every other scalar."""
    host = jax.device_get(window)
    out = {k: float(v) for k, v in host[-1].items()}
    out['loss'] = float(np.mean([m['loss'] for m in host]))
    out['clips_per_sec'] = clips_per_step * len(host) / max(seconds, 1e-9)
    out['skipped_videos'] = skipped
    return out
