"""The one record type of every stage (pre-training, fine-tuning, evaluation).

A record names one sample: a video file, or a folder of raw frames (SSv2 as
distributed, official ``RawFrameClsDataset`` / ``HybridVideoMAE``, spec 8.1).
"""

from __future__ import annotations

import dataclasses

__all__ = ["VIDEO_EXTENSIONS", "VideoRecord"]

# File endings treated as videos when a folder is listed (case-insensitive).
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".flv")


@dataclasses.dataclass(frozen=True)
class VideoRecord:
    """One sample.

    Attributes:
      path: video file, or raw-frame folder when ``total_frames >= 0``.
      label: class index (>= 0); ``-1`` for an unlabelled (pre-training) sample.
      total_frames: ``-1`` (any negative value) for a video file, whose length
        comes from the container; the frame count of a raw-frame folder otherwise.
      start_idx: number of the first frame file of a raw-frame folder (frame
        ``i`` is ``fname_tmpl.format(i + start_idx)``); official default
        ``--start_idx 1``; a pre-training list gives it per line.  Unused for
        video files.
    """

    path: str
    label: int = -1
    total_frames: int = -1
    start_idx: int = 1

    @property
    def is_video(self) -> bool:
        return self.total_frames < 0
