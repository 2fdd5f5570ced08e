"""The training loop every stage shares: start or resume, steps, logs, evaluators,
checkpoints.

Resuming is automatic: the latest checkpoint in the workdir restores the state
and the data iterator position, so the run continues exactly where it stopped.
A fresh run with `init_from` starts from those weights (stage surgery).
"""

from __future__ import annotations

import logging
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from vmae2.core.state import TrainState, count_params, seed_key_data
from vmae2.runtime import checkpointing
from vmae2.runtime import metrics as metrics_lib
from vmae2.runtime import sharding

log = logging.getLogger('vmae2')


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


def save_config(workdir: str, cfg) -> None:
    """Freezes the run's config as {workdir}/config.json (process 0)."""
    if jax.process_index() == 0:
        os.makedirs(workdir, exist_ok=True)
        with open(os.path.join(workdir, 'config.json'), 'w') as f:
            f.write(cfg.to_json_best_effort(indent=2))


def restore(exp, ckpt: checkpointing.Checkpointer, step: int, iterator=None) -> TrainState:
    """The state saved at `step` (and the iterator position into `iterator`)."""
    target = exp.factory.abstract.as_dict()
    saved = ckpt.state_keys(step)
    if 'rng' not in saved:  # written before the state carried its key
        target.pop('rng')
    tree, data_state = ckpt.restore(step, target)
    if iterator is not None and data_state is not None:
        iterator.set_state(checkpointing.decode_iterator_state(data_state))
    rng = tree.get('rng')
    if rng is None:
        rng = jax.device_put(seed_key_data(exp.cfg.seed), exp.factory.shardings.rng)
    return TrainState(step=tree['step'], params=tree['params'], opt_state=tree['opt_state'], rng=rng)


def initial_state(exp, ckpt: checkpointing.Checkpointer, iterator=None) -> TrainState:
    """The latest checkpoint's state, else init_from's weights, else a fresh state."""
    latest = ckpt.latest_step()
    if latest is not None:
        state = restore(exp, ckpt, latest, iterator)
        log.info('resumed from %s at step %d', ckpt.directory, latest)
        return state
    state = exp.factory.create()
    if exp.cfg.get('init_from'):
        params = exp.stage.init_from(sharding.to_host(state.params))
        state = exp.factory.from_params(params)
    return state


def _write(writer, step: int, results: dict) -> None:
    """Scalars to metrics.jsonl/TensorBoard; uint8 [H, W, 3] images to TensorBoard and PNG."""
    scalars = {k: v for k, v in results.items() if np.ndim(v) == 0}
    if scalars:
        writer.write_scalars(step, scalars)
    for name, image in results.items():
        if np.ndim(image) == 3:
            writer.write_image(step, name, image)


def train(exp, workdir: str) -> dict:
    """Trains from the latest checkpoint (or the start) to the schedule's last step.

    Every `cfg.log_every` steps: a metrics.jsonl/TensorBoard row with the window's
    mean loss, the step's other scalars, clips/s and the count of skipped
    videos. Evaluators run every `every` steps and after the last step. Every
    `cfg.checkpoint_every` steps and at the end: an atomic checkpoint of state +
    iterator, written only after every loss since the last check was found finite.

    Returns:
      The last logged scalars and the last evaluator results.

    Raises:
      FloatingPointError: a non-finite loss (the last good checkpoint is kept).
    """
    cfg = exp.cfg
    workdir = os.path.abspath(workdir)
    save_config(workdir, cfg)
    total = exp.schedule.total_steps
    iterator = iter(exp.dataset)
    ckpt = checkpointing.Checkpointer(workdir, keep=cfg.keep_checkpoints)
    writer = metrics_lib.MetricWriter(workdir)
    evaluators = exp.stage.evaluators(exp, workdir)
    batch_keys = tuple(exp.stage.batch_spec(1))
    progress = None
    try:
        state = initial_state(exp, ckpt, iterator)
        start = int(jax.device_get(state.step))
        log.info(
            '%s: %.2fM parameters, %d videos, %d steps, peak lr %.3g',
            exp.stage.describe(exp),
            count_params(state.params) / 1e6,
            len(exp.records),
            total,
            exp.schedule.peak_lr,
        )
        progress = metrics_lib.Progress(start, total)
        guard, last, skipped = _FiniteGuard(), {}, 0
        last_saved = ckpt.latest_step()
        window, t0 = [], time.time()
        for step in range(start, total):
            local = next(iterator)
            skipped += int(local.get('skipped', 0))
            batch = sharding.global_batch({k: local[k] for k in batch_keys}, exp.mesh)
            state, m = exp.step_fn(state, batch, exp.frozen)
            guard.add(step, m['loss'])
            window.append(m)
            done = step + 1
            progress.update(done)
            if done % cfg.log_every == 0 or done == total:
                guard.check(workdir, last_saved)
                last = _summarise(window, exp.clips_per_step, time.time() - t0, skipped)
                writer.write_scalars(done, last)
                progress.update(done, {k: last[k] for k in ('loss', 'lr', 'clips_per_sec')})
                progress.log(done, last)
                window, t0 = [], time.time()
            if done % cfg.checkpoint_every == 0 or done == total:
                guard.check(workdir, last_saved)
                ckpt.save(
                    done,
                    state.as_dict(),
                    checkpointing.encode_iterator_state(iterator.get_state()),
                )
                last_saved = done
            for ev in evaluators:
                if ev.every and done % ev.every == 0 and done != total:
                    _write(writer, done, ev.run(state))
        for ev in evaluators:
            if ev.at_end:
                results = ev.run(state)
                _write(writer, total, results)
                last.update({k: float(v) for k, v in results.items() if np.ndim(v) == 0})
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
