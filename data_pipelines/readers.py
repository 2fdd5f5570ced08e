"""How a record's frames are read: one frame-reader interface for every stage.

A :class:`FrameReader` reads the frames of a record.  ``VIDEO_READER`` (name
``'video'``) decodes video files with PyAV from the start of the file
(``data_pipelines.decode``, the role of the official decord reader, spec 4.3 /
8.3); the reader of a stored TFDS split (name ``'tfds'``,
``data_pipelines.datasets.stored.StoredSplit.reader``) reads only the wanted
JPEG frames of its videos.  Raw-frame folders are read with
``data_pipelines.rawframes`` whatever the reader.  :func:`load_frames` is the one
entry point the stage transforms use.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from data_pipelines import decode
from data_pipelines.decode import VideoDecodeError
from data_pipelines.rawframes import load_rawframes
from data_pipelines.records import VideoRecord

__all__ = ["FrameReader", "VIDEO_READER", "load_frames"]


@dataclasses.dataclass(frozen=True)
class FrameReader:
    """How records' frames are read: two functions.

    Attributes:
      name: ``'video'`` (files, PyAV) or ``'tfds'`` (a stored split).
      num_frames: ``record -> int`` frame count (for a file, the cheap header count).
      decode_frames: ``(record, indices) -> np.uint8 [len(indices), H, W, 3]`` RGB for
        non-decreasing indices; raises ``VideoDecodeError`` on an unreadable video
        (with ``decoded_frames`` set when a file ends early).

    Both must pickle (grain worker processes receive the transforms that hold a
    reader): module-level functions, or methods of a picklable object.
    """

    name: str
    num_frames: Callable[[VideoRecord], int]
    decode_frames: Callable[[VideoRecord, np.ndarray], np.ndarray]


def _file(record: VideoRecord) -> str:
    if record.is_stored:
        raise ValueError(
            f"{record.path!r} is stored in a TFDS dataset: read it with its split's reader"
        )
    return record.path


def _file_num_frames(record: VideoRecord) -> int:
    return decode.num_frames(_file(record), exact=False)


def _file_decode_frames(record: VideoRecord, indices: np.ndarray) -> np.ndarray:
    return decode.decode_frames(_file(record), indices)


VIDEO_READER = FrameReader("video", _file_num_frames, _file_decode_frames)


def load_frames(
    record: VideoRecord,
    index_fn: Callable[[int], np.ndarray],
    reader: FrameReader = VIDEO_READER,
) -> np.ndarray:
    """Read the frames ``index_fn(total_frames)`` of a record.

    For a raw-frame folder ``total_frames`` is ``record.total_frames`` and the
    files are numbered from ``record.start_idx`` (``rawframes.load_rawframes``).
    For a video it is the reader's count (for a file the cheap header count, like
    decord's ``len(vr)``); if a file then decodes fewer frames (truncated tail),
    the indices are drawn again, ``index_fn(decoded)``, over the frames that did
    decode, so a partly readable video still serves.

    Args:
      record: the sample.
      index_fn: ``total_frames -> int64 [n]`` non-decreasing indices (a sampler
        of ``data_pipelines.sampling``; called a second time after a truncation).
      reader: how videos are read (default PyAV on files).

    Returns:
      ``np.uint8 [n, H, W, 3]`` RGB.

    Raises:
      VideoDecodeError: missing, unreadable or empty video, folder or frame file.
    """
    if not record.is_video and not record.is_stored:
        return load_rawframes(
            record.path, index_fn(record.total_frames), start_idx=record.start_idx
        )
    total = reader.num_frames(record)
    if total < 1:
        raise VideoDecodeError(record.path, "video has no frames")
    try:
        return reader.decode_frames(record, index_fn(total))
    except VideoDecodeError as e:
        short = e.decoded_frames
        if short is None or short < 1 or short >= total:
            raise
    return reader.decode_frames(record, index_fn(short))
