"""The one stored format of the video datasets, and reading it back.

Chosen by measurement (docs/benchmarks.md section 10): every frame as a JPEG
(quality 90, PIL's 4:2:0) at short side ``min(320, source)`` -- the official
Kinetics storage (V1 DATASET.md "short side 320", spec 8.3), so the official
crops (multi-scale from the short side, RandomResizedCrop, short-side-224 test
views) see what they saw; smaller sources (UCF101, HMDB51, SSv2 at 240 px) keep
their size.  One TFDS example is one frame, ``{"jpeg": bytes, "video": int64,
"frame": int32}``, written in order (``disable_shuffling``), so a clip reads only
its 16 frames (random access, ~1 MB) instead of a whole video.  The per-video
index -- source path, label, frame count, fps -- and the videos the build
skipped (with the reason) are in the dataset's metadata (``metadata.json``);
video ``v``'s frames sit at positions ``offset[v] .. offset[v] + num_frames - 1``
where ``offset`` is the running sum of the frame counts.

Reading needs no TensorFlow: ``tfds.data_source`` (ArrayRecord random access).
:class:`StoredSplit` gives a split's records and a ``FrameReader`` for them.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import os
from collections.abc import Sequence

import numpy as np
from PIL import Image

from data_pipelines import decode
from data_pipelines.decode import VideoDecodeError, check_indices
from data_pipelines.rawframes import load_rawframes
from data_pipelines.readers import FrameReader
from data_pipelines.records import VideoRecord

__all__ = [
    "SHORT_SIDE",
    "JPEG_QUALITY",
    "FRAME_SLOTS",
    "EncodedVideo",
    "target_size",
    "encode_video",
    "decode_jpegs",
    "StoredSplit",
]

SHORT_SIDE = 320  # official Kinetics storage (V1 DATASET.md note 1)
JPEG_QUALITY = 90
FRAME_SLOTS = 1 << 20  # frames a video may have (about 9.7 h at 30 fps): key = video * slots + frame


def target_size(height: int, width: int, short_side: int = SHORT_SIDE) -> tuple[int, int]:
    """``(height, width)`` with the short side ``min(short_side, current)``; never upscales."""
    scale = min(1.0, short_side / min(height, width))
    return max(1, int(round(height * scale))), max(1, int(round(width * scale)))


@dataclasses.dataclass
class EncodedVideo:
    """One video in the stored format: JPEG frames and what the index keeps."""

    jpegs: list[bytes]
    height: int
    width: int
    fps: float


def _jpeg(frame: np.ndarray, quality: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def encode_video(
    record: VideoRecord, short_side: int = SHORT_SIDE, quality: int = JPEG_QUALITY
) -> EncodedVideo:
    """Every frame of a video file (or raw-frame folder) as a JPEG at the stored size.

    Frames are resized with swscale bicubic (FFmpeg's ``scale`` filter default, as the
    official ``scale=-2:320`` preprocessing) from the first frame's size.  A decode
    error after the first frame ends the video there (``decode.iter_frames``).

    Raises:
      VideoDecodeError: missing, unreadable or empty video or folder.
    """
    jpegs: list[bytes] = []
    if not record.is_video:
        if record.total_frames < 1:
            raise VideoDecodeError(record.path, "raw-frame folder lists 0 frames")
        frames = load_rawframes(
            record.path, np.arange(record.total_frames), start_idx=record.start_idx
        )
        h, w = target_size(*frames.shape[1:3], short_side)
        for f in frames:
            if f.shape[:2] != (h, w):
                f = np.asarray(Image.fromarray(f).resize((w, h), Image.BICUBIC))
            jpegs.append(_jpeg(f, quality))
        return EncodedVideo(jpegs, h, w, 0.0)
    size = None
    for frame in decode.iter_frames(record.path):
        if size is None:
            size = target_size(frame.height, frame.width, short_side)
        h, w = size
        rgb = frame.reformat(width=w, height=h, format="rgb24", interpolation="BICUBIC")
        jpegs.append(_jpeg(rgb.to_ndarray(), quality))
    if not jpegs:
        raise VideoDecodeError(record.path, "no frames decoded")
    return EncodedVideo(jpegs, size[0], size[1], _fps(record.path))


def _fps(path: str) -> float:
    import av

    with av.open(path) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        return float(rate) if rate else 0.0


def decode_jpegs(blobs: Sequence[bytes], path: str = "") -> np.ndarray:
    """JPEG frames -> ``np.uint8 [n, H, W, 3]`` RGB (libjpeg-turbo through simplejpeg).

    Each frame decodes straight into its row of the result (no per-frame arrays to
    stack: one 8.7 MB copy less per 16 frames of 568x320).

    Raises:
      VideoDecodeError: a corrupt frame or frames of different sizes (``path`` names it).
    """
    import simplejpeg

    try:
        sizes = [simplejpeg.decode_jpeg_header(b)[:2] for b in blobs]
        if len(set(sizes)) > 1:
            raise VideoDecodeError(path, f"stored frames differ in size: {sorted(set(sizes))}")
        out = np.empty((len(blobs), *sizes[0], 3), np.uint8)
        for frame, blob in zip(out, blobs):
            simplejpeg.decode_jpeg(blob, colorspace="RGB", buffer=frame)
    except ValueError as e:
        raise VideoDecodeError(path, f"corrupt JPEG frame ({e})") from e
    return out


# ---------------------------------------------------------------- reading


def _import_builders() -> None:
    """Registers our builders, so ``tfds.data_source('ucf101')`` means ours, not TFDS's catalog."""
    from data_pipelines.datasets import builders  # noqa: F401


