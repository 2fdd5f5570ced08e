"""The per-stage grain transforms: a record in, the arrays of its training or eval rows out.

* :class:`PretrainTransform` (RandomMap): official ``HybridVideoMAE`` +
  ``DataAugmentationForVideoMAEv2`` (spec 4.3): one pre-training clip decoded,
  ``num_sample`` GroupMultiScaleCrops of it.
* :class:`ClassifyTransform` (RandomMap): official ``VideoClsDataset`` /
  ``RawFrameClsDataset`` in ``mode='train'`` (spec 5.1-5.3): one clip decoded,
  ``num_sample`` independent ``augment.train_view`` of it.
* :class:`EvalTransform` (Map): the same datasets in ``mode='validation'`` /
  ``'test'`` (spec 5.4): every view of one video from one decode.

Where the training augmentation runs (``augment_on``): ``'host'`` (default, the
official pixels) crops and augments here; ``'device'`` only decodes, puts the
frames on a fixed canvas (``crops.fit_canvas``) and draws the same parameters with
the same samplers, for ``vmae2.ops.augment`` to apply in the train step
(:func:`device_layout`: the arrays).

Training transforms replace an unreadable video by one drawn uniformly from
all records with the element rng (official: a retry with a random index) and
count it in ``"skipped"``; the eval transform marks its rows ``valid=False``
(officially the test loader retries the same file forever).  Warnings go to
logger ``"data_pipelines"``.  Rows stay uint8 and unnormalised: the consumer
normalises (/255, ImageNet mean/std) on the device.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence

import av
import grain
import numpy as np

from data_pipelines import augment, crops, sampling
from data_pipelines.decode import VideoDecodeError
from data_pipelines.readers import VIDEO_READER, FrameReader, load_frames
from data_pipelines.records import VideoRecord

__all__ = [
    "MAX_CONSECUTIVE_FAILURES",
    "AUGMENT_ON",
    "DEFAULT_CANVAS",
    "RAND_AUGMENT_SLOTS",
    "device_layout",
    "PretrainTransform",
    "ClassifyTransform",
    "EvalTransform",
]

logger = logging.getLogger("data_pipelines")

MAX_CONSECUTIVE_FAILURES = 100
AUGMENT_ON = ("host", "device")
# Holds the stored 16:9 (320x568) and 4:3 Kinetics frames and the 240-px datasets
# unscaled; larger frames are scaled down to fit.
DEFAULT_CANVAS = (320, 576)
RAND_AUGMENT_SLOTS = augment.parse_rand_augment_spec(augment.RAND_AUGMENT_SPEC)["num_ops"]


def device_layout(
    videos: int, num_sample: int, num_frames: int, canvas: Sequence[int], labelled: bool
) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """``{key: (shape, dtype)}`` of a batch of ``videos`` videos with ``augment_on='device'``.

    Per video: ``frames`` (the canvas), ``frame_hw`` (decoded size), ``canvas_hw`` (the
    part the frames fill); per row (``num_sample`` a video, consecutive):
    ``crop_box`` (decoded pixels); ``labelled`` (fine-tuning) adds ``flip``,
    ``ra_op`` / ``ra_arg`` (``augment.rand_augment_table``), ``label`` and
    ``erase_box``.  ``skipped`` is not included.
    """
    rows = videos * num_sample
    out = {
        "frames": ((videos, num_frames, *canvas, 3), np.dtype(np.uint8)),
        "frame_hw": ((videos, 2), np.dtype(np.int32)),
        "canvas_hw": ((videos, 2), np.dtype(np.int32)),
        "crop_box": ((rows, 4), np.dtype(np.int32)),
    }
    if labelled:
        out.update(
            flip=((rows,), np.dtype(bool)),
            ra_op=((rows, RAND_AUGMENT_SLOTS), np.dtype(np.int32)),
            ra_arg=((rows, RAND_AUGMENT_SLOTS), np.dtype(np.float32)),
            label=((rows,), np.dtype(np.int32)),
            erase_box=((rows, 4), np.dtype(np.int32)),
        )
    return out


_READ_ERRORS = (VideoDecodeError, av.FFmpegError, OSError)


def _reason(e: BaseException) -> str:
    return e.reason if isinstance(e, VideoDecodeError) else f"{type(e).__name__}: {e}"


@dataclasses.dataclass(kw_only=True, eq=False)
class _TrainTransform(grain.transforms.RandomMap):
    """What the training transforms share: clip geometry, reader, the replacement pool."""

    records: Sequence[VideoRecord] = dataclasses.field(kw_only=False, repr=False)
    num_frames: int = 16
    sampling_rate: int = 4
    input_size: int = 224
    num_sample: int = 1
    reader: FrameReader = VIDEO_READER
    augment_on: str = "host"
    canvas: tuple[int, int] = DEFAULT_CANVAS

    def __post_init__(self):
        if not self.records:
            raise ValueError("records is empty")
        if self.num_sample < 1:
            raise ValueError(f"num_sample must be >= 1, got {self.num_sample}")
        if self.augment_on not in AUGMENT_ON:
            raise ValueError(f"augment_on must be one of {AUGMENT_ON}, got {self.augment_on!r}")
        if len(self.canvas) != 2 or min(self.canvas) < 1:
            raise ValueError(f"canvas must be (height, width) > 0, got {self.canvas!r}")
        self.records = list(self.records)
        self.canvas = tuple(int(v) for v in self.canvas)

    def _on_canvas(self, frames: np.ndarray) -> dict[str, np.ndarray]:
        """The per-video arrays of ``augment_on='device'`` (a leading axis of 1)."""
        canvas, hw = crops.fit_canvas(frames, self.canvas)
        return {
            "frames": canvas[None],
            "frame_hw": np.array([frames.shape[1:3]], dtype=np.int32),
            "canvas_hw": np.array([hw], dtype=np.int32),
        }

    def _read(
        self,
        element: VideoRecord,
        rng: np.random.Generator,
        sampler: Callable[[int, VideoRecord], np.ndarray],
    ) -> tuple[np.ndarray, VideoRecord, int]:
        """The frames ``sampler(total_frames, record)`` of ``element``, or of a record
        drawn uniformly from ``records`` (element rng) when it is unreadable.

        Returns:
          ``(uint8 [n, H, W, 3] frames, the record read, number of records skipped)``.

        Raises:
          RuntimeError: ``MAX_CONSECUTIVE_FAILURES`` unreadable records in a row.
        """
        record = element
        for skipped in range(MAX_CONSECUTIVE_FAILURES):
            try:
                frames = load_frames(record, lambda n: sampler(n, record), self.reader)
                return frames, record, skipped
            except _READ_ERRORS as e:
                logger.warning("skipping unreadable video %s: %s", record.path, _reason(e))
                record = self.records[int(rng.integers(len(self.records)))]
        raise RuntimeError(
            f"no readable video among {MAX_CONSECUTIVE_FAILURES} consecutive attempts "
            f"(from {len(self.records)} records, last {record.path!r}); check the data paths"
        )


@dataclasses.dataclass(kw_only=True, eq=False)
class PretrainTransform(_TrainTransform):
    """``VideoRecord`` -> ``{"video": uint8 [num_sample, T, S, S, 3], "skipped": int32 []}``.

    ``PretrainTransform(records, *, num_frames=16, sampling_rate=4,
    input_size=224, num_sample=1, reader=VIDEO_READER)``.

    Official pre-training temporal sampling (``sampling.pretrain_frame_indices``)
    of a video file or raw-frame folder, read once, then ``num_sample``
    independent ``crops.multi_scale_crop`` of the same frames (official
    repeated augmentation ``--num_sample``).  With ``augment_on='device'`` the
    output is :func:`device_layout` (one video, ``labelled=False``): the frames on
    the canvas and the ``crops.sample_crop`` boxes the host would have cropped.

    Args:
      records: all records, the pool replacements are drawn from.
      num_frames, sampling_rate: clip length T and stride (spec 4.3: 16, 4).
      input_size: crop side S in pixels (224).
      num_sample: crops per decoded clip (official 4 in the scripts).
      reader: how videos are read (``readers.VIDEO_READER`` or a stored split's reader).
      augment_on: ``'host'`` or ``'device'`` (module docstring).
      canvas: ``(height, width)`` of the device canvas (``crops.fit_canvas``).

    Raises:
      ValueError: empty records, ``num_sample < 1``, a bad ``augment_on`` or canvas.
      RuntimeError: (when mapping) ``MAX_CONSECUTIVE_FAILURES`` unreadable videos in a row.
    """

    def random_map(self, element: VideoRecord, rng: np.random.Generator) -> dict[str, np.ndarray]:
        frames, _, skipped = self._read(
            element,
            rng,
            lambda n, record: sampling.pretrain_frame_indices(
                n, self.num_frames, self.sampling_rate, rng, path=record.path
            ),
        )
        if self.augment_on == "device":
            h, w = frames.shape[1:3]
            boxes = [crops.sample_crop(h, w, rng, self.input_size) for _ in range(self.num_sample)]
            return {
                **self._on_canvas(frames),
                "crop_box": np.array(boxes, dtype=np.int32),
                "skipped": np.int32(skipped),
            }
        video = np.stack(
            [crops.multi_scale_crop(frames, rng, self.input_size) for _ in range(self.num_sample)]
        )
        return {"video": video, "skipped": np.int32(skipped)}


@dataclasses.dataclass(kw_only=True, eq=False)
class ClassifyTransform(_TrainTransform):
    """Labelled ``VideoRecord`` -> its ``num_sample`` fine-tuning rows.

    ``ClassifyTransform(records, *, num_frames=16, sampling_rate=4,
    input_size=224, num_sample=2, sampler='dense', rand_augment=True,
    flip=True, reprob=0.25, reader=VIDEO_READER)``.

    Output: ``{"video": uint8 [num_sample, T, S, S, 3], "label": int32
    [num_sample], "erase_box": int32 [num_sample, 4], "skipped": int32 []}``;
    ``erase_box`` is ``(top, left, h, w)`` in crop pixels, ``h == 0``: none
    (``augment.apply_erasing`` is the reference for the device side).

    One clip (``sampling.clip_indices``, mode train) read once, then
    ``num_sample`` independent ``augment.train_view`` of it (official repeated
    augmentation, spec 5.1); a replacement record brings its own label.  With
    ``augment_on='device'`` the output is :func:`device_layout` (one video,
    ``labelled=True``): the frames on the canvas and each view's
    ``augment.sample_train_view`` draws.

    Args:
      records: all records, the pool replacements are drawn from.
      num_frames: clip length T (16); the number of TSN segments for ``'tsn'``.
      sampling_rate: dense stride parameter (4; 2 for HMDB51); unused by ``'tsn'``.
      input_size: crop side S in pixels (224).
      num_sample: rows per decoded clip (official 2).
      sampler: ``'dense'`` (Kinetics-style) or ``'tsn'`` (SSv2).
      rand_augment: RandAugment ``augment.RAND_AUGMENT_SPEC`` on/off.
      flip: horizontal flip with p=0.5 (official: off for SSv2).
      reprob: random-erasing probability (0.25; 0 gives all-zero boxes).
      crop_scale: RandomResizedCrop area range, fractions of the frame (official
        (0.08, 1.0), hard-coded there).
      reader: how videos are read (``readers.VIDEO_READER`` or a stored split's reader).
      augment_on: ``'host'`` or ``'device'`` (module docstring).
      canvas: ``(height, width)`` of the device canvas (``crops.fit_canvas``).

    Raises:
      ValueError: empty records, ``num_sample < 1``, an unknown sampler, a bad
        ``augment_on`` or canvas.
      RuntimeError: (when mapping) ``MAX_CONSECUTIVE_FAILURES`` unreadable videos in a row.
    """

    num_sample: int = 2
    sampler: str = "dense"
    rand_augment: bool = True
    flip: bool = True
    reprob: float = 0.25
    crop_scale: tuple[float, float] = (0.08, 1.0)

    def __post_init__(self):
        sampling.check_sampler(self.sampler)
        lo, hi = self.crop_scale
        if not 0 < lo <= hi <= 1:
            raise ValueError(f"crop_scale must be 0 < min <= max <= 1, got {self.crop_scale!r}")
        super().__post_init__()

    def random_map(self, element: VideoRecord, rng: np.random.Generator) -> dict[str, np.ndarray]:
        frames, record, skipped = self._read(
            element,
            rng,
            lambda n, record: sampling.clip_indices(
                n, self.sampler, self.num_frames, self.sampling_rate, "train", rng, record.path
            ),
        )
        spec = augment.RAND_AUGMENT_SPEC if self.rand_augment else None
        labels = np.full(self.num_sample, record.label, dtype=np.int32)
        if self.augment_on == "device":
            h, w = frames.shape[1:3]
            draws = [
                augment.sample_train_view(
                    rng, h, w, self.input_size, spec, self.flip, self.reprob, self.crop_scale
                )
                for _ in range(self.num_sample)
            ]
            tables = [augment.rand_augment_table(d.ops, RAND_AUGMENT_SLOTS) for d in draws]
            return {
                **self._on_canvas(frames),
                "crop_box": np.array([d.crop_box for d in draws], dtype=np.int32),
                "flip": np.array([d.flip for d in draws], dtype=bool),
                "ra_op": np.stack([t[0] for t in tables]),
                "ra_arg": np.stack([t[1] for t in tables]),
                "label": labels,
                "erase_box": np.stack([d.erase_box for d in draws]).astype(np.int32),
                "skipped": np.int32(skipped),
            }
        views = [
            augment.train_view(
                frames, rng, self.input_size, spec, self.flip, self.reprob, self.crop_scale
            )
            for _ in range(self.num_sample)
        ]
        return {
            "video": np.stack([v for v, _ in views]),
            "label": labels,
            "erase_box": np.stack([b for _, b in views]).astype(np.int32),
            "skipped": np.int32(skipped),
        }


@dataclasses.dataclass(kw_only=True, eq=False)
class EvalTransform(grain.transforms.Map):
    """``(video_index, VideoRecord | None, rows)`` -> all eval rows of one video (or padding).

    ``EvalTransform(*, num_frames=16, sampling_rate=4, input_size=224,
    test_num_segment=5, test_num_crop=3, mode='test', sampler='dense',
    reader=VIDEO_READER)``.

    Output: ``{"video": uint8 [rows, T, S, S, 3], "label": int32 [rows],
    "video_index": int32 [rows], "view": int32 [rows], "valid": bool [rows]}``.

    A ``None`` record is padding: ``rows`` zero clips with ``valid=False``,
    ``video_index = view = -1``.  Otherwise the video is read once and its
    :attr:`views` rows produced in the order ``view = chunk * test_num_crop +
    split``:

    * ``'val'`` (1 view): ``sampling.clip_indices(mode='val')``, then
      ``crops.val_view`` (short side S, centre crop S);
    * ``'test'``: ``sampling.multiview_indices`` read, short side resized to S,
      the clip of segment ``chunk`` selected by ``sampling.multiview_segments``,
      then crop ``split`` of ``crops.eval_spatial_crop`` (spec 5.4).

    An unreadable video gives zero clips with ``valid=False`` and a warning.

    Args:
      num_frames, sampling_rate, input_size: as for training.
      test_num_segment, test_num_crop: temporal x spatial views for ``'test'``
        (official 5 x 3 Kinetics, 2 x 3 SSv2); ignored for ``'val'``.
      mode: ``'val'`` or ``'test'``.
      sampler: ``'dense'`` or ``'tsn'``.
      reader: how videos are read (``readers.VIDEO_READER`` or a stored split's reader).

    Attributes:
      views: rows per video: 1 for ``'val'``, ``test_num_segment * test_num_crop``
        for ``'test'``.

    Raises:
      ValueError: bad mode, sampler or non-positive view counts.
    """

    num_frames: int = 16
    sampling_rate: int = 4
    input_size: int = 224
    test_num_segment: int = 5
    test_num_crop: int = 3
    mode: str = "test"
    sampler: str = "dense"
    reader: FrameReader = VIDEO_READER
    views: int = dataclasses.field(init=False)

    def __post_init__(self):
        sampling.check_sampler(self.sampler)
        if self.mode not in ("val", "test"):
            raise ValueError(f"mode must be 'val' or 'test', got {self.mode!r}")
        if self.test_num_segment < 1 or self.test_num_crop < 1:
            raise ValueError(
                f"test_num_segment and test_num_crop must be >= 1, got {self.test_num_segment}, "
                f"{self.test_num_crop}"
            )
        self.views = 1 if self.mode == "val" else self.test_num_segment * self.test_num_crop

    def _clips(self, record: VideoRecord) -> np.ndarray:
        t, size, segments = self.num_frames, self.input_size, self.test_num_segment
        if self.mode == "val":
            frames = load_frames(
                record,
                lambda n: sampling.clip_indices(
                    n, self.sampler, t, self.sampling_rate, "val", path=record.path
                ),
                self.reader,
            )
            return crops.val_view(frames, size)[None]
        buffer = crops.resize_short_side(
            load_frames(
                record,
                lambda n: sampling.multiview_indices(
                    n, self.sampler, segments, t, self.sampling_rate, record.path
                ),
                self.reader,
            ),
            size,
        )
        return np.stack(
            [
                crops.eval_spatial_crop(buffer[positions], split, self.test_num_crop, size)
                for positions in sampling.multiview_segments(len(buffer), self.sampler, segments, t)
                for split in range(self.test_num_crop)
            ]
        )

    def map(self, element: tuple) -> dict[str, np.ndarray]:
        video_index, record, rows = element
        valid = record is not None
        video = None
        if record is not None:
            try:
                video = self._clips(record)
            except _READ_ERRORS as e:
                logger.warning("unreadable eval video %s: %s", record.path, _reason(e))
                valid = False
        if video is None:
            video = np.zeros((rows, self.num_frames, self.input_size, self.input_size, 3), np.uint8)
        return {
            "video": video,
            "label": np.full(rows, 0 if record is None else record.label, dtype=np.int32),
            "video_index": np.full(rows, video_index, dtype=np.int32),
            "view": np.arange(rows, dtype=np.int32)
            if record is not None
            else np.full(rows, -1, np.int32),
            "valid": np.full(rows, valid, dtype=bool),
        }
