"""Where the pre-training videos come from: official list files or a folder.

Official pre-training list format (``HybridVideoMAE._make_dataset``, spec 8.1):
space-separated ``path start_idx total_frames`` per line; only the first three
columns are read, ``path`` is joined with ``--data_root``; a negative
``total_frames`` marks a video file (``start_idx`` is then a placeholder), a
non-negative one a folder of raw frames.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

__all__ = ["VideoRecord", "read_pretrain_list", "list_video_folder", "VIDEO_EXTENSIONS"]

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov")


@dataclasses.dataclass(frozen=True)
class VideoRecord:
    """One pre-training sample.

    Attributes:
      path: video file (or raw-frame folder when ``total_frames >= 0``).
      start_idx: first frame number of a raw-frame folder; unused for videos.
      total_frames: ``-1`` (negative) for a video file; frame count of a
        raw-frame folder otherwise.
    """

    path: str
    start_idx: int = 0
    total_frames: int = -1

    @property
    def is_video(self) -> bool:
        return self.total_frames < 0


def read_pretrain_list(list_path: str, data_root: str = "") -> list[VideoRecord]:
    """Parse an official pre-training list (``path start_idx total_frames [...]``).

    Blank lines are skipped; columns after the third are ignored.  Unlike the
    official ``line.split(' ')``, any run of whitespace separates columns, so
    paths with spaces are not supported (nor were they officially).

    Args:
      list_path: the list file.
      data_root: prefix joined with each path (``os.path.join``; '' keeps it).

    Returns:
      records in file order.

    Raises:
      FileNotFoundError: the list does not exist.
      ValueError: a line with fewer than 3 columns or non-integer
        start_idx/total_frames (the message names file and 1-based line).
      NotImplementedError: a raw-frame entry (``total_frames >= 0``).
    """
    if not os.path.isfile(list_path):
        raise FileNotFoundError(f"pre-training list {list_path!r} does not exist")
    records = []
    with open(list_path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            cols = line.split()
            if not cols:
                continue
            if len(cols) < 3:
                raise ValueError(
                    f"{list_path}:{lineno}: expected 'path start_idx total_frames', "
                    f"got {len(cols)} column(s): {line.strip()!r}"
                )
            try:
                start_idx, total = int(cols[1]), int(cols[2])
            except ValueError:
                raise ValueError(
                    f"{list_path}:{lineno}: start_idx and total_frames must be integers, "
                    f"got {cols[1]!r} {cols[2]!r}"
                ) from None
            if total >= 0:
                raise NotImplementedError(
                    f"{list_path}:{lineno}: raw-frame folders (total_frames={total} >= 0) are not "
                    "supported yet; list video files with total_frames -1"
                )
            records.append(VideoRecord(os.path.join(data_root, cols[0]), start_idx, total))
    return records


def list_video_folder(
    folder: str, extensions: Sequence[str] = VIDEO_EXTENSIONS
) -> list[VideoRecord]:
    """All video files under ``folder`` (recursive), sorted by path.

    Extensions match case-insensitively.

    Raises:
      FileNotFoundError: ``folder`` is not a directory.
    """
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"video folder {folder!r} does not exist")
    exts = tuple(e.lower() for e in extensions)
    paths = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        paths.extend(os.path.join(root, n) for n in files if n.lower().endswith(exts))
    return [VideoRecord(p) for p in sorted(paths)]
