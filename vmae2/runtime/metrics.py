"""What the user sees: metrics.jsonl, TensorBoard events, a progress bar.

Only process 0 writes; other processes get a writer that drops everything.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Mapping

import jax
import numpy as np
from PIL import Image

log = logging.getLogger('vmae2')


class MetricWriter:
    """Appends one JSON object per logged step to {workdir}/metrics.jsonl and
    mirrors scalars to TensorBoard under {workdir}/tensorboard.

    resume_step: a run resumed from this step first drops the rows (and
    TensorBoard events) logged after it by the interrupted run, so that each step
    appears once.
    """

    def __init__(self, workdir: str, resume_step: int | None = None):
        self.workdir = workdir
        self.enabled = jax.process_index() == 0
        self._jsonl = None
        self._tb = None
        if self.enabled:
            os.makedirs(workdir, exist_ok=True)
            path = os.path.join(workdir, 'metrics.jsonl')
            if resume_step is not None and os.path.exists(path):
                _drop_rows_after(path, resume_step)
            self._jsonl = open(path, 'a')
            from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top

            purge = None if resume_step is None else resume_step + 1
            self._tb = SummaryWriter(os.path.join(workdir, 'tensorboard'), purge_step=purge)

    def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
        if not self.enabled:
            return
        row = {'step': int(step), **{k: float(v) for k, v in scalars.items()}}
        self._jsonl.write(json.dumps(row) + '\n')
        self._jsonl.flush()
        for k, v in scalars.items():
            self._tb.add_scalar(k, float(v), int(step))

    def write_image(self, step: int, tag: str, image: np.ndarray) -> str | None:
        """uint8 [height, width, 3] image into TensorBoard and {workdir}/{tag}_{step:07d}.png.

        Returns:
          The PNG's path (process 0), else None.
        """
        if not self.enabled:
            return None
        self._tb.add_image(tag, image, int(step), dataformats='HWC')
        path = os.path.join(self.workdir, f'{tag}_{int(step):07d}.png')
        Image.fromarray(image).save(path)
        log.info('%s picture: %s', tag, path)
        return path

    def close(self) -> None:
        if self.enabled:
            self._jsonl.close()
            self._tb.close()


def _drop_rows_after(path: str, step: int) -> None:
    """Rewrites metrics.jsonl (atomically) without its rows of steps > `step`."""
    with open(path) as f:
        rows = [line for line in f if line.strip()]
    keep = [line for line in rows if json.loads(line).get('step', 0) <= step]
    if len(keep) != len(rows):
        with open(path + '.tmp', 'w') as f:
            f.writelines(keep)
        os.replace(path + '.tmp', path)
        log.info('metrics.jsonl: dropped %d rows logged after step %d', len(rows) - len(keep), step)


class Progress:
    """A tqdm bar (process 0, when stderr is a terminal or forced) plus a log
    line every `log_every` steps with loss, lr, clips/s and ETA.

    The ETA is timed from the end of the first step, so the compilation that the
    first step includes does not count as training time.
    """

    def __init__(self, first_step: int, total_steps: int, *, bar: bool | None = None):
        self.total = total_steps
        self.first = first_step
        self.start = None  # (time, step) when the first step had finished
        self._bar = None
        if jax.process_index() == 0 and (bar if bar is not None else os.isatty(2)):
            from tqdm import tqdm  # pylint: disable=g-import-not-at-top

            self._bar = tqdm(total=total_steps, initial=first_step, unit='step', dynamic_ncols=True)

    def eta_seconds(self, step: int) -> float:
        if self.start is None or step <= self.start[1]:
            return float('nan')
        t0, s0 = self.start
        return (time.time() - t0) / (step - s0) * (self.total - step)

    def update(self, step: int, scalars: Mapping[str, float] | None = None) -> None:
        if self.start is None and step > self.first:
            self.start = (time.time(), step)
        if self._bar is not None:
            self._bar.update(step - self._bar.n)
            if scalars:
                self._bar.set_postfix({k: f'{v:.4g}' for k, v in scalars.items()}, refresh=False)

    def log(self, step: int, scalars: Mapping[str, float]) -> None:
        eta = self.eta_seconds(step)
        text = ' '.join(f'{k}={v:.4g}' for k, v in scalars.items())
        log.info('step %d/%d %s eta=%s', step, self.total, text, _fmt_time(eta))

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _fmt_time(seconds: float) -> str:
    if not np.isfinite(seconds):
        return '?'
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f'{h}:{m:02d}:{s:02d}'
