"""Evaluators the training loop runs, and the multi-view classification protocol.

An evaluator has `run(state) -> {name: scalar or uint8 [H, W, 3] image}`; the loop
calls it every `every` steps (before the last) and, if `at_end`, after the last
step, and writes what it returns to metrics.jsonl, TensorBoard and PNG files.

Classification (official engine_for_finetuning.final_test + merge, spec 5.4):
softmax per view, probabilities averaged over a video's views, top-1 / top-5
over videos. Used for 1-view validation during fine-tuning and distillation, the
full test protocol at their end, and by the `evaluate` stage.
"""

from __future__ import annotations

import abc
import csv
import dataclasses
import logging
import os
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.experimental import multihost_utils

from data_pipelines import transforms
from vmae2.core import data
from vmae2.ops import targets
from vmae2.runtime import sharding

log = logging.getLogger('vmae2')


@dataclasses.dataclass
class Result:
    """Fused per-video results (identical on every process).

    Attributes:
      video_index: int64 [V] indices into the evaluated records, ascending.
      labels: int64 [V].
      probs: float32 [V, classes] mean over views of softmax(logits).
      views: int64 [V] valid views averaged per video.
      unreadable: videos without a single valid view (left out of the metrics).
    """

    video_index: np.ndarray
    labels: np.ndarray
    probs: np.ndarray
    views: np.ndarray
    unreadable: int

    def metrics(self, prefix: str = '') -> dict[str, float]:
        """{prefix+'top1', prefix+'top5', prefix+'videos'}: accuracies in percent."""
        t1, t5 = topk_accuracy(self.probs, self.labels, (1, 5))
        return {
            f'{prefix}top1': t1,
            f'{prefix}top5': t5,
            f'{prefix}videos': float(len(self.labels)),
            f'{prefix}unreadable_videos': float(self.unreadable),
        }


def topk_accuracy(probs: np.ndarray, labels: np.ndarray, ks: Sequence[int] = (1, 5)) -> list[float]:
    """Percent of rows whose label is among the k highest scores (k capped at classes)."""
    if len(labels) == 0:
        return [float('nan')] * len(ks)
    order = np.argsort(-probs, axis=1, kind='stable')
    out = []
    for k in ks:
        hit = (order[:, : min(k, probs.shape[1])] == labels[:, None]).any(axis=1)
        out.append(100.0 * float(hit.mean()))
    return out


def make_predict_fn(graphdef, mesh):
    """jit (params, video uint8 [B, T, H, W, 3]) -> float32 softmax probs [B, classes].

    The input is ImageNet-normalised on the device; the output keeps the batch
    sharding, so each process reads back only its own rows.
    """

    def predict(params, video):
        model = nnx.merge(graphdef, nnx.State(params))
        logits = model(targets.normalize(video))
        return jax.nn.softmax(logits.astype(jnp.float32), axis=-1)

    return jax.jit(predict, out_shardings=sharding.batch_sharding(mesh))


