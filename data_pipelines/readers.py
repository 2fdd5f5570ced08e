"""How a record's frames are read: one frame-reader interface for every stage.

A :class:`FrameReader` reads video files: ``'video'`` decodes any video with
PyAV from the start of the file (``data_pipelines.decode``, the role of the
official decord reader, spec 4.3 / 8.3); ``'fast'`` reads the fast formats of
``python -m vmae2.tools.make_fast_dataset`` (``data_pipelines.fast_format``:
JPEG ArrayRecord or short-GOP mp4).  Raw-frame folders are read with
``data_pipelines.rawframes`` whatever the reader.  :func:`load_frames` is the
one entry point the stage transforms use.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from data_pipelines import decode, fast_format
from data_pipelines.decode import VideoDecodeError
from data_pipelines.rawframes import load_rawframes
from data_pipelines.records import VideoRecord

__all__ = ["FrameReader", "READERS", "get_reader", "load_frames"]


@dataclasses.dataclass(frozen=True)
class FrameReader:
    """How video files are read: two functions with the contract of ``data_pipelines.decode``.

    Attributes:
      name: the key in ``READERS`` (``config.data.reader``).
      num_frames: ``(path, exact) -> int`` frame count (``exact=False``: the
        cheap header count is enough).
      decode_frames: ``(path, indices) -> np.uint8 [len(indices), H, W, 3]`` RGB
        for non-decreasing indices; raises ``VideoDecodeError`` on an unreadable
        file (with ``decoded_frames`` set when the file ends early).

    Both are module-level functions, so grain worker processes can pickle the
    transforms that hold a reader.
    """

    name: str
    num_frames: Callable[[str, bool], int]
    decode_frames: Callable[[str, np.ndarray], np.ndarray]


READERS = {
    reader.name: reader
    for reader in (
        FrameReader("video", decode.num_frames, decode.decode_frames),
        FrameReader("fast", fast_format.num_frames, fast_format.decode_frames),
    )
}


def get_reader(name: str) -> FrameReader:
    """The reader called ``name`` (``config.data.reader``): ``'video'`` or ``'fast'``.

    Raises:
      ValueError: another name (the message lists the choices).
    """
    if name not in READERS:
        raise ValueError(f"data.reader {name!r}: choose one of {tuple(READERS)}")
    return READERS[name]


def load_frames(
    record: VideoRecord,
    index_fn: Callable[[int], np.ndarray],
    reader: FrameReader = READERS["video"],
) -> np.ndarray:
    """Read the frames ``index_fn(total_frames)`` of a video file or raw-frame folder.

    For a raw-frame folder ``total_frames`` is ``record.total_frames`` and the
    files are numbered from ``record.start_idx`` (``rawframes.load_rawframes``).
    For a video file it is the reader's header count (cheap, like decord's
    ``len(vr)``); if the file then decodes fewer frames (truncated tail), the
    indices are drawn again, ``index_fn(decoded)``, over the frames that did
    decode, so a partly readable video still serves.

    Args:
      record: the sample.
      index_fn: ``total_frames -> int64 [n]`` non-decreasing indices (a sampler
        of ``data_pipelines.sampling``; called a second time after a truncation).
      reader: how video files are read (default PyAV).

    Returns:
      ``np.uint8 [n, H, W, 3]`` RGB.

    Raises:
      VideoDecodeError: missing, unreadable or empty video, folder or frame file.
    """
    if not record.is_video:
        return load_rawframes(
            record.path, index_fn(record.total_frames), start_idx=record.start_idx
        )
    total = reader.num_frames(record.path, False)
    if total < 1:
        raise VideoDecodeError(record.path, "video has no frames")
    try:
        return reader.decode_frames(record.path, index_fn(total))
    except VideoDecodeError as e:
        short = e.decoded_frames
        if short is None or short < 1 or short >= total:
            raise
    return reader.decode_frames(record.path, index_fn(short))
