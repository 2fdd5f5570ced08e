"""The grain graphs: training streams, evaluation passes, feature-extraction windows.

Training graph (per process), for any stage transform of ``data_pipelines.transforms``::

    MapDataset.source(records).seed(seed).shuffle().repeat(num_epochs)
      .random_map(transform)                # read + sample + augment; per-element rng
      [shard_index::shard_count]            # disjoint per-process shards (lazy)
      .batch(batch_size, drop_remainder=True)
      .to_iter_dataset(ReadOptions(...))    # thread prefetch
      [.mp_prefetch(worker_count)]          # only when worker_count > 0
      .map(flatten the per-video rows)      # a reshape, in the consuming process

This mirrors the official dataset + ``multiple_pretrain_samples_collate`` /
``multiple_samples_collate`` + DistributedSampler(shuffle) + ``drop_last=True``
(spec 4.3, 5.1).  Sharding after the shuffle is what the DistributedSampler
does (one global permutation, rank-strided); here the stride runs over the
repeated stream, so no padding is needed.  A batch holds ``batch_size`` videos,
i.e. ``batch_size * num_sample`` rows; the rows of one video are consecutive.

Evaluation graph: this process's videos ``records[shard_index::shard_count]``
(disjoint, no duplicates), one read per video producing all its views, then
padding rows so that every process yields the same number of batches,
rebatched to ``batch_size`` rows.  Element: ``transforms.EvalTransform``'s
arrays with ``batch_size`` rows.

Feature windows: consecutive-frame windows of one video, decoded once
(official ``extract_tad_feature.py``, spec 7).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence

import grain
import numpy as np

from data_pipelines import decode
from data_pipelines.crops import squash_resize
from data_pipelines.decode import VideoDecodeError
from data_pipelines.readers import FrameReader
from data_pipelines.records import VideoRecord
from data_pipelines.transforms import EvalTransform

__all__ = [
    "make_train_dataset",
    "eval_batches_per_process",
    "make_eval_dataset",
    "feature_windows",
]


class _FlattenSamples(grain.transforms.Map):
    """Batched ``[B, k, ...]`` -> ``[B * k, ...]`` for every array; ``skipped`` summed over B.

    ``k`` is the per-video sample axis (``num_sample``).  Official
    ``multiple_pretrain_samples_collate`` / ``multiple_samples_collate``
    (utils.py) flatten the same way: the rows of one video stay consecutive.
    """

    def map(self, element: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = {k: v.reshape((-1,) + v.shape[2:]) for k, v in element.items() if k != "skipped"}
        out["skipped"] = np.int32(np.sum(element["skipped"]))
        return out


def _ensure_absl_flags_parsed() -> None:
    """grain multiprocessing reads absl flags; mark them parsed if nobody did (env_notes)."""
    try:
        from absl import flags
    except ImportError:
        return
    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()


def _check_positive(**kwargs: int) -> None:
    for name, value in kwargs.items():
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")


def _check_arguments(
    caller: str, records: Sequence[VideoRecord], batch_size: int, shard_index: int, shard_count: int
) -> None:
    if not records:
        raise ValueError(f"{caller}: records is empty")
    _check_positive(batch_size=batch_size)
    if not 0 <= shard_index < shard_count:
        raise ValueError(f"need 0 <= shard_index < shard_count, got {shard_index}, {shard_count}")


def _read_options(read_threads: int, prefetch_buffer_size: int | None) -> grain.ReadOptions:
    """``grain.ReadOptions`` whose buffer never starves the threads.

    A buffer smaller than the thread count limits the threads that run (grain
    warns), so ``None`` means ``max(2, read_threads)`` and a smaller explicit
    size is refused.
    """
    if prefetch_buffer_size is None:
        prefetch_buffer_size = max(2, read_threads)
    if 0 < prefetch_buffer_size < read_threads:
        raise ValueError(
            f"prefetch_buffer_size {prefetch_buffer_size} < read_threads {read_threads} would "
            "leave threads idle; use None (= max(2, read_threads)), >= read_threads, or 0"
        )
    return grain.ReadOptions(num_threads=read_threads, prefetch_buffer_size=prefetch_buffer_size)


def make_train_dataset(
    records: Sequence[VideoRecord],
    transform: grain.transforms.RandomMap,
    *,
    batch_size: int,
    seed: int = 0,
    shard_index: int = 0,
    shard_count: int = 1,
    num_epochs: int | None = None,
    worker_count: int = 0,
    read_threads: int = 1,
    prefetch_buffer_size: int | None = None,
) -> grain.IterDataset:
    """Build a training ``grain.IterDataset`` (module docstring: the graph).

    Args:
      records: the samples (the same list on every process).
      transform: the stage's ``RandomMap`` from record to per-video rows
        (``transforms.PretrainTransform`` or ``transforms.ClassifyTransform``);
        every array but ``"skipped"`` has a leading sample axis ``[k, ...]``.
      batch_size: videos per batch for this process; the batch holds
        ``batch_size * k`` rows.
      seed: shuffle/augmentation seed; use the same on every process.
      shard_index, shard_count: this process's shard (``jax.process_index()``,
        ``jax.process_count()``); shards are disjoint.
      num_epochs: passes over ``records`` (None = forever).
      worker_count: grain worker processes (``mp_prefetch``); 0 = in-process.
      read_threads: prefetch threads (``grain.ReadOptions``) of the process that
        reads: this one, or each worker.  Workers with one thread and the default
        buffer stack batches straight into shared memory (``_stack_in_shared_memory``).
      prefetch_buffer_size: buffered elements; None = ``max(2, read_threads)``.

    Returns:
      IterDataset of the transform's arrays flattened to ``[batch_size * k, ...]``
      and ``"skipped": int32 []`` (unreadable videos replaced in the batch);
      ``iter(ds)`` supports ``get_state``/``set_state``.

    Raises:
      ValueError: empty records, bad batch size, shard or prefetch arguments.
    """
    _check_arguments("make_train_dataset", records, batch_size, shard_index, shard_count)
    options = _read_options(read_threads, prefetch_buffer_size)
    ds = grain.MapDataset.source(list(records)).seed(seed).shuffle().repeat(num_epochs)
    # random_map BEFORE the shard slice: grain seeds each element's rng from its
    # index in the map's parent, so mapping after slicing would hand every
    # process the same rng streams (identical crops/starts on all hosts).  This
    # way element i of the global stream gets the same rows whatever the shard
    # count.  Map datasets are lazy, so only this shard's elements are read.
    ds = ds.random_map(transform)
    if shard_count > 1:
        ds = ds[shard_index::shard_count]
    ds = ds.batch(batch_size, drop_remainder=True)
    if worker_count > 0 and read_threads == 1 and prefetch_buffer_size is None:
        options = _stack_in_shared_memory(ds) or options
    it_ds = ds.to_iter_dataset(options)
    if worker_count > 0:
        _ensure_absl_flags_parsed()
        it_ds = it_ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=worker_count))
    # Flattening [B, k, ...] is a reshape (a view), so it costs nothing where it runs.
    return it_ds.map(_FlattenSamples())


def _stack_in_shared_memory(batches: grain.MapDataset) -> grain.ReadOptions | None:
    """Make worker processes stack each batch straight into shared memory.

    grain asks for this only of the dataset given to ``mp_prefetch`` (here
    ``to_iter_dataset``'s, which cannot pass it on), and with one worker not even
    that; otherwise a worker stacks every batch and then copies it into shared
    memory (docs/benchmarks.md 16, 17).  The worker then reads without a prefetch
    buffer of its own: grain frees the batches it has sent or is sending when the
    iterator closes, not ones waiting in a worker's buffer.  Never in process:
    nobody would free the memory.

    Returns:
      the ``ReadOptions`` for inside the workers (one thread, no buffer), or None
      where this grain's batch cannot (the method is grain's internal hook; workers
      then copy, as before).
    """
    if not hasattr(batches, "enable_shared_memory_output"):
        return None
    batches.enable_shared_memory_output()
    return grain.ReadOptions(num_threads=1, prefetch_buffer_size=0)


def eval_batches_per_process(
    num_videos: int, views_per_video: int, batch_size: int, shard_count: int
) -> int:
    """Batches every process yields: ``ceil(ceil(N / P) * V / B)``.

    The largest shard (``ceil(N / P)`` videos) fixes the count; smaller shards
    are padded with ``valid=False`` rows.
    """
    return math.ceil(math.ceil(num_videos / shard_count) * views_per_video / batch_size)


def make_eval_dataset(
    records: Sequence[VideoRecord],
    transform: EvalTransform,
    *,
    batch_size: int,
    shard_index: int = 0,
    shard_count: int = 1,
    read_threads: int = 1,
    prefetch_buffer_size: int | None = None,
) -> grain.IterDataset:
    """Build the finite validation/test ``grain.IterDataset`` (module docstring: graph).

    Process ``shard_index`` evaluates ``records[shard_index::shard_count]``;
    every process yields exactly ``eval_batches_per_process(len(records),
    transform.views, batch_size, shard_count)`` batches of ``batch_size`` rows,
    the tail padded with ``valid=False`` rows.  Rows of one video are
    consecutive; a video's rows may span two batches.

    Args:
      records: the evaluation list (the same on every process).
      transform: the ``EvalTransform`` (mode, views, sampler, reader).
      batch_size: rows (views) per batch.
      shard_index, shard_count: this process's shard.
      read_threads: videos read in parallel (``grain.ReadOptions``).
      prefetch_buffer_size: buffered videos; None = ``max(2, read_threads)``.

    Returns:
      IterDataset yielding one pass of ``{"video": uint8 [B, T, S, S, 3], "label":
      int32 [B], "video_index": int32 [B] (-1: padding), "view": int32 [B]
      (-1: padding), "valid": bool [B]}``.

    Raises:
      ValueError: empty records, bad batch size, shard or prefetch arguments.
    """
    _check_arguments("make_eval_dataset", records, batch_size, shard_index, shard_count)
    options = _read_options(read_threads, prefetch_buffer_size)
    views = transform.views
    mine = range(shard_index, len(records), shard_count)
    items: list[tuple] = [(i, records[i], views) for i in mine]
    total_rows = batch_size * eval_batches_per_process(len(records), views, batch_size, shard_count)
    pad = total_rows - len(mine) * views
    while pad > 0:
        rows = min(pad, batch_size)
        items.append((-1, None, rows))
        pad -= rows
    it_ds = grain.MapDataset.source(items).map(transform).to_iter_dataset(options)
    return grain.experimental.RebatchIterDataset(it_ds, batch_size, drop_remainder=False)


def feature_windows(
    video: str | VideoRecord,
    *,
    step: int,
    num_frames: int = 16,
    input_size: int = 224,
    batch_size: int = 1,
    reader: FrameReader | None = None,
) -> Iterator[np.ndarray]:
    """Consecutive-frame windows of one video for feature extraction (spec 7).

    The video is decoded once, sequentially (a file with ``decode.iter_frames``, a
    stored record with ``reader``, a chunk of frames at a time); each frame
    is squash-resized to ``input_size x input_size`` (``crops.squash_resize``:
    bilinear, aspect not kept, no normalisation) once, and only the frames
    still needed by a pending window are kept.  Windows start at frames
    ``0, step, 2 * step, ...`` while they fit (official ``range(0, T - 15,
    step)`` for 16 frames: step 4 THUMOS14, 16 FineAction) and hold frames
    ``[s, s + num_frames)``.  A decode error after the first frame ends the
    video there with a warning (fewer windows); a video shorter than
    ``num_frames`` yields nothing (officially a crash in ``np.vstack([])``).

    Args:
      video: video file, or a stored record (``VideoRecord`` with ``offset >= 0``).
      step: window stride in frames.
      num_frames: frames per window.
      input_size: output side in pixels.
      batch_size: windows per yielded batch (the last may be smaller).
      reader: the stored split's reader (stored records only).

    Returns:
      iterator of ``np.uint8 [n, num_frames, input_size, input_size, 3]``, ``n <= batch_size``.

    Raises:
      ValueError: non-positive ``step``, ``num_frames``, ``input_size`` or ``batch_size``.
      VideoDecodeError: a missing file (at once); while iterating, an unreadable
        file or an error before the first frame.
    """
    _check_positive(step=step, num_frames=num_frames, input_size=input_size, batch_size=batch_size)
    if isinstance(video, VideoRecord):
        frames = _stored_frames(video, reader)
    elif not os.path.isfile(video):
        raise VideoDecodeError(video, "file does not exist")
    else:
        frames = (f.to_ndarray(format="rgb24") for f in decode.iter_frames(video))
    return _feature_windows(frames, step, num_frames, input_size, batch_size)


def _stored_frames(record: VideoRecord, reader: FrameReader, chunk: int = 64) -> Iterator[np.ndarray]:
    for start in range(0, record.total_frames, chunk):
        yield from reader.decode_frames(record, np.arange(start, min(start + chunk, record.total_frames)))


def _feature_windows(
    frames: Iterator[np.ndarray], step: int, num_frames: int, input_size: int, batch_size: int
) -> Iterator[np.ndarray]:
    buf: list[np.ndarray] = []  # resized frames buf_start, buf_start + 1, ...
    buf_start = 0
    next_start = 0  # first frame of the next window
    windows: list[np.ndarray] = []
    for k, frame in enumerate(frames):
        if k < next_start:  # between windows when step > num_frames
            buf_start = k + 1
            continue
        buf.append(squash_resize(frame[None], input_size)[0])
        while next_start + num_frames <= k + 1:
            i = next_start - buf_start
            windows.append(np.stack(buf[i : i + num_frames]))
            next_start += step
            if len(windows) == batch_size:
                yield np.stack(windows)
                windows = []
        drop = min(next_start - buf_start, len(buf))
        if drop > 0:
            del buf[:drop]
            buf_start += drop
    if windows:
        yield np.stack(windows)
