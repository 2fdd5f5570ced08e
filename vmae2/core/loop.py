"""The training loop every stage shares: start or resume, steps, logs, evaluators,
checkpoints.

Resuming is automatic: the newest intact checkpoint in the workdir restores the
state, the data iterator position and the counters, so the run continues exactly
where it stopped (a damaged newest checkpoint is set aside with a warning and the
one before is used). A resumed run must have the config it was started with
(core.run_config). A fresh run with `init_from` starts from those weights (stage
surgery). A checkpoint that cannot be written (a full disk) stops the run with one
message; the previous checkpoint stays.
"""

from __future__ import annotations

import gc
import logging
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from vmae2.core import run_config
from vmae2.core.state import TrainState, count_params, seed_key_data
from vmae2.errors import CheckpointError
from vmae2.errors import ResourceError
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


def restore(exp, ckpt: checkpointing.Checkpointer, step: int, iterator=None):
    """(state, counters) saved at `step`; the iterator position goes into `iterator`."""
    target = exp.factory.abstract.as_dict()
    if 'rng' not in ckpt.state_keys(step):  # written before the state carried its key
        target.pop('rng')
    tree, data_state = ckpt.restore(step, target)
    counters = {}
    if data_state is not None:
        saved = checkpointing.decode_iterator_state(data_state)
        if isinstance(saved, dict) and saved.keys() == {'iterator', 'counters'}:
            saved, counters = saved['iterator'], saved['counters']
        if iterator is not None:
            iterator.set_state(saved)
    rng = tree.get('rng')
    if rng is None:
        rng = jax.device_put(seed_key_data(exp.cfg.seed), exp.factory.shardings.rng)
    state = TrainState(step=tree['step'], params=tree['params'], opt_state=tree['opt_state'], rng=rng)
    return state, counters


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f'{type(e).__name__}: {text[0] if text else ""}'[:300]


def initial_state(exp, ckpt: checkpointing.Checkpointer, iterator=None):
    """(state, counters): the newest intact checkpoint's, else init_from's weights,
    else a fresh state.

    A step without its commit marker, or one that fails to restore (missing or cut
    files, a damaged iterator file), is set aside and the one before is tried.

    Raises:
      CheckpointError: checkpoints exist but none restores.
    """
    damaged = []
    for step in reversed(ckpt.step_dirs()):
        if step not in ckpt.intact_steps():
            damaged.append(ckpt.set_aside(step, 'no commit marker: the save never finished'))
            continue
        try:
            state, counters = restore(exp, ckpt, step, iterator)
        except Exception as e:  # noqa: BLE001 - any damage: fall back to an older step
            damaged.append(ckpt.set_aside(step, _first_line(e)))
            continue
        log.info('resumed from %s at step %d', ckpt.directory, step)
        return state, counters
    if damaged:
        raise CheckpointError(
            f'no checkpoint in {ckpt.directory} could be restored (set aside: {", ".join(damaged)});'
            ' use another --workdir to start afresh'
        )
    state = exp.factory.create()
    if exp.cfg.get('init_from'):
        params = exp.stage.init_from(sharding.to_host(state.params))
        state = exp.factory.from_params(params)
    return state, {}


def _write(writer, step: int, results: dict) -> None:
    """Scalars to metrics.jsonl/TensorBoard; uint8 [H, W, 3] images to TensorBoard and PNG."""
    scalars = {k: v for k, v in results.items() if np.ndim(v) == 0}
    if scalars:
        writer.write_scalars(step, scalars)
    for name, image in results.items():
        if np.ndim(image) == 3:
            writer.write_image(step, name, image)


def train(exp, workdir: str, allow_config_change: bool = False) -> dict:
    """Trains from the newest checkpoint (or the start) to the schedule's last step.

    Every `cfg.log_every` steps: a metrics.jsonl/TensorBoard row with the window's
    mean loss, the step's other scalars, clips/s and the count of skipped
    videos. Evaluators run on a fresh run's initial state (`at_start`), every `every` steps
    and after the last step. Every
    `cfg.checkpoint_every` steps and at the end: an atomic checkpoint of state,
    iterator and counters, written only after every loss since the last check was
    found finite.

    Returns:
      The last logged scalars and the last evaluator results.

    Raises:
      FloatingPointError: a non-finite loss (the last good checkpoint is kept).
      ConfigError: a resumed run whose config changes the run (run_config).
      ResourceError: a checkpoint could not be written (the previous one stays).
    """
    cfg = exp.cfg
    workdir = os.path.abspath(workdir)
    ckpt = checkpointing.Checkpointer(workdir, keep=cfg.keep_checkpoints)
    try:
        run_config.record(workdir, cfg, ckpt.latest_step(), allow_config_change)
        return _train(exp, workdir, ckpt)
    except checkpointing.SaveError as e:
        raise _save_failed(e, ckpt) from None
    finally:
        # On CPU jax aliases the last batch, which grain workers put in shared memory,
        # and XLA lets it go only at a garbage collection: collect once _train's frame
        # is gone, before the resource tracker finds the segment and warns of a leak.
        gc.collect()
        try:
            ckpt.close()
        except checkpointing.SaveError as e:
            raise _save_failed(e, ckpt) from None


