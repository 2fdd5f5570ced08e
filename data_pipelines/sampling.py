"""Temporal sampling of pre-training clips.

Reproduces ``HybridVideoMAE._sample_train_indices`` + ``get_frame_id_list``
(official ``dataset/pretrain_datasets.py``; spec 4.3) with ``num_segments=1``
and ``temporal_jitter=False``:

* ``skip_length = num_frames * sampling_rate``;
  ``average_duration = total - skip_length + 1``.
* If ``average_duration > 0`` the 1-based start is
  ``1 + randint(average_duration)``, i.e. the 0-based start is uniform in
  ``[0, total - skip_length]`` inclusive; otherwise the 1-based start is 1.
  (The official middle branch, ``total > skip_length`` with
  ``average_duration <= 0``, cannot happen with one segment.)
* Walking ``num_frames`` steps with a 1-based pointer ``offset``: emit
  ``offset - 1``; then advance ``offset += sampling_rate`` only while
  ``offset + sampling_rate < total``.  For short videos the pointer stops and
  the last emitted frame repeats.  Note the strict ``<``: the final frame of a
  short video is reached only if it lies on the stride and is not the last
  frame (e.g. total=41, rate=4 stops at frame 36, not 40) -- an official quirk
  reproduced on purpose.
"""

from __future__ import annotations

import numpy as np

from data_pipelines.decode import VideoDecodeError

__all__ = ["pretrain_frame_indices", "frame_ids_from_start"]


def frame_ids_from_start(
    total_frames: int, start: int, num_frames: int = 16, sampling_rate: int = 4
) -> np.ndarray:
    """Frame ids for a clip that starts at the 0-based frame ``start``.

    Official ``get_frame_id_list`` (spec 4.3) with zero skip offsets.

    Returns:
      ``np.int64 [num_frames]``, non-decreasing, each in ``[0, total_frames)``.
    """
    offset = int(start) + 1  # official offsets are 1-based
    ids = np.empty(num_frames, dtype=np.int64)
    for i in range(num_frames):
        # official: offset + skip_offset (= 0) <= duration always holds here
        ids[i] = offset - 1
        if offset + sampling_rate < total_frames:
            offset += sampling_rate
    return ids


def pretrain_frame_indices(
    total_frames: int,
    num_frames: int = 16,
    sampling_rate: int = 4,
    rng: np.random.Generator | None = None,
    path: str = "<video>",
) -> np.ndarray:
    """Sample the frame indices of one pre-training clip.

    Args:
      total_frames: number of frames in the video (decoded length).
      num_frames: clip length T (official ``new_length``, 16).
      sampling_rate: stride in frames (official ``new_step``, 4; 2 for SSv2).
      rng: source of the start offset; ``rng.integers(n)`` draws uniformly from
        ``[0, n)`` like the official ``np.random.randint(average_duration)``.
        ``None`` uses a fresh default generator.
      path: only used in the error message.

    Returns:
      ``np.int64 [num_frames]`` 0-based indices, non-decreasing.

    Raises:
      VideoDecodeError: ``total_frames < 1`` (nothing to sample).
      ValueError: non-positive ``num_frames`` or ``sampling_rate``.
    """
    if num_frames < 1 or sampling_rate < 1:
        raise ValueError(
            f"num_frames and sampling_rate must be >= 1, got {num_frames}, {sampling_rate}"
        )
    total = int(total_frames)
    if total < 1:
        raise VideoDecodeError(path, f"video has {total} frames, need at least 1")
    if rng is None:
        rng = np.random.default_rng()
    average_duration = total - num_frames * sampling_rate + 1
    start = int(rng.integers(average_duration)) if average_duration > 0 else 0
    return frame_ids_from_start(total, start, num_frames, sampling_rate)