@functools.lru_cache(maxsize=16)
def _builder(name: str, data_dir: str):
    import tensorflow_datasets as tfds

    _import_builders()
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as e:  # noqa: BLE001 - tfds raises several kinds for "not there"
        raise FileNotFoundError(
            2, f"no TFDS dataset {name!r} in {data_dir} ({type(e).__name__}: {e}); build it with "
            f"`python -m vmae2.tools.build_dataset {name.split('/')[0]} --manual_dir M "
            f"--data_dir {data_dir}`", data_dir,
        ) from None
    if not builder.is_prepared():
        raise FileNotFoundError(
            2, f"TFDS dataset {name!r} is not built in {data_dir} (expected {builder.data_dir}); "
            f"`python -m vmae2.tools.build_dataset {name.split('/')[0]} --manual_dir M "
            f"--data_dir {data_dir}`", str(builder.data_dir),
        )
    return builder


class StoredSplit:
    """One split of a stored video dataset: its records, and a reader of their frames.

    ``StoredSplit(name, data_dir, split)``: ``name`` as TFDS spells it
    (``'ucf101'``, ``'ucf101/split2'``, ``'video_folder/mydata'``).  Picklable (grain
    workers): the ``tfds.data_source`` opens on first read in each process.

    Attributes:
      records: ``VideoRecord`` per stored video (``path`` the source path relative to
        the download, ``label``, ``total_frames`` the stored count, ``offset`` the
        position of its first frame).
      label_names: class names by index, or None (unlabelled).
      skipped: ``[(source path, reason)]`` the build left out.
      reader: the ``FrameReader`` (name ``'tfds'``) of this split.

    Raises:
      FileNotFoundError: dataset not built in ``data_dir``.
      ValueError: no such split (the message lists the splits).
    """

    def __init__(self, name: str, data_dir: str, split: str):
        self.name, self.data_dir, self.split = name, os.fspath(data_dir), split
        self._source = None
        meta = _builder(name, self.data_dir).info.metadata
        splits = meta.get("splits", {})
        if split not in splits:
            raise ValueError(f"TFDS dataset {name!r} has no split {split!r}: choose one of {sorted(splits)}")
        index = splits[split]
        counts = np.asarray(index["num_frames"], np.int64)
        offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]) if len(counts) else counts
        self.records = [
            VideoRecord(p, int(y), total_frames=int(n), offset=int(o))
            for p, y, n, o in zip(index["path"], index["label"], counts, offsets)
        ]
        self.label_names = meta.get("label_names")
        self.skipped = [tuple(s) for s in meta.get("skipped", {}).get(split, [])]
        self.reader = FrameReader("tfds", self.num_frames, self.decode_frames)

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_source"] = None
        return state

    def source(self):
        """The split's ``tfds.data_source`` (random access by frame position)."""
        if self._source is None:
            import tensorflow_datasets as tfds

            _import_builders()
            self._source = tfds.data_source(
                self.name, split=self.split, data_dir=self.data_dir, download=False
            )
        return self._source

    def num_frames(self, record: VideoRecord) -> int:
        return record.total_frames

    def decode_frames(self, record: VideoRecord, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Frames ``indices`` of a stored video: ``np.uint8 [len(indices), H, W, 3]``.

        Reads only the distinct wanted frames.

        Raises:
          ValueError: empty, negative or decreasing indices, or a record of no stored split.
          VideoDecodeError: an index past the video, a corrupt frame, or a stored frame
            whose number is not the one asked for (index and data out of step).
        """
        idx = check_indices(indices)
        if record.offset < 0:
            raise ValueError(f"{record.path!r} is not a stored record (use the 'video' reader)")
        if idx[-1] >= record.total_frames:
            raise VideoDecodeError(
                record.path,
                f"frame index {int(idx[-1])} requested but {record.total_frames} frames stored",
                record.total_frames,
            )
        wanted = np.unique(idx)
        examples = self.source().__getitems__((record.offset + wanted).tolist())
        got = [int(e["frame"]) for e in examples]
        if got != wanted.tolist():
            raise VideoDecodeError(
                record.path, f"stored frames {got} at the index's positions, expected {wanted.tolist()}"
            )
        frames = decode_jpegs([e["jpeg"] for e in examples], record.path)
        if len(wanted) == len(idx):  # no repeats: already in order, skip the copy
            return frames
        return frames[np.searchsorted(wanted, idx)]
