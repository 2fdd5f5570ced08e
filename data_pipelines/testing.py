"""Helpers that write small synthetic videos and frame folders for tests and benchmarks.

Frame ``k`` of a video made by :func:`write_test_video` (or a folder made by
:func:`write_rawframes`) is a constant colour :func:`frame_colour` ``(k)``, so a
decoded frame can be identified from its mean colour despite lossy coding.
"""

from __future__ import annotations

import os

import av
import numpy as np
from PIL import Image

from data_pipelines.rawframes import FNAME_TMPL

__all__ = [
    "frame_colour",
    "write_test_video",
    "write_rawframes",
    "write_truncated_video",
    "write_corrupt_video",
    "identify_frames",
]

MAX_FRAMES = 64
_LEVELS = (20, 90, 160, 230)  # 70 apart: far beyond mpeg4/h264 colour drift


def frame_colour(k: int) -> tuple[int, int, int]:
    """RGB colour of frame ``k``: its base-4 digits mapped to well-separated levels (0 <= k < 64)."""
    if not 0 <= k < MAX_FRAMES:
        raise ValueError(f"frame number must be in [0, {MAX_FRAMES}), got {k}")
    return (_LEVELS[k // 16], _LEVELS[(k // 4) % 4], _LEVELS[k % 4])


def write_test_video(
    path: str,
    num_frames: int = 48,
    width: int = 96,
    height: int = 64,
    codec: str = "mpeg4",
    fps: int = 25,
    faststart: bool = False,
    first_code: int = 0,
) -> str:
    """Encode ``num_frames`` constant-colour frames (``frame_colour(first_code + k)``) to ``path``.

    Args:
      path: output file; the container follows the extension (e.g. .mp4).
      num_frames: frames to write.
      width, height: frame size in pixels (even numbers for yuv420p).
      codec: FFmpeg encoder name ("mpeg4" is always built into FFmpeg).
      fps: frame rate.
      faststart: put the mp4 index (moov) first, so a file cut short still opens.
      first_code: colour code of frame 0 (to tell several videos apart);
        ``first_code + num_frames <= 64``.

    Returns:
      ``path``.
    """
    if num_frames < 1 or first_code < 0 or first_code + num_frames > MAX_FRAMES:
        raise ValueError(
            f"need 1 <= num_frames and first_code + num_frames <= {MAX_FRAMES}, "
            f"got {num_frames}, {first_code}"
        )
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(path, mode="w", options=options) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.gop_size = 12  # several keyframes, P-frames in between
        for k in range(num_frames):
            img = np.empty((height, width, 3), dtype=np.uint8)
            img[...] = frame_colour(first_code + k)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_rawframes(
    folder: str,
    num_frames: int,
    width: int = 40,
    height: int = 36,
    first_code: int = 0,
    start_idx: int = 1,
) -> str:
    """Write a raw-frame folder of ``num_frames`` constant-colour JPEGs.

    File ``FNAME_TMPL.format(k + start_idx)`` shows ``frame_colour(first_code + k)``.

    Returns:
      ``folder`` (created if needed).
    """
    os.makedirs(folder, exist_ok=True)
    for k in range(num_frames):
        name = os.path.join(folder, FNAME_TMPL.format(k + start_idx))
        Image.new("RGB", (width, height), frame_colour(first_code + k)).save(name)
    return folder


def write_truncated_video(
    path: str, num_frames: int = 48, width: int = 96, height: int = 64
) -> str:
    """A faststart mp4 of ``num_frames`` cut to half its bytes: the header still counts
    ``num_frames`` but fewer frames decode. Returns ``path``."""
    full = write_test_video(path + ".full.mp4", num_frames, width, height, faststart=True)
    with open(full, "rb") as f:
        data = f.read()
    os.remove(full)
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])
    return path


def write_corrupt_video(path: str) -> str:
    """Write an mp4 header followed by garbage: opens as a file, never decodes. Returns ``path``."""
    with open(path, "wb") as f:
        f.write(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 100)
    return path


def identify_frames(frames: np.ndarray) -> np.ndarray:
    """Recover frame numbers from decoded constant-colour frames.

    Args:
      frames: ``uint8 [T, H, W, 3]`` decoded from :func:`write_test_video` output
        (possibly cropped/resized).

    Returns:
      ``np.int64 [T]``: for each frame, the ``k`` whose colour is nearest its mean.
    """
    means = frames.reshape(frames.shape[0], -1, 3).mean(axis=1)
    table = np.array([frame_colour(k) for k in range(MAX_FRAMES)], dtype=np.float64)
    dist = ((means[:, None, :] - table[None]) ** 2).sum(-1)
    return dist.argmin(axis=1).astype(np.int64)
