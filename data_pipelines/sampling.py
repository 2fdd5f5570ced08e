"""Temporal sampling: which frames of a video make a clip, for every stage.

Every function returns 0-based frame indices as ``np.int64`` arrays,
non-decreasing (what the sequential decoders need).  Sources (official code):

* pre-training: ``HybridVideoMAE._sample_train_indices`` + ``get_frame_id_list``
  (``dataset/pretrain_datasets.py``; spec 4.3) with ``num_segments=1`` and
  ``temporal_jitter=False`` (:func:`pretrain_frame_indices`);
* dense train/val: ``VideoClsDataset.load_video`` (``dataset/datasets.py``)
  with ``num_segment=1`` (spec 5.3; :func:`dense_clip_indices`);
* dense test: ``load_video`` in ``mode='test'`` plus the temporal slice of
  ``VideoClsDataset.__getitem__`` (spec 5.4);
* SSv2 TSN train/val/test: ``RawFrameClsDataset.load_frame`` and its test
  ``__getitem__`` (spec 5.3, 5.4; :func:`tsn_segment_indices`).

:func:`clip_indices` and :func:`multiview_indices` / :func:`multiview_segments`
pick the dense or TSN sampler by name (``SAMPLERS``).

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
    "SAMPLERS",
    "SINGLE_SEGMENT_CENTRE",
    "check_sampler",
    "frame_ids_from_start",
    "pretrain_frame_indices",
    "dense_indices_from_end",
    "dense_clip_indices",
    "tsn_segment_indices",
    "clip_indices",
    "dense_test_sampled_indices",
    "dense_test_chunk_start",
    "tsn_test_all_indices",
    "multiview_indices",
    "multiview_segments",
]

SAMPLERS = ("dense", "tsn")
SINGLE_SEGMENT_CENTRE = "single_segment_centre"


def check_sampler(sampler: str) -> None:
    """Raises ValueError unless ``sampler`` is one of ``SAMPLERS``."""
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")


def _check_total(total_frames: int, path: str) -> int:
    total = int(total_frames)
    if total < 1:
        raise VideoDecodeError(path, f"video has {total} frames, need at least 1")
    return total


def _check_positive(**kwargs: int) -> None:
    for name, value in kwargs.items():
        if int(value) < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")


def frame_ids_from_start(
    total_frames: int, start: int, num_frames: int = 16, sampling_rate: int = 4
) -> np.ndarray:
    """Frame ids for a pre-training clip that starts at the 0-based frame ``start``.

    Official ``get_frame_id_list`` (spec 4.3) with zero skip offsets: walking
    ``num_frames`` steps with a 1-based pointer ``offset``, emit ``offset - 1``,
    then advance ``offset += sampling_rate`` only while
    ``offset + sampling_rate < total``.  For short videos the pointer stops and
    the last emitted frame repeats.  Note the strict ``<``: the final frame of a
    short video is reached only if it lies on the stride and is not the last
    frame (e.g. total=41, rate=4 stops at frame 36, not 40) -- an official
    quirk reproduced on purpose.

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
    """Sample the frame indices of one pre-training clip (spec 4.3).

    * ``skip_length = num_frames * sampling_rate``;
      ``average_duration = total - skip_length + 1``.
    * If ``average_duration > 0`` the 1-based start is
      ``1 + randint(average_duration)``, i.e. the 0-based start is uniform in
      ``[0, total - skip_length]`` inclusive; otherwise the 1-based start is 1.
      (The official middle branch, ``total > skip_length`` with
      ``average_duration <= 0``, cannot happen with one segment.)
    * Then :func:`frame_ids_from_start`.

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
    _check_positive(num_frames=num_frames, sampling_rate=sampling_rate)
    total = _check_total(total_frames, path)
    if rng is None:
        rng = np.random.default_rng()
    average_duration = total - num_frames * sampling_rate + 1
    start = int(rng.integers(average_duration)) if average_duration > 0 else 0
    return frame_ids_from_start(total, start, num_frames, sampling_rate)


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


def clip_indices(
    total_frames: int,
    sampler: str,
    num_frames: int,
    sampling_rate: int,
    mode: str,
    rng: np.random.Generator | None = None,
    path: str = "<video>",
) -> np.ndarray:
    """One train/val clip of a fine-tuning sampler.

    ``'dense'``: :func:`dense_clip_indices`; ``'tsn'``:
    :func:`tsn_segment_indices` with ``num_frames`` segments (``sampling_rate``
    unused, as officially for SSv2).

    Returns:
      ``np.int64 [num_frames]``.

    Raises:
      ValueError: unknown sampler or mode, non-positive sizes.
      VideoDecodeError: ``total_frames < 1``.
    """
    check_sampler(sampler)
    if sampler == "tsn":
        return tsn_segment_indices(total_frames, num_frames, mode, rng, path)
    return dense_clip_indices(total_frames, num_frames, sampling_rate, mode, rng, path)


def dense_test_sampled_indices(
    total_frames: int, num_frames: int = 16, sampling_rate: int = 4, path: str = "<video>"
) -> np.ndarray:
    """Frames decoded for dense testing: ``range(0, L, rate)`` padded with the last up to T.

    Official ``load_video`` in ``mode='test'`` (spec 5.4).  The clip of each
    test segment is a slice of this array (:func:`multiview_segments`).

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


def multiview_indices(
    total_frames: int,
    sampler: str,
    test_num_segment: int,
    num_frames: int,
    sampling_rate: int,
    path: str = "<video>",
) -> np.ndarray:
    """The frames to load once for all test views of a video (spec 5.4).

    ``'dense'``: :func:`dense_test_sampled_indices`; ``'tsn'``:
    :func:`tsn_test_all_indices` with ``num_frames`` segments.  The clip of
    each test segment is then a selection of the loaded frames
    (:func:`multiview_segments`).

    Returns:
      ``np.int64 [n]``, non-decreasing.

    Raises:
      ValueError: unknown sampler, non-positive sizes.
      VideoDecodeError: ``total_frames < 1``.
    """
    check_sampler(sampler)
    if sampler == "tsn":
        return tsn_test_all_indices(total_frames, test_num_segment, num_frames, path)
    return dense_test_sampled_indices(total_frames, num_frames, sampling_rate, path)


def multiview_segments(
    num_loaded: int, sampler: str, test_num_segment: int, num_frames: int
) -> list[np.ndarray]:
    """Positions, within the frames of :func:`multiview_indices`, of each test segment's clip.

    Segment ``chunk`` (official test ``__getitem__``, spec 5.4) is, with
    ``L' = num_loaded`` and ``S = test_num_segment``:

    * ``'dense'``: ``T`` consecutive loaded frames from
      ``dense_test_chunk_start(L', chunk, S, T)`` (an exact stride of
      ``sampling_rate`` in the video);
    * ``'tsn'``: every ``S``-th loaded frame from ``chunk`` (``buffer[chunk::S]``).

    Returns:
      ``S`` arrays ``np.int64 [num_frames]``.

    Raises:
      ValueError: unknown sampler, non-positive sizes.
    """
    check_sampler(sampler)
    _check_positive(test_num_segment=test_num_segment, num_frames=num_frames)
    if sampler == "tsn":
        return [np.arange(chunk, num_loaded, test_num_segment) for chunk in range(test_num_segment)]
    starts = (
        dense_test_chunk_start(num_loaded, chunk, test_num_segment, num_frames)
        for chunk in range(test_num_segment)
    )
    return [np.arange(start, start + num_frames) for start in starts]
