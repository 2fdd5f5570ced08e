"""The one record type of every stage (pre-training, fine-tuning, evaluation).

A record names one sample: a video file, a folder of raw frames (SSv2 as
distributed, official ``RawFrameClsDataset`` / ``HybridVideoMAE``, spec 8.1), or
a video stored in a TFDS dataset (``data_pipelines.datasets.stored``).
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
      path: video file, or raw-frame folder when ``total_frames >= 0``; for a
        stored video the source path it was built from (its name in predictions).
      label: class index (>= 0); ``-1`` for an unlabelled (pre-training) sample.
      total_frames: ``-1`` (any negative value) for a video file, whose length
        comes from the container; the frame count of a raw-frame folder or a
        stored video otherwise.
      start_idx: number of the first frame file of a raw-frame folder (frame
        ``i`` is ``fname_tmpl.format(i + start_idx)``); official default
        ``--start_idx 1``; a pre-training list gives it per line.  Unused for
        video files.
      offset: position of a stored video's first frame in its TFDS split; ``-1``
        for files and folders.
    """

    path: str
    label: int = -1
    total_frames: int = -1
    start_idx: int = 1
    offset: int = -1

    @property
    def is_video(self) -> bool:
        """A video file (decoded with the file reader)."""
        return self.total_frames < 0

    @property
    def is_stored(self) -> bool:
        """A video stored in a TFDS dataset (read with its split's reader)."""
        return self.offset >= 0
