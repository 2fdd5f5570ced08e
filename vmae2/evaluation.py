"""Multi-view classification evaluation (official engine_for_finetuning.final_test
+ merge, spec 5.4): softmax per view, probabilities averaged over a video's
views, top-1 / top-5 over videos.

Used by the fine-tuning and distillation trainers (1-view validation during
training, the full test protocol at the end) and by `trainer='evaluate'`.
"""

from __future__ import annotations

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

from data_pipelines import finetune_pipeline
from vmae2 import sharding
from vmae2 import targets
from vmae2.trainers import common

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


def fuse_views(
    video_index: np.ndarray,
    labels: np.ndarray,
    probs: np.ndarray,
    valid: np.ndarray,
    num_videos: int | None = None,
) -> Result:
    """Averages view probabilities per video, ignoring rows with valid=False.

    Args:
      video_index: int [rows]; -1 for padding.
      labels: int [rows].
      probs: float [rows, classes] softmax of each view.
      valid: bool [rows].
      num_videos: the evaluated video count (to count unreadable ones), if known.

    Returns:
      Result over videos with at least one valid row.
    """
    valid = np.asarray(valid, bool) & (np.asarray(video_index) >= 0)
    vi = np.asarray(video_index)[valid]
    uniq, inv = np.unique(vi, return_inverse=True)
    sums = np.zeros((len(uniq), probs.shape[1]), np.float64)
    np.add.at(sums, inv, np.asarray(probs, np.float64)[valid])
    counts = np.bincount(inv, minlength=len(uniq))
    lab = np.zeros(len(uniq), np.int64)
    lab[inv] = np.asarray(labels)[valid]
    unreadable = (num_videos - len(uniq)) if num_videos is not None else 0
    return Result(
        uniq.astype(np.int64),
        lab,
        (sums / np.maximum(counts, 1)[:, None]).astype(np.float32),
        counts.astype(np.int64),
        int(unreadable),
    )


def make_predict_fn(graphdef, mesh, dtype=jnp.float32):
    """jit (params, video uint8 [B, T, H, W, 3]) -> float32 softmax probs [B, classes].

    The input is ImageNet-normalised on the device; the output keeps the batch
    sharding, so each process reads back only its own rows.
    """

    def predict(params, video):
        model = nnx.merge(graphdef, nnx.State(params))
        logits = model(targets.normalize(video), dtype=dtype)
        return jax.nn.softmax(logits.astype(jnp.float32), axis=-1)

    return jax.jit(predict, out_shardings=sharding.batch_sharding(mesh))


def _local_rows(x: jax.Array, mesh) -> np.ndarray:
    spec = sharding.batch_sharding(mesh).spec
    return np.asarray(multihost_utils.global_array_to_host_local_array(x, mesh, spec))


def run_views(predict_fn, params, dataset, mesh, num_videos: int, num_classes: int) -> Result:
    """Runs every batch of an eval dataset (make_eval_dataset element layout) and
    fuses the views; results are gathered across processes.

    Every process must call this with its shard of the same evaluation (the
    datasets yield the same number of batches on every process).
    """
    sums: dict[int, np.ndarray] = {}
    counts: dict[int, int] = {}
    labels: dict[int, int] = {}
    for local in dataset:
        batch = common.global_batch({'video': local['video']}, mesh)
        probs = _local_rows(predict_fn(params, batch['video']), mesh).astype(np.float64)
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


def make_dataset(cfg, records, spec, mode: str):
    """The eval dataset of `cfg` ('val': 1 view; 'test': segments x crops) for this process."""
    d = cfg.data
    n_proc = jax.process_count()
    if cfg.eval_batch_size % n_proc:
        raise ValueError(
            f'eval_batch_size {cfg.eval_batch_size} is not divisible by {n_proc} processes'
        )
    return finetune_pipeline.make_eval_dataset(
        records,
        batch_size=cfg.eval_batch_size // n_proc,
        num_frames=spec.num_frames,
        sampling_rate=d.sampling_rate,
        input_size=spec.input_size,
        test_num_segment=d.test_num_segment,
        test_num_crop=d.test_num_crop,
        shard_index=jax.process_index(),
        shard_count=n_proc,
        mode=mode,
        sampler=d.sampler,
        read_threads=d.read_threads,
        prefetch_buffer_size=max(2, d.read_threads),
        frame_reader=finetune_pipeline.get_frame_reader(d.get('reader', 'video')),
    )


def evaluate(cfg, records, spec, predict_fn, params, mesh, num_classes: int, mode: str) -> Result:
    """The test protocol ('test') or 1-view validation ('val') of `records`."""
    ds = make_dataset(cfg, records, spec, mode)
    return run_views(predict_fn, params, ds, mesh, len(records), num_classes)


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
