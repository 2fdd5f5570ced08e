"""Fast training-read formats for video datasets, and their readers.

Two formats, both written by ``python -m vmae2.tools.make_fast_dataset``:

* ``video``: every video re-encoded with PyAV at short side 320 (official
  VideoMAE K400 preprocessing, DATASET.md "Note 1"), H.264 (libx264, else
  MPEG-4 Part 2) with a keyframe every ``gop`` frames (16) and no B-frames, in
  an mp4. :func:`decode_video_seek` seeks to the keyframe at or before the first
  wanted frame and decodes at most ``gop - 1`` frames it does not need, instead
  of decoding from the start of the file (``decode.decode_frames``).
* ``jpeg-arrayrecord``: one ArrayRecord file per video (``<name>.array_record``),
  record ``i`` = frame ``i`` as a JPEG (PIL, quality 90, short side 320). Only the
  wanted frames are read and decoded (random access, no inter-frame
  dependency).

Readers here have the contract of ``data_pipelines.decode``: ``num_frames(path,
exact=True) -> int`` and ``decode_frames(path, indices) -> np.uint8 [len(indices),
H, W, 3]`` RGB, raising ``VideoDecodeError``; they dispatch on the file
extension (``.array_record`` -> JPEG frames; anything else -> seeking video
decode, which also works on raw videos, just with less gain).  They are the
``'fast'`` reader of ``data_pipelines.readers`` (``config.data.reader='fast'``).
:func:`fast_records` lists a fast-format folder; :func:`fast_format_records`
points a list read for the raw videos at their fast-format copies.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import json
import os
from collections.abc import Sequence

import av
import numpy as np
from PIL import Image

from data_pipelines import decode as raw_decode
from data_pipelines.decode import VideoDecodeError, check_indices
from data_pipelines.records import VideoRecord

__all__ = [
    "ARRAY_RECORD_SUFFIX",
    "FORMAT_SUFFIXES",
    "DEFAULT_GOP",
    "decode_frames",
    "decode_jpeg_frames",
    "decode_video_seek",
    "num_frames",
    "fast_records",
    "fast_format_records",
]

ARRAY_RECORD_SUFFIX = ".array_record"
# File suffix of each --format of python -m vmae2.tools.make_fast_dataset.
FORMAT_SUFFIXES = {"video": ".mp4", "jpeg-arrayrecord": ARRAY_RECORD_SUFFIX}
DEFAULT_GOP = 16


def is_jpeg_arrayrecord(path: str) -> bool:
    return os.fspath(path).endswith(ARRAY_RECORD_SUFFIX)


@functools.lru_cache(maxsize=64)
def _reader(path: str):
    """An open ArrayRecordReader for random access (cached per process)."""
    from array_record.python.array_record_module import ArrayRecordReader

    if not os.path.isfile(path):
        raise VideoDecodeError(path, "file does not exist")
    try:
        return ArrayRecordReader(path, "readahead_buffer_size:0")
    except Exception as e:  # noqa: BLE001 - array_record raises plain RuntimeError/OSError
        raise VideoDecodeError(path, f"cannot open ArrayRecord file ({e})") from e


def decode_jpeg_frames(path: str, indices: Sequence[int] | np.ndarray) -> np.ndarray:
    """Frames ``indices`` of a JPEG ArrayRecord video: ``np.uint8 [len(indices), H, W, 3]``."""
    idx = check_indices(indices)
    reader = _reader(os.fspath(path))
    total = reader.num_records()
    last = int(idx[-1])
    if last >= total:
        raise VideoDecodeError(
            path, f"frame index {last} requested but only {total} frames stored", total
        )
    wanted = sorted(set(idx.tolist()))
    try:
        blobs = reader.read(wanted)
        frames = {
            i: np.asarray(Image.open(io.BytesIO(b)).convert("RGB")) for i, b in zip(wanted, blobs)
        }
    except (OSError, ValueError, RuntimeError) as e:
        raise VideoDecodeError(path, f"corrupt JPEG record ({e})") from e
    return np.stack([frames[int(i)] for i in idx])


def _frame_index(frame: av.VideoFrame, stream, start_pts: int) -> int:
    """Presentation index of ``frame`` from its pts (constant frame rate)."""
    rate = stream.average_rate or stream.guessed_rate
    return int(round(float((frame.pts - start_pts) * stream.time_base * rate)))


def decode_video_seek(
    path: str, indices: Sequence[int] | np.ndarray, gop: int = DEFAULT_GOP
) -> np.ndarray:
    """Decode frames ``indices`` of a constant-frame-rate video, seeking first.

    Seeks (backward, to a keyframe) to the timestamp of frame
    ``first - first % gop`` and decodes forward; frame numbers come from the
    frame timestamps, so any keyframe interval gives correct frames (a longer
    one only costs more decoding). Falls back to ``decode.decode_frames`` for a
    stream without timestamps.

    Returns:
      ``np.uint8 [len(indices), H, W, 3]`` RGB.

    Raises:
      ValueError: empty, negative or decreasing indices.
      VideoDecodeError: unreadable file or an index past the end.
    """
    idx = check_indices(indices)
    wanted = set(idx.tolist())
    first, last = int(idx[0]), int(idx[-1])
    path = os.fspath(path)
    container = raw_decode._open(path)
    picked: dict[int, np.ndarray] = {}
    try:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        start_pts = stream.start_time or 0
        if not rate or stream.time_base is None:
            container.close()
            return raw_decode.decode_frames(path, idx)
        target = first - first % max(gop, 1)
        if target > 0:
            pts = start_pts + int(round(target / float(rate) / float(stream.time_base)))
            container.seek(pts, stream=stream, backward=True, any_frame=False)
        count = -1
        try:
            for frame in container.decode(stream):
                if frame.pts is None:
                    raise VideoDecodeError(path, "frame without timestamp")
                count = _frame_index(frame, stream, start_pts)
                if count in wanted:
                    picked[count] = frame.to_ndarray(format="rgb24")
                if count >= last:
                    break
        except (av.FFmpegError, OSError, ValueError) as e:
            raise VideoDecodeError(
                path, f"decode error near frame {count} ({e})", decoded_frames=count + 1
            ) from e
    finally:
        container.close()
    missing = wanted - picked.keys()
    if missing:
        raise VideoDecodeError(
            path,
            f"frame index {max(missing)} requested but decoding ended at frame {count}",
            decoded_frames=count + 1,
        )
    return np.stack([picked[int(i)] for i in idx])


def num_frames(path: str, exact: bool = True) -> int:
    """Frame count: the record count of a JPEG ArrayRecord file, else ``decode.num_frames``.

    A ``video`` fast-format mp4 has an exact header count, so ``exact=False`` is
    enough (and cheap) for it.
    """
    if is_jpeg_arrayrecord(path):
        return int(_reader(os.fspath(path)).num_records())
    return raw_decode.num_frames(path, exact=exact)


def decode_frames(path: str, indices: Sequence[int] | np.ndarray) -> np.ndarray:
    """Same contract as ``decode.decode_frames``; dispatches on the format of ``path``."""
    if is_jpeg_arrayrecord(path):
        return decode_jpeg_frames(path, indices)
    return decode_video_seek(path, indices)


def fast_records(directory: str) -> list[VideoRecord]:
    """Unlabelled records of the fast-format files (``.array_record``, ``.mp4``) in ``directory``.

    Raises:
      FileNotFoundError: no such file in ``directory``.
    """
    suffixes = tuple(FORMAT_SUFFIXES.values())
    names = sorted(n for n in os.listdir(directory) if n.endswith(suffixes))
    if not names:
        raise FileNotFoundError(f"no .array_record or .mp4 files in {directory!r}")
    return [VideoRecord(path=os.path.join(directory, n)) for n in names]


def fast_format_records(records: Sequence[VideoRecord], data_root: str = "") -> list[VideoRecord]:
    """A list re-addressed to the fast-format copies of its videos.

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
      records: as read by ``sources.read_finetune_list(list, data_root)``.
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
    if fmt not in FORMAT_SUFFIXES:
        raise ValueError(
            f"{manifest}: unknown fast format {fmt!r}, expected {sorted(FORMAT_SUFFIXES)}"
        )
    suffix = FORMAT_SUFFIXES[fmt]
    return [
        dataclasses.replace(r, path=os.path.splitext(r.path)[0] + suffix) if r.is_video else r
        for r in records
    ]
