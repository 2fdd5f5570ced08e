"""Video decoding with PyAV (FFmpeg).

The official VideoMAE V2 code decodes with decord
(``VideoReader(path, num_threads=1)`` then ``get_batch(ids).asnumpy()``, RGB
uint8; spec 4.3 / 8.3).  Here PyAV plays that role: frames are decoded
sequentially from the start of the file, in presentation order, and the wanted
indices are picked on the way.

All frame arrays are ``np.uint8 [frames, height, width, 3]`` RGB.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence

import av
import numpy as np

__all__ = ["VideoDecodeError", "check_indices", "iter_frames", "num_frames", "decode_frames"]

logger = logging.getLogger("data_pipelines")
_AV_ERRORS = (av.FFmpegError, OSError, ValueError)


class VideoDecodeError(RuntimeError):
    """A video cannot be read: missing, corrupt, truncated or too short.

    Attributes:
      path: the video file.
      reason: human-readable cause.
      decoded_frames: for a decode that ended before the requested indices,
        the number of frames that did decode (else ``None``).
    """

    def __init__(self, path: str, reason: str, decoded_frames: int | None = None):
        super().__init__(f"cannot decode video {path!r}: {reason}")
        self.path = str(path)
        self.reason = reason
        self.decoded_frames = decoded_frames

    def __reduce__(self):  # keep picklable across grain worker processes
        return (type(self), (self.path, self.reason, self.decoded_frames))


def _open(path: str) -> av.container.InputContainer:
    """Open ``path`` for reading, mapping every failure to VideoDecodeError."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise VideoDecodeError(path, "file does not exist")
    try:
        container = av.open(path, mode="r")
    except _AV_ERRORS as e:
        raise VideoDecodeError(path, f"cannot open container ({e})") from e
    if not container.streams.video:
        container.close()
        raise VideoDecodeError(path, "no video stream")
    return container


def check_indices(indices: Sequence[int] | np.ndarray) -> np.ndarray:
    """Frame indices as ``np.int64 [n]``, checked for a sequential decoder.

    Raises:
      ValueError: empty, negative or decreasing indices.
    """
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    if idx.size == 0:
        raise ValueError("frame indices are empty")
    if idx[0] < 0 or np.any(np.diff(idx) < 0):
        raise ValueError(f"frame indices must be >= 0 and non-decreasing, got {idx.tolist()}")
    return idx


def iter_frames(path: str) -> Iterator[av.VideoFrame]:
    """The decoded frames of the first video stream of ``path``, in presentation order.

    A decode error after the first frame ends the stream with a warning on
    logger ``"data_pipelines"``: a truncated tail, the frames so far are what
    the file holds.

    Raises:
      VideoDecodeError: (while iterating) missing file, unreadable container, no
        video stream, or a demux/decode error before the first frame.
    """
    container = _open(path)
    with container:
        count = 0
        try:
            for frame in container.decode(container.streams.video[0]):
                yield frame
                count += 1
        except _AV_ERRORS as e:
            if count == 0:
                raise VideoDecodeError(path, f"error before the first frame ({e})") from e
            logger.warning("video %s ends with a decode error after %d frames: %s", path, count, e)


def num_frames(path: str, exact: bool = True) -> int:
    """Number of frames in the first video stream of ``path``.

    Args:
      path: video file.
      exact: if True, decode the whole stream and count decoded frames
        (:func:`iter_frames`: reliable, costs a full decode).  If False, trust
        the container header (``stream.frames``) when it is positive, else count
        demuxed packets without decoding (cheap; may overcount a truncated file).

    Returns:
      frame count (int, >= 0).

    Raises:
      VideoDecodeError: missing file, unreadable container, no video stream, or
        a demux/decode error before any frame.
    """
    if exact:
        return sum(1 for _ in iter_frames(path))
    container = _open(path)
    with container:
        stream = container.streams.video[0]
        if stream.frames > 0:
            return int(stream.frames)
        count = 0
        try:
            for packet in container.demux(stream):
                if packet.size > 0:
                    count += 1
        except _AV_ERRORS as e:
            if count == 0:
                raise VideoDecodeError(path, f"error before the first frame ({e})") from e
            # A truncated tail: the packets so far are what the file holds.
        return count


def decode_frames(path: str, indices: Sequence[int] | np.ndarray) -> np.ndarray:
    """Decode the frames at ``indices`` (0-based, presentation order).

    The stream is decoded once, sequentially, up to ``max(indices)``; indices may
    repeat (a repeated index yields a copy of the same frame) and must be
    non-decreasing.

    Args:
      path: video file.
      indices: int frame indices, non-decreasing, >= 0.

    Returns:
      ``np.uint8 [len(indices), height, width, 3]`` RGB.

    Raises:
      ValueError: empty, negative or decreasing indices.
      VideoDecodeError: missing/corrupt file, a decode error before the last
        wanted frame, frames of varying size, or an index beyond the decoded
        length (``decoded_frames`` then holds the number of decoded frames).
    """
    idx = check_indices(indices)
    wanted = set(idx.tolist())
    last = int(idx[-1])
    picked: dict[int, np.ndarray] = {}
    count = 0
    container = _open(path)
    try:
        stream = container.streams.video[0]
        try:
            for frame in container.decode(stream):
                if count in wanted:
                    picked[count] = frame.to_ndarray(format="rgb24")
                count += 1
                if count > last:
                    break
        except _AV_ERRORS as e:
            raise VideoDecodeError(
                path, f"decode error after {count} frames ({e})", decoded_frames=count
            ) from e
    finally:
        container.close()
    if count <= last:
        raise VideoDecodeError(
            path,
            f"frame index {last} requested but only {count} frames decoded",
            decoded_frames=count,
        )
    shapes = {a.shape for a in picked.values()}
    if len(shapes) != 1:
        raise VideoDecodeError(path, f"frames change size mid-stream: {sorted(shapes)}")
    return np.stack([picked[int(i)] for i in idx])
