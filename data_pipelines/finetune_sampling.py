"""Temporal sampling for fine-tuning, evaluation and feature extraction.

Every function returns 0-based frame indices as ``np.int64`` arrays.  Sources:

* dense train/val: official ``VideoClsDataset.load_video`` (``dataset/datasets.py``)
  with ``num_segment=1`` (spec 5.3);
* dense test: ``load_video`` in ``mode='test'`` plus the temporal slice of
  ``VideoClsDataset.__getitem__`` (spec 5.4);
* SSv2 TSN train/val/test: ``RawFrameClsDataset.load_frame`` and its test
  ``__getitem__`` (spec 5.3, 5.4);
* feature-extraction windows: ``extract_tad_feature.py`` (spec 7).

Randomness: the official code draws with ``np.random.randint(low, high)``
(high exclusive); here ``rng.integers(low, high)`` of a
``numpy.random.Generator`` draws the same distribution.

Named deviation ``SINGLE_SEGMENT_CENTRE``: with ``test_num_segment == 1`` the
official dense temporal step ``(L' - T) / (S - 1)`` divides by zero (spec 5.4,
"divisor quirks"); here the single test clip is the centre one,
``start = int(max(L' - T, 0) / 2)``.
"""

from __future__ import annotations

import numpy as np

from data_pipelines.decode import VideoDecodeError

__all__ = [
    "SINGLE_SEGMENT_CENTRE",
    "dense_indices_from_end",
    "dense_clip_indices",
    "dense_test_sampled_indices",
    "dense_test_chunk_start",
    "dense_test_clip_indices",
    "tsn_segment_indices",
    "tsn_test_all_indices",
    "tsn_test_indices",
    "feature_window_starts",
]

SINGLE_SEGMENT_CENTRE = "single_segment_centre"


def _check_total(total_frames: int, path: str) -> int:
    total = int(total_frames)
    if total < 1:
        raise VideoDecodeError(path, f"video has {total} frames, need at least 1")
    return total


def _check_positive(**kwargs: int) -> None:
    for name, value in kwargs.items():
        if int(value) < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")


def dense_indices_from_end(
    total_frames: int, end: int, num_frames: int = 16, sampling_rate: int = 4
) -> np.ndarray:
    """Dense clip ending (exclusively) at ``end``, for a video longer than the span.

    ``span = num_frames * sampling_rate``; ``start = end - span``;
    ``idx = int64(clip(linspace(start, end, num_frames), start, end - 1))``
    (truncation = floor, all values are >= 0).  The stride is therefore
    ``span / (num_frames - 1)`` (64/15 for 16x4) and the last index ``end - 1``.

    Returns:
      ``np.int64 [num_frames]``.

    Raises:
      ValueError: ``end`` outside ``[span, total_frames]``.
    """
    span = num_frames * sampling_rate
    if not span <= end <= total_frames:
        raise ValueError(f"end must be in [{span}, {total_frames}], got {end}")
    start = end - span
    index = np.linspace(start, end, num=num_frames)
    return np.clip(index, start, end - 1).astype(np.int64)


def dense_clip_indices(
    total_frames: int,
    num_frames: int = 16,
    sampling_rate: int = 4,
    mode: str = "train",
    rng: np.random.Generator | None = None,
    path: str = "<video>",
) -> np.ndarray:
    """Frame indices of one dense train/val clip (official ``load_video``, num_segment=1).

    With ``L = total_frames`` and ``span = num_frames * sampling_rate``:

    * ``L > span``: train ``end = rng.integers(span, L)`` (uniform in
      ``[span, L - 1]``), val ``end = (span + L) // 2`` (centre clip); then
      :func:`dense_indices_from_end`.
    * ``L <= span`` (short video): ``n = L // sampling_rate``;
      ``idx = int64(clip(linspace(0, L, n) ++ [L] * (num_frames - n), 0, L - 1))``.

    Args:
      total_frames: video length L in frames.
      num_frames: clip length T (official ``clip_len``, 16).
      sampling_rate: official ``frame_sample_rate`` (4).
      mode: ``'train'`` (random end) or ``'val'`` (centre).
      rng: source of the train end; ``None`` uses a fresh default generator.
      path: only for the error message.

    Returns:
      ``np.int64 [num_frames]``, non-decreasing, in ``[0, L)``.

    Raises:
      VideoDecodeError: ``total_frames < 1``.
      ValueError: bad mode or non-positive sizes.
    """
    _check_positive(num_frames=num_frames, sampling_rate=sampling_rate)
    if mode not in ("train", "val"):
        raise ValueError(f"mode must be 'train' or 'val', got {mode!r}")
    total = _check_total(total_frames, path)
    span = num_frames * sampling_rate
    if total <= span:
        n = total // sampling_rate
        index = np.concatenate([np.linspace(0, total, num=n), np.full(num_frames - n, total)])
        return np.clip(index, 0, total - 1).astype(np.int64)
    if mode == "val":
        end = (span + total) // 2
    else:
        if rng is None:
            rng = np.random.default_rng()
        end = int(rng.integers(span, total))
    return dense_indices_from_end(total, end, num_frames, sampling_rate)