def run_views(predict_fn, params, dataset, mesh, num_videos: int, num_classes: int) -> Result:
    """Runs every batch of an eval dataset (make_eval_dataset element layout) and
    fuses the views; results are gathered across processes.

    `predict_fn(params, video) -> float [rows, num_classes]` is averaged over each
    video's valid rows: softmax probabilities for classification, or features
    (num_classes = their width) for the kNN probe. Every process must call this
    with its shard of the same evaluation (the datasets yield the same number of
    batches on every process).
    """
    sums: dict[int, np.ndarray] = {}
    counts: dict[int, int] = {}
    labels: dict[int, int] = {}
    for local in dataset:
        batch = sharding.global_batch({'video': local['video']}, mesh)
        probs = sharding.host_local_rows(predict_fn(params, batch['video']), mesh)
        probs = probs.astype(np.float64)
        for i in np.flatnonzero(local['valid'] & (local['video_index'] >= 0)):
            v = int(local['video_index'][i])
            if v not in sums:
                sums[v] = np.zeros(num_classes, np.float64)
                counts[v], labels[v] = 0, int(local['label'][i])
            sums[v] += probs[i]
            counts[v] += 1
    n_proc = jax.process_count()
    width = -(-num_videos // n_proc)
    idx = np.full(width, -1, np.int64)
    lab = np.zeros(width, np.int64)
    cnt = np.zeros(width, np.int64)
    avg = np.zeros((width, num_classes), np.float32)
    for j, v in enumerate(sorted(sums)):
        idx[j], lab[j], cnt[j] = v, labels[v], counts[v]
        avg[j] = sums[v] / counts[v]
    if n_proc > 1:
        idx, lab, cnt, avg = (
            np.asarray(a).reshape(-1, *a.shape[1:])
            for a in multihost_utils.process_allgather((idx, lab, cnt, avg))
        )
    keep = idx >= 0
    order = np.argsort(idx[keep], kind='stable')
    return Result(
        idx[keep][order],
        lab[keep][order],
        avg[keep][order],
        cnt[keep][order],
        int(num_videos - keep.sum()),
    )


def write_predictions(
    path: str,
    result: Result,
    records: Sequence,
    label_names: Sequence[str] | None = None,
    k: int = 5,
) -> str:
    """CSV: video, label, then (prediction, probability) for the top k (process 0 writes).

    `video` is the record's path; labels and predictions are class names when
    `label_names` is given, else indices.
    """
    if jax.process_index() != 0:
        return path

    def name(c: int) -> str:
        return label_names[c] if label_names else str(c)

    k = min(k, result.probs.shape[1]) if len(result.probs) else k
    tmp = path + '.tmp'
    with open(tmp, 'w', newline='') as f:
        w = csv.writer(f)
        header = ['video', 'label']
        for i in range(1, k + 1):
            header += [f'pred{i}', f'prob{i}']
        w.writerow(header)
        for v, y, p in zip(result.video_index, result.labels, result.probs):
            top = np.argsort(-p, kind='stable')[:k]
            row = [records[int(v)].path, name(int(y))]
            for c in top:
                row += [name(int(c)), f'{float(p[c]):.6f}']
            w.writerow(row)
    os.replace(tmp, path)
    return path


class Evaluator(abc.ABC):
    """Something the loop runs on the train state (module docstring).

    Attributes:
      every: steps between runs before the last step (0: none).
      at_end: run after the last step.
      at_start: run on the initial state of a fresh run (step 0: the reference point
        that training is measured against).
    """

    every: int = 0
    at_end: bool = True
    at_start: bool = False

    @abc.abstractmethod
    def run(self, state) -> dict:
        """{name: float scalar or uint8 [H, W, 3] image} for the state's step."""


# Train top-1 a healthy pipeline reaches with augmentation off (the fit check).
FIT_TOP1 = 95.0


def log_fit(top1: float, videos: int) -> None:
    """The fit check's verdict: a warning below FIT_TOP1."""
    if top1 >= FIT_TOP1:
        log.info('fit check: %.1f %% of the %d training videos right (>= %.0f %%)', top1, videos, FIT_TOP1)
        return
    log.warning(
        'fit check: only %.1f %% of the %d training videos right (< %.0f %%). With augmentation '
        'off a model should fit so few videos: check the labels (do the lines of the list and the '
        'class names agree?), look at a few videos of each class, then try a longer schedule '
        '(optim.epochs) or a higher optim.base_lr', top1, videos, FIT_TOP1,
    )


class ClassificationEvaluator(Evaluator):
    """Top-1/top-5 of a classifier on labelled records.

    mode 'val': one centre view per video, metrics `val_top1`, `val_top5`.
    mode 'test': the official test views (data.test_num_segment x test_num_crop),
    metrics `test_*`, and `{workdir}/predictions.csv`.
    mode 'fit': the 'val' view of the training videos, metrics `fit_*` (how well
    the model fits what it trains on; the fit check, configs/finetune/fit_check.py).
    """

    def __init__(self, cfg, exp, labelled, workdir: str, mode: str, *, every=0, at_end=True):
        d, m = cfg.data, exp.model
        self.cfg, self.labelled, self.workdir, self.mode = cfg, labelled, workdir, mode
        self.records = labelled.train if mode == 'fit' else labelled.val
        self.every, self.at_end = every, at_end
        self.mesh = exp.mesh
        self.predict = make_predict_fn(exp.factory.graphdef, exp.mesh)
        self.transform = transforms.EvalTransform(
            num_frames=m.num_frames,
            sampling_rate=d.sampling_rate,
            input_size=m.input_size,
            test_num_segment=d.test_num_segment,
            test_num_crop=d.test_num_crop,
            mode='val' if mode == 'fit' else mode,
            sampler=d.sampler,
            reader=data.reader(cfg, 'train' if mode == 'fit' else 'val'),
        )

    def result(self, params) -> Result:
        records = self.records
        ds = data.eval_dataset(self.cfg, records, self.transform, self.cfg.eval_batch_size)
        return run_views(self.predict, params, ds, self.mesh, len(records), self.labelled.num_classes)

    def run(self, state) -> dict:
        res = self.result(state.params)
        m = res.metrics(f'{self.mode}_')
        if self.mode == 'test':
            path = write_predictions(
                os.path.join(self.workdir, 'predictions.csv'), res, self.labelled.val,
                self.labelled.label_names,
            )
            d = self.cfg.data
            log.info(
                'test %dx%d views, %d videos (%d unreadable): top-1 %.2f top-5 %.2f; %s',
                d.test_num_segment, d.test_num_crop, len(res.labels), res.unreadable,
                m['test_top1'], m['test_top5'], path,
            )
        elif self.mode == 'fit':
            log_fit(m['fit_top1'], len(res.labels))
        else:
            log.info('1-view val top-1 %.2f top-5 %.2f', m['val_top1'], m['val_top5'])
        return m