def _save_failed(e: checkpointing.SaveError, ckpt) -> ResourceError:
    intact = [s for s in ckpt.intact_steps() if s != e.step]
    last = f'step {intact[-1]}' if intact else 'none'
    fix = 'Free disk space' if e.no_space else 'Make the workdir writable'
    return ResourceError(
        f'{e}. Training stopped; the last intact checkpoint is {last}. {fix} and run the same '
        'command again: it resumes from there.'
    )


def _train(exp, workdir: str, ckpt: checkpointing.Checkpointer) -> dict:
    cfg = exp.cfg
    total = exp.schedule.total_steps
    iterator = iter(exp.dataset)
    state, counters = initial_state(exp, ckpt, iterator)
    start = int(jax.device_get(state.step))
    writer = metrics_lib.MetricWriter(workdir, resume_step=start if start else None)
    evaluators = exp.stage.evaluators(exp, workdir)
    batch_keys = tuple(exp.stage.batch_spec(1))
    progress = metrics_lib.Progress(start, total)
    try:
        log.info(
            '%s: %.2fM parameters, %d videos, %d steps, peak lr %.3g',
            exp.stage.describe(exp),
            count_params(state.params) / 1e6,
            len(exp.records),
            total,
            exp.schedule.peak_lr,
        )
        guard, last, baseline, warned = _FiniteGuard(), {}, None, False
        skipped = int(counters.get('skipped_videos', 0))
        last_saved = ckpt.latest_step()
        window, t0 = [], time.time()
        for step in range(start, total):
            local = next(iterator)
            if step == start:
                baseline = _log_baseline(exp.stage.loss_baseline(local), writer, step, start == 0)
                for ev in (e for e in evaluators if e.at_start and start == 0):
                    _write(writer, 0, ev.run(state))
            skipped += int(local.get('skipped', 0))
            batch = sharding.global_batch({k: local[k] for k in batch_keys}, exp.mesh)
            state, m = exp.step_fn(state, batch, exp.frozen)
            guard.add(step, m['loss'])
            window.append(m)
            done = step + 1
            progress.update(done)
            if last_saved is not None:
                ckpt.check_for_errors(last_saved)
            if done % cfg.log_every == 0 or done == total:
                guard.check(workdir, last_saved)
                last = _summarise(window, exp.clips_per_step, time.time() - t0, skipped)
                writer.write_scalars(done, last)
                shown = {k: last[k] for k in ('loss', 'lr', 'clips_per_sec')}
                if baseline:
                    shown['loss/baseline'] = last['loss'] / baseline
                    warned = warned or _warn_if_flat(last['loss'], baseline, done, total)
                progress.update(done, shown)
                progress.log(done, {**last, **shown})
                window, t0 = [], time.time()
            if done % cfg.checkpoint_every == 0 or done == total:
                guard.check(workdir, last_saved)
                data_state = {'iterator': iterator.get_state(), 'counters': {'skipped_videos': skipped}}
                ckpt.save(done, state.as_dict(), checkpointing.encode_iterator_state(data_state))
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
        iterator.close()  # stops grain's worker processes and frees the batches they hold
        progress.close()
        writer.close()


def _log_baseline(baseline: float | None, writer, step: int, fresh: bool) -> float | None:
    """Logs the stage's loss baseline (once per run: at its fresh start)."""
    if baseline is not None and fresh:
        writer.write_scalars(step, {'loss_baseline': baseline})
        log.info('loss_baseline %.4g: the loss of predicting zeros; a learning run goes below it', baseline)
    return baseline


def _warn_if_flat(loss: float, baseline: float, step: int, total: int) -> bool:
    """Warns (and returns True) when, past a quarter of the run, the loss is not at least
    1 % below the baseline (above it counts too: a diverging run is not learning)."""
    flat = step >= total / 4 and loss > 0.99 * baseline
    if flat:
        log.warning(
            'step %d of %d: loss %.4g is not yet 1 %% below loss_baseline %.4g (predicting '
            'zeros): the model is not learning yet. Check skipped_videos, the learning rate and '
            'the reconstruction picture.', step, total, loss, baseline,
        )
    return flat


def _summarise(window: list[dict], clips_per_step: int, seconds: float, skipped: int) -> dict:
    """Mean loss over the window, the last value of every other scalar."""
    host = jax.device_get(window)
    out = {k: float(v) for k, v in host[-1].items()}
    out['loss'] = float(np.mean([m['loss'] for m in host]))
    out['clips_per_sec'] = clips_per_step * len(host) / max(seconds, 1e-9)
    out['skipped_videos'] = skipped
    return out