def dense_test_sampled_indices(
    total_frames: int, num_frames: int = 16, sampling_rate: int = 4, path: str = "<video>"
) -> np.ndarray:
    """Frames decoded for dense testing: ``range(0, L, rate)`` padded with the last up to T.

    Official ``load_video`` in ``mode='test'`` (spec 5.4).  The clip of each
    test segment is a slice of this array (:func:`dense_test_clip_indices`).

    Returns:
      ``np.int64 [max(ceil(L / rate), num_frames)]``.

    Raises:
      VideoDecodeError: ``total_frames < 1``.
    """
    _check_positive(num_frames=num_frames, sampling_rate=sampling_rate)
    total = _check_total(total_frames, path)
    index = list(range(0, total, sampling_rate))
    index += [index[-1]] * (num_frames - len(index))
    return np.asarray(index, dtype=np.int64)


def dense_test_chunk_start(
    num_sampled: int, chunk: int, test_num_segment: int, num_frames: int = 16
) -> int:
    """Start (in sampled frames) of test segment ``chunk``.

    ``start = int(chunk * max((L' - T) / (S - 1), 0))`` with ``L' = num_sampled``
    and ``S = test_num_segment`` (official ``VideoClsDataset.__getitem__``, test,
    spec 5.4).  ``S == 1``: see ``SINGLE_SEGMENT_CENTRE`` (module docstring),
    ``start = int(max(L' - T, 0) / 2)``.

    Raises:
      ValueError: ``chunk`` outside ``[0, S)``.
    """
    _check_positive(test_num_segment=test_num_segment, num_frames=num_frames)
    if not 0 <= chunk < test_num_segment:
        raise ValueError(f"chunk must be in [0, {test_num_segment}), got {chunk}")
    if test_num_segment == 1:
        return int(max(num_sampled - num_frames, 0) / 2)
    step = max((num_sampled - num_frames) / (test_num_segment - 1), 0.0)
    return int(chunk * step)


def dense_test_clip_indices(
    total_frames: int,
    chunk: int,
    test_num_segment: int,
    num_frames: int = 16,
    sampling_rate: int = 4,
) -> np.ndarray:
    """Frame indices of dense test segment ``chunk``: T consecutive sampled frames.

    ``sampled = dense_test_sampled_indices(L)``;
    ``sampled[start : start + T]`` with ``start = dense_test_chunk_start(len(sampled), ...)``
    -- an exact stride of ``sampling_rate`` (spec 5.4).

    Returns:
      ``np.int64 [num_frames]``.
    """
    sampled = dense_test_sampled_indices(total_frames, num_frames, sampling_rate)
    start = dense_test_chunk_start(len(sampled), chunk, test_num_segment, num_frames)
    return sampled[start : start + num_frames]


