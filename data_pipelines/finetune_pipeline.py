"""grain input pipelines for fine-tuning, evaluation and feature extraction.

Training graph (per process; like ``pipeline.make_pretrain_dataset``)::

    MapDataset.source(records).seed(seed).shuffle().repeat(num_epochs)
      .random_map(decode once + num_sample x (RandAugment, crop, flip, erase box))
      [shard_index::shard_count]            # after random_map: per-element rngs
      .batch(batch_size, drop_remainder=True).map(flatten num_sample)
      .to_iter_dataset(ReadOptions(...)) [.mp_prefetch(worker_count)]

Training element::

    {"video":     uint8 [B * num_sample, T, S, S, 3],   # RGB, not normalised
     "label":     int32 [B * num_sample],
     "erase_box": int32 [B * num_sample, 4],            # top, left, h, w; h == 0: none
     "skipped":   int32 []}                             # unreadable videos replaced

The ``num_sample`` rows of one video are consecutive and share one decode
(official repeated augmentation, spec 5.1).  The consumer normalises
(/255, ImageNet mean/std), then fills each ``erase_box`` with fresh N(0, 1)
noise per frame (``finetune_transforms.apply_erasing`` is the reference),
then applies mixup/cutmix.

Evaluation graph: this process's videos ``records[shard_index::shard_count]``
(disjoint, no duplicates), one decode per video producing all its views,
then padding rows so that every process yields the same number of batches,
rebatched to ``batch_size`` rows.  Element::

    {"video":       uint8 [B, T, S, S, 3],
     "label":       int32 [B],
     "video_index": int32 [B],   # index into ``records``; -1 for padding
     "view":        int32 [B],   # chunk * test_num_crop + split; -1 for padding
     "valid":       bool  [B]}   # False for padding rows and unreadable videos

Views per video: ``mode='val'``: 1 (centre clip, short side S + centre crop);
``mode='test'``: ``test_num_segment * test_num_crop`` (spec 5.4).  An
unreadable video is logged and its rows are returned with ``valid=False``
(officially the test loader retries the same file forever).

Frame reader: every dataset reads video files through a :class:`FrameReader`
(``num_frames(path, exact)`` + ``decode_frames(path, indices)``, the contract of
``data_pipelines.decode``): ``VIDEO_READER`` (PyAV, the default) or
``FAST_READER`` (``data_pipelines.fast_format``: the output of ``python -m
vmae2.tools.make_fast_dataset``, JPEG ArrayRecord or short-GOP mp4), chosen by
name with :func:`get_frame_reader` (the trainers' ``config.data.reader``).
:func:`fast_format_records` points a labelled list at the fast-format files.
Raw-frame folders are always read with ``rawframes.load_rawframes``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
from collections.abc import Callable, Iterator, Sequence

import av
import grain
import numpy as np

from data_pipelines import fast_format
from data_pipelines.decode import VideoDecodeError, decode_frames
from data_pipelines.decode import num_frames as count_frames
from data_pipelines.finetune_sampling import (
    dense_clip_indices,
    dense_test_chunk_start,
    dense_test_sampled_indices,
    tsn_segment_indices,
    tsn_test_all_indices,
)
from data_pipelines.finetune_transforms import (
    eval_spatial_crop,
    resize_bilinear,
    resize_short_side,
    train_view,
    val_view,
)
from data_pipelines.labels import ClsRecord
from data_pipelines.rawframes import load_rawframes

__all__ = [
    "SAMPLERS",
    "FrameReader",
    "VIDEO_READER",
    "FAST_READER",
    "READERS",
    "get_frame_reader",
    "fast_format_records",
    "load_record_frames",
    "FinetuneSampleTransform",
    "make_finetune_train_dataset",
    "EvalVideoTransform",
    "eval_views_per_video",
    "eval_batches_per_process",
    "make_eval_dataset",
    "make_feature_windows",
    "MAX_CONSECUTIVE_FAILURES",
]

logger = logging.getLogger("data_pipelines")

MAX_CONSECUTIVE_FAILURES = 100
SAMPLERS = ("dense", "tsn")
_READ_ERRORS = (VideoDecodeError, av.FFmpegError, OSError)


def _reason(e: BaseException) -> str:
    return e.reason if isinstance(e, VideoDecodeError) else f"{type(e).__name__}: {e}"


@dataclasses.dataclass(frozen=True)
class FrameReader:
    """How video files are read: two functions with the contract of ``data_pipelines.decode``.

    Attributes:
      num_frames: ``(path, exact) -> int`` frame count (``exact=False``: the
        cheap header count is enough).
      decode_frames: ``(path, indices) -> np.uint8 [len(indices), H, W, 3]`` RGB
        for non-decreasing indices; raises ``VideoDecodeError`` on an unreadable
        file (with ``decoded_frames`` set when the file ends early).

    Both must be module-level functions so that grain worker processes can
    pickle the datasets that hold the reader.
    """

    num_frames: Callable[..., int]
    decode_frames: Callable[..., np.ndarray]


VIDEO_READER = FrameReader(count_frames, decode_frames)  # PyAV (data_pipelines.decode)
FAST_READER = FrameReader(fast_format.num_frames, fast_format.decode_frames)
READERS = {"video": VIDEO_READER, "fast": FAST_READER}


def get_frame_reader(name: str) -> FrameReader:
    """The reader of ``config.data.reader``: ``'video'`` (PyAV) or ``'fast'`` (fast format).

    Raises:
      ValueError: another name.
    """
    if name not in READERS:
        raise ValueError(f"data.reader {name!r}: choose one of {tuple(READERS)}")
    return READERS[name]


def fast_format_records(records: Sequence[ClsRecord], data_root: str = "") -> list[ClsRecord]:
    """A labelled list re-addressed to the fast-format copies of its videos.

    ``python -m vmae2.tools.make_fast_dataset --input ROOT --output FAST`` writes
    the video ``ROOT/a/b.avi`` to ``FAST/a/b.mp4`` (``--format video``) or
    ``FAST/a/b.array_record`` (``--format jpeg-arrayrecord``) and the format in
    ``FAST/manifest.json``.  So the list is read with ``data_root=FAST`` instead
    of ``ROOT`` (list files unchanged), and when ``{data_root}/manifest.json``
    exists every video path's extension is replaced by that format's
    (``FAST/a/b.avi`` -> ``FAST/a/b.array_record``).  Without a manifest the
    paths are kept as listed (a list may name fast-format files directly).
    Raw-frame folders are kept (they are not converted).  A missing fast file
    is an unreadable video, skipped and counted like any other.

    Args:
      records: as read by ``labels.read_finetune_list(list, data_root)``.
      data_root: the folder written by ``make_fast_dataset`` (the list's data_root).

    Returns:
      new records, same order and labels.

    Raises:
      ValueError: a manifest whose format is unknown.
    """
    manifest = os.path.join(data_root, "manifest.json") if data_root else ""
    if not manifest or not os.path.isfile(manifest):
        return list(records)
    with open(manifest, encoding="utf-8") as f:
        fmt = json.load(f).get("format")
    if fmt not in fast_format.FORMAT_SUFFIXES:
        raise ValueError(
            f"{manifest}: unknown fast format {fmt!r}, expected {sorted(fast_format.FORMAT_SUFFIXES)}"
        )
    suffix = fast_format.FORMAT_SUFFIXES[fmt]
    return [
        dataclasses.replace(r, path=os.path.splitext(r.path)[0] + suffix) if r.is_video else r
        for r in records
    ]


def load_record_frames(
    record: ClsRecord, index_fn, frame_reader: FrameReader = VIDEO_READER
) -> np.ndarray:
    """Decode the frames ``index_fn(total_frames)`` of a video file or raw-frame folder.

    For a video file ``total_frames`` is the container's header count (cheap,
    like decord's ``len(vr)``); if the file then decodes fewer frames
    (truncated tail), the indices are recomputed over the frames that did
    decode.  For a raw-frame folder it is ``record.total_frames``.

    Args:
      record: the sample.
      index_fn: ``total_frames -> int64 [n]`` non-decreasing indices.
      frame_reader: how video files are read (default PyAV).

    Returns:
      ``np.uint8 [n, H, W, 3]`` RGB.

    Raises:
      VideoDecodeError: missing, unreadable or empty video / frames.
    """
    if not record.is_video:
        return load_rawframes(record.path, index_fn(record.total_frames))
    total = frame_reader.num_frames(record.path, exact=False)
    if total < 1:
        raise VideoDecodeError(record.path, "video has no frames")
    try:
        return frame_reader.decode_frames(record.path, index_fn(total))
    except VideoDecodeError as e:
        short = e.decoded_frames
        if short is None or short < 1 or short >= total:
            raise
    return frame_reader.decode_frames(record.path, index_fn(short))


def _check_sampler(sampler: str) -> None:
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")


class FinetuneSampleTransform(grain.transforms.RandomMap):
    """``ClsRecord`` -> one record's ``num_sample`` training clips.

    Output: ``{"video": uint8 [num_sample, T, S, S, 3], "label": int32
    [num_sample], "erase_box": int32 [num_sample, 4], "skipped": int32 []}``.

    Temporal sampling: ``'dense'`` (``dense_clip_indices``, train) or
    ``'tsn'`` (``tsn_segment_indices`` with ``num_frames`` segments, train).
    One decode, then ``num_sample`` independent ``train_view`` augmentations.
    On an unreadable video it logs a warning on logger ``"data_pipelines"``
    and retries with a record drawn uniformly from ``records`` with the
    element rng (official: ``np.random.randint(len(self))``), counting it in
    ``"skipped"``.

    Raises:
      RuntimeError: ``MAX_CONSECUTIVE_FAILURES`` consecutive unreadable videos.
    """

    def __init__(
        self,
        records: Sequence[ClsRecord],
        num_frames: int = 16,
        sampling_rate: int = 4,
        input_size: int = 224,
        num_sample: int = 2,
        rand_augment: bool = True,
        flip: bool = True,
        reprob: float = 0.25,
        sampler: str = "dense",
        rand_augment_spec: str = "rand-m7-n4-mstd0.5-inc1",
        frame_reader: FrameReader = VIDEO_READER,
    ):
        _check_sampler(sampler)
        self.records = list(records)
        self.num_frames = num_frames
        self.sampling_rate = sampling_rate
        self.input_size = input_size
        self.num_sample = num_sample
        self.rand_augment_spec = rand_augment_spec if rand_augment else None
        self.flip = flip
        self.reprob = reprob
        self.sampler = sampler
        self.frame_reader = frame_reader

    def _frames(self, record: ClsRecord, rng: np.random.Generator) -> np.ndarray:
        if self.sampler == "tsn":
            return load_record_frames(
                record,
                lambda n: tsn_segment_indices(n, self.num_frames, "train", rng, record.path),
                self.frame_reader,
            )
        return load_record_frames(
            record,
            lambda n: dense_clip_indices(
                n, self.num_frames, self.sampling_rate, "train", rng, record.path
            ),
            self.frame_reader,
        )

    def random_map(self, element: ClsRecord, rng: np.random.Generator) -> dict[str, np.ndarray]:
        record = element
        for skipped in range(MAX_CONSECUTIVE_FAILURES):
            try:
                frames = self._frames(record, rng)
                break
            except _READ_ERRORS as e:
                logger.warning("skipping unreadable video %s: %s", record.path, _reason(e))
                record = self.records[int(rng.integers(len(self.records)))]
        else:
            raise RuntimeError(
                f"no readable video among {MAX_CONSECUTIVE_FAILURES} consecutive attempts "
                f"(from {len(self.records)} records, last {record.path!r}); check the data paths"
            )
        views = [
            train_view(frames, rng, self.input_size, self.rand_augment_spec, self.flip, self.reprob)
            for _ in range(self.num_sample)
        ]
        return {
            "video": np.stack([v for v, _ in views]),
            "label": np.full(self.num_sample, record.label, dtype=np.int32),
            "erase_box": np.stack([b for _, b in views]).astype(np.int32),
            "skipped": np.int32(skipped),
        }


class _FlattenSamples(grain.transforms.Map):
    """Batched ``[B, num_sample, ...]`` -> ``[B * num_sample, ...]``; sum ``skipped`` over B."""

    def map(self, element: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = {
            k: element[k].reshape((-1,) + element[k].shape[2:])
            for k in ("video", "label", "erase_box")
        }
        out["skipped"] = np.int32(np.sum(element["skipped"]))
        return out


def _ensure_absl_flags_parsed() -> None:
    """grain multiprocessing reads absl flags; mark them parsed if nobody did."""
    try:
        from absl import flags
    except ImportError:
        return
    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()


def _check_shard(shard_index: int, shard_count: int) -> None:
    if not 0 <= shard_index < shard_count:
        raise ValueError(f"need 0 <= shard_index < shard_count, got {shard_index}, {shard_count}")


def make_finetune_train_dataset(
    records: Sequence[ClsRecord],
    *,
    batch_size: int,
    num_frames: int = 16,
    sampling_rate: int = 4,
    input_size: int = 224,
    num_sample: int = 2,
    rand_augment: bool = True,
    flip: bool = True,
    reprob: float = 0.25,
    seed: int = 0,
    shard_index: int = 0,
    shard_count: int = 1,
    worker_count: int = 0,
    sampler: str = "dense",
    num_epochs: int | None = None,
    read_threads: int = 1,
    prefetch_buffer_size: int = 2,
    frame_reader: FrameReader = VIDEO_READER,
) -> grain.IterDataset:
    """Build the fine-tuning training ``grain.IterDataset`` (module docstring: graph, element).

    Args:
      records: labelled videos / raw-frame folders (the same list on every process).
      batch_size: videos per batch for this process (rows: ``batch_size * num_sample``).
      num_frames: clip length T (16); the number of TSN segments for ``'tsn'``.
      sampling_rate: dense stride parameter (4; 2 for HMDB51); unused by ``'tsn'``.
      input_size: crop side S in pixels (224).
      num_sample: repeated-augmentation clips per decoded video (official 2).
      rand_augment: RandAugment ``rand-m7-n4-mstd0.5-inc1`` on/off.
      flip: horizontal flip with p=0.5 (official: off for SSv2).
      reprob: random-erasing probability (0.25; 0 gives all-zero boxes).
      seed: shuffle/augmentation seed, the same on every process.
      shard_index, shard_count: this process's disjoint shard.
      worker_count: grain worker processes (``mp_prefetch``); 0 = in-process.
      sampler: ``'dense'`` (Kinetics-style) or ``'tsn'`` (SSv2).
      num_epochs: passes over ``records`` (None = forever).
      read_threads, prefetch_buffer_size: ``grain.ReadOptions``.
      frame_reader: how video files are read: ``VIDEO_READER`` (PyAV, default)
        or ``FAST_READER`` (``make_fast_dataset`` output; see :func:`get_frame_reader`).

    Returns:
      IterDataset; ``iter(ds)`` supports ``get_state``/``set_state``.

    Raises:
      ValueError: empty records, bad sizes, sampler or shard arguments.
    """
    if not records:
        raise ValueError("make_finetune_train_dataset: records is empty")
    if batch_size < 1 or num_sample < 1:
        raise ValueError(f"batch_size and num_sample must be >= 1, got {batch_size}, {num_sample}")
    _check_shard(shard_index, shard_count)
    _check_sampler(sampler)
    records = list(records)
    transform = FinetuneSampleTransform(
        records,
        num_frames,
        sampling_rate,
        input_size,
        num_sample,
        rand_augment,
        flip,
        reprob,
        sampler,
        frame_reader=frame_reader,
    )
    ds = grain.MapDataset.source(records).seed(seed).shuffle().repeat(num_epochs)
    # random_map before the shard slice: grain seeds each element's rng by its
    # index in the map's parent, so every process gets distinct augmentations.
    ds = ds.random_map(transform)
    if shard_count > 1:
        ds = ds[shard_index::shard_count]
    ds = ds.batch(batch_size, drop_remainder=True).map(_FlattenSamples())
    it_ds = ds.to_iter_dataset(
        grain.ReadOptions(num_threads=read_threads, prefetch_buffer_size=prefetch_buffer_size)
    )
    if worker_count > 0:
        _ensure_absl_flags_parsed()
        it_ds = it_ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=worker_count))
    return it_ds


def eval_views_per_video(mode: str, test_num_segment: int, test_num_crop: int) -> int:
    """Rows per video: 1 for ``'val'``, ``test_num_segment * test_num_crop`` for ``'test'``.

    Raises:
      ValueError: bad mode or non-positive counts.
    """
    if mode not in ("val", "test"):
        raise ValueError(f"mode must be 'val' or 'test', got {mode!r}")
    if test_num_segment < 1 or test_num_crop < 1:
        raise ValueError(
            f"test_num_segment and test_num_crop must be >= 1, got {test_num_segment}, "
            f"{test_num_crop}"
        )
    return 1 if mode == "val" else test_num_segment * test_num_crop


def eval_batches_per_process(
    num_videos: int, views_per_video: int, batch_size: int, shard_count: int
) -> int:
    """Batches every process yields: ``ceil(ceil(N / P) * V / B)``.

    The largest shard (``ceil(N / P)`` videos) fixes the count; smaller shards
    are padded with ``valid=False`` rows.
    """
    return math.ceil(math.ceil(num_videos / shard_count) * views_per_video / batch_size)


class EvalVideoTransform(grain.transforms.Map):
    """``(video_index, ClsRecord | None, rows)`` -> all eval rows of one video (or padding).

    A ``None`` record is padding: ``rows`` zero clips with ``valid=False``,
    ``video_index = view = -1``.  Otherwise the video is decoded once and its
    views produced in the order ``view = chunk * test_num_crop + split``:

    * ``'val'``: ``dense_clip_indices(mode='val')`` / ``tsn_segment_indices(mode='val')``,
      then ``val_view`` (short side S, centre crop S);
    * ``'test'`` dense: ``dense_test_sampled_indices`` decoded, short side
      resized to S, clip ``chunk`` = ``T`` sampled frames from
      ``dense_test_chunk_start``; ``'test'`` tsn: ``tsn_test_all_indices``
      decoded and resized, clip ``chunk`` = ``buffer[chunk::S_t]``; then the
      crop ``split`` of ``eval_spatial_crop`` (spec 5.4).

    An unreadable video gives zero clips with ``valid=False`` and a warning.
    """

    def __init__(
        self,
        num_frames: int = 16,
        sampling_rate: int = 4,
        input_size: int = 224,
        test_num_segment: int = 5,
        test_num_crop: int = 3,
        mode: str = "test",
        sampler: str = "dense",
        frame_reader: FrameReader = VIDEO_READER,
    ):
        _check_sampler(sampler)
        self.views = eval_views_per_video(mode, test_num_segment, test_num_crop)
        self.num_frames = num_frames
        self.sampling_rate = sampling_rate
        self.input_size = input_size
        self.test_num_segment = test_num_segment
        self.test_num_crop = test_num_crop
        self.mode = mode
        self.sampler = sampler
        self.frame_reader = frame_reader

    def _clips(self, record: ClsRecord) -> np.ndarray:
        t, size, reader = self.num_frames, self.input_size, self.frame_reader
        if self.mode == "val":
            if self.sampler == "tsn":
                frames = load_record_frames(
                    record, lambda n: tsn_segment_indices(n, t, "val", path=record.path), reader
                )
            else:
                frames = load_record_frames(
                    record,
                    lambda n: dense_clip_indices(n, t, self.sampling_rate, "val", path=record.path),
                    reader,
                )
            return val_view(frames, size)[None]
        s = self.test_num_segment
        if self.sampler == "tsn":
            buffer = resize_short_side(
                load_record_frames(
                    record, lambda n: tsn_test_all_indices(n, s, t, record.path), reader
                ),
                size,
            )
            temporal = [buffer[chunk::s] for chunk in range(s)]
        else:
            buffer = resize_short_side(
                load_record_frames(
                    record,
                    lambda n: dense_test_sampled_indices(n, t, self.sampling_rate, record.path),
                    reader,
                ),
                size,
            )
            starts = [dense_test_chunk_start(len(buffer), c, s, t) for c in range(s)]
            temporal = [buffer[a : a + t] for a in starts]
        return np.stack(
            [
                eval_spatial_crop(clip, split, self.test_num_crop, size)
                for clip in temporal
                for split in range(self.test_num_crop)
            ]
        )

    def map(self, element: tuple) -> dict[str, np.ndarray]:
        video_index, record, rows = element
        shape = (rows, self.num_frames, self.input_size, self.input_size, 3)
        valid = record is not None
        video = None
        if record is not None:
            try:
                video = self._clips(record)
            except _READ_ERRORS as e:
                logger.warning("unreadable eval video %s: %s", record.path, _reason(e))
                valid = False
        if video is None:
            video = np.zeros(shape, dtype=np.uint8)
        return {
            "video": video,
            "label": np.full(rows, 0 if record is None else record.label, dtype=np.int32),
            "video_index": np.full(rows, video_index, dtype=np.int32),
            "view": np.arange(rows, dtype=np.int32)
            if record is not None
            else np.full(rows, -1, np.int32),
            "valid": np.full(rows, valid, dtype=bool),
        }


def make_eval_dataset(
    records: Sequence[ClsRecord],
    *,
    batch_size: int,
    num_frames: int = 16,
    sampling_rate: int = 4,
    input_size: int = 224,
    test_num_segment: int = 5,
    test_num_crop: int = 3,
    shard_index: int = 0,
    shard_count: int = 1,
    mode: str = "test",
    sampler: str = "dense",
    read_threads: int = 1,
    prefetch_buffer_size: int = 2,
    frame_reader: FrameReader = VIDEO_READER,
) -> grain.IterDataset:
    """Build the finite validation/test ``grain.IterDataset`` (module docstring: element).

    Process ``shard_index`` evaluates ``records[shard_index::shard_count]``;
    every process yields exactly ``eval_batches_per_process(...)`` batches of
    ``batch_size`` rows, the tail padded with ``valid=False`` rows.  Rows of
    one video are consecutive; a video's rows may span two batches.

    Args:
      records: the evaluation list (the same on every process).
      batch_size: rows (views) per batch.
      num_frames, sampling_rate, input_size: as for training.
      test_num_segment, test_num_crop: temporal x spatial views for ``'test'``
        (official 5 x 3 Kinetics, 2 x 3 SSv2); ignored for ``'val'``.
      shard_index, shard_count: this process's shard.
      mode: ``'val'`` (1 view) or ``'test'``.
      sampler: ``'dense'`` or ``'tsn'``.
      read_threads, prefetch_buffer_size: ``grain.ReadOptions`` (videos decoded
        in parallel).
      frame_reader: how video files are read (default PyAV; see :func:`get_frame_reader`).

    Returns:
      IterDataset yielding one pass.

    Raises:
      ValueError: empty records, bad mode/sampler/sizes/shard arguments.
    """
    if not records:
        raise ValueError("make_eval_dataset: records is empty")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    _check_shard(shard_index, shard_count)
    views = eval_views_per_video(mode, test_num_segment, test_num_crop)
    records = list(records)
    mine = list(range(shard_index, len(records), shard_count))
    items: list[tuple] = [(i, records[i], views) for i in mine]
    total_rows = batch_size * eval_batches_per_process(len(records), views, batch_size, shard_count)
    pad = total_rows - len(mine) * views
    while pad > 0:
        rows = min(pad, batch_size)
        items.append((-1, None, rows))
        pad -= rows
    transform = EvalVideoTransform(
        num_frames,
        sampling_rate,
        input_size,
        test_num_segment,
        test_num_crop,
        mode,
        sampler,
        frame_reader=frame_reader,
    )
    ds = grain.MapDataset.source(items).map(transform)
    it_ds = ds.to_iter_dataset(
        grain.ReadOptions(num_threads=read_threads, prefetch_buffer_size=prefetch_buffer_size)
    )
    return grain.experimental.RebatchIterDataset(it_ds, batch_size, drop_remainder=False)


def make_feature_windows(
    path: str,
    *,
    step: int,
    num_frames: int = 16,
    input_size: int = 224,
    batch_size: int = 1,
) -> Iterator[np.ndarray]:
    """Consecutive-frame windows of one video for feature extraction (spec 7).

    The video is decoded once, sequentially; each frame is squash-resized to
    ``input_size x input_size`` (bilinear, aspect not kept, no normalisation)
    once, and only the frames still needed by a pending window are kept.
    Windows start at ``feature_window_starts(T, step, num_frames)`` (official
    ``range(0, T - 15, step)``: step 4 THUMOS14, 16 FineAction) and hold frames
    ``[s, s + num_frames)``.  A decode error after the first frame ends the
    video there with a warning (fewer windows); a video shorter than
    ``num_frames`` yields nothing.

    Args:
      path: video file.
      step: window stride in frames.
      batch_size: windows per yielded batch (the last may be smaller).

    Returns:
      iterator of ``np.uint8 [n, num_frames, input_size, input_size, 3]``, ``n <= batch_size``.

    Raises:
      ValueError: non-positive ``step``, ``num_frames``, ``input_size`` or ``batch_size``.
      VideoDecodeError: (while iterating) missing/unreadable file or an error
        before the first frame.
    """
    for name, value in (
        ("step", step),
        ("num_frames", num_frames),
        ("input_size", input_size),
        ("batch_size", batch_size),
    ):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if not os.path.isfile(path):
        raise VideoDecodeError(path, "file does not exist")
    return _feature_windows(path, step, num_frames, input_size, batch_size)


def _decoded_frames(path: str) -> Iterator[np.ndarray]:
    try:
        container = av.open(path, mode="r")
    except (av.FFmpegError, OSError, ValueError) as e:
        raise VideoDecodeError(path, f"cannot open container ({e})") from e
    with container:
        if not container.streams.video:
            raise VideoDecodeError(path, "no video stream")
        count = 0
        try:
            for frame in container.decode(container.streams.video[0]):
                yield frame.to_ndarray(format="rgb24")
                count += 1
        except (av.FFmpegError, OSError, ValueError) as e:
            if count == 0:
                raise VideoDecodeError(path, f"error before the first frame ({e})") from e
            logger.warning("video %s ends with a decode error after %d frames: %s", path, count, e)


def _feature_windows(
    path: str, step: int, num_frames: int, input_size: int, batch_size: int
) -> Iterator[np.ndarray]:
    buf: list[np.ndarray] = []  # resized frames buf_start, buf_start + 1, ...
    buf_start = 0
    next_start = 0  # first frame of the next window
    windows: list[np.ndarray] = []
    for k, frame in enumerate(_decoded_frames(path)):
        if k < next_start:  # between windows when step > num_frames
            buf_start = k + 1
            continue
        buf.append(resize_bilinear(frame[None], input_size, input_size)[0])
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