def tsn_segment_indices(
    total_frames: int,
    num_segments: int = 16,
    mode: str = "train",
    rng: np.random.Generator | None = None,
    path: str = "<video>",
) -> np.ndarray:
    """TSN segment sampling (official ``RawFrameClsDataset.load_frame``; SSv2, spec 5.3).

    With ``N = total_frames``, ``K = num_segments`` and ``avg = N // K``:

    * ``avg > 0``: train ``k * avg + rng.integers(avg)`` (one draw per
      segment), val ``k * avg + avg // 2``, for ``k = 0..K-1``;
    * ``avg == 0 and N > K``: train ``sort(rng.integers(N, size=K))``, val
      ``range(K)`` (unreachable, kept for fidelity: ``avg == 0`` means ``N < K``);
    * else ``[0] * (K - N) + range(N)``.

    Raw-frame files are then ``fname_tmpl.format(idx + start_idx)``
    (``img_{:05}.jpg``, ``start_idx=1``); ``sampling_rate`` plays no part.

    Returns:
      ``np.int64 [num_segments]``, non-decreasing.

    Raises:
      VideoDecodeError: ``total_frames < 1``.
      ValueError: bad mode or ``num_segments < 1``.
    """
    _check_positive(num_segments=num_segments)
    if mode not in ("train", "val"):
        raise ValueError(f"mode must be 'train' or 'val', got {mode!r}")
    total = _check_total(total_frames, path)
    if rng is None and mode == "train":
        rng = np.random.default_rng()
    avg = total // num_segments
    base = np.arange(num_segments, dtype=np.int64)
    if avg > 0:
        if mode == "val":
            return base * avg + avg // 2
        return base * avg + rng.integers(avg, size=num_segments).astype(np.int64)
    if total > num_segments:  # pragma: no cover - unreachable, see docstring
        if mode == "val":
            return base
        return np.sort(rng.integers(total, size=num_segments)).astype(np.int64)
    return np.asarray([0] * (num_segments - total) + list(range(total)), dtype=np.int64)


def tsn_test_all_indices(
    total_frames: int, test_num_segment: int, num_segments: int = 16, path: str = "<video>"
) -> np.ndarray:
    """All frames loaded for TSN testing, sorted (official ``load_frame``, ``mode='test'``).

    ``tick = N / K``; for ``t < S`` and ``x < K``: ``int(t * tick / S + tick * x)``;
    the ``S * K`` values are sorted (spec 5.4).

    Returns:
      ``np.int64 [test_num_segment * num_segments]``, non-decreasing.

    Raises:
      VideoDecodeError: ``total_frames < 1``.
    """
    _check_positive(test_num_segment=test_num_segment, num_segments=num_segments)
    total = _check_total(total_frames, path)
    tick = total / float(num_segments)
    index = [
        int(t * tick / test_num_segment + tick * x)
        for t in range(test_num_segment)
        for x in range(num_segments)
    ]
    return np.sort(np.asarray(index, dtype=np.int64))


def tsn_test_indices(
    total_frames: int, chunk: int, test_num_segment: int, num_segments: int = 16
) -> np.ndarray:
    """Frames of TSN test segment ``chunk``: ``tsn_test_all_indices(...)[chunk::S]``.

    Returns:
      ``np.int64 [num_segments]``.

    Raises:
      ValueError: ``chunk`` outside ``[0, S)``.
    """
    if not 0 <= chunk < test_num_segment:
        raise ValueError(f"chunk must be in [0, {test_num_segment}), got {chunk}")
    return tsn_test_all_indices(total_frames, test_num_segment, num_segments)[
        chunk::test_num_segment
    ]


def feature_window_starts(total_frames: int, step: int, num_frames: int = 16) -> np.ndarray:
    """First frames of the feature-extraction windows (official ``extract_tad_feature.py``).

    ``range(0, T - num_frames + 1, step)`` (official ``range(0, T - 15, step)``
    for 16 frames; step 4 for THUMOS14, 16 for FineAction; spec 7).  Window
    ``s`` is frames ``[s, s + num_frames)``.  A video shorter than
    ``num_frames`` has no window (officially a crash in ``np.vstack([])``).

    Returns:
      ``np.int64 [floor((T - num_frames) / step) + 1]`` (empty if ``T < num_frames``).

    Raises:
      ValueError: ``step < 1`` or ``num_frames < 1``.
    """
    _check_positive(step=step, num_frames=num_frames)
    return np.arange(0, max(int(total_frames) - num_frames + 1, 0), step, dtype=np.int64)
