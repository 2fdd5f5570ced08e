"""Temporal sampling vs hand-derived tables from the official algorithm (spec 4.3).

Official (num_segments=1): average_duration = N - 64 + 1; 1-based offset =
randint(average_duration) + 1 (or 1 if average_duration <= 0); emit offset-1,
then offset += 4 only while offset + 4 < N.
"""

import numpy as np
import pytest

from data_pipelines.decode import VideoDecodeError
from data_pipelines.sampling import pretrain_frame_indices


class FixedRng:
    """Stands in for np.random.Generator: records the bound, returns a fixed start."""

    def __init__(self, value):
        self.value = value
        self.calls = []

    def integers(self, high):
        self.calls.append(high)
        return self.value


def test_long_video_200_frames_fixed_start():
    rng = FixedRng(100)
    ids = pretrain_frame_indices(200, 16, 4, rng)
    # average_duration = 200 - 64 + 1 = 137 -> start drawn from [0, 136]
    assert rng.calls == [137]
    expected = np.array(
        [100, 104, 108, 112, 116, 120, 124, 128, 132, 136, 140, 144, 148, 152, 156, 160]
    )
    np.testing.assert_array_equal(ids, expected)
    assert ids.dtype == np.int64 and ids.shape == (16,)


def test_long_video_200_frames_last_possible_start():
    ids = pretrain_frame_indices(200, 16, 4, FixedRng(136))
    expected = np.array(
        [136, 140, 144, 148, 152, 156, 160, 164, 168, 172, 176, 180, 184, 188, 192, 196]
    )
    np.testing.assert_array_equal(ids, expected)


def test_long_video_200_frames_seeded_generator():
    # The start is one draw integers(137) from the generator.
    start = int(np.random.default_rng(7).integers(137))
    ids = pretrain_frame_indices(200, 16, 4, np.random.default_rng(7))
    assert ids[0] == start and 0 <= start <= 136
    np.testing.assert_array_equal(np.diff(ids), np.full(15, 4))


def test_starts_cover_inclusive_range():
    rng = np.random.default_rng(0)
    starts = {int(pretrain_frame_indices(70, 16, 4, rng)[0]) for _ in range(400)}
    assert starts == set(range(7))  # 70 - 64 = 6, inclusive


def test_exactly_64_frames():
    rng = FixedRng(0)
    ids = pretrain_frame_indices(64, 16, 4, rng)
    assert rng.calls == [1]  # average_duration = 1 -> randint(1) = 0
    expected = np.array([0, 4, 8, 12, 16, 20, 24, 28, 32, 36, 40, 44, 48, 52, 56, 60])
    np.testing.assert_array_equal(ids, expected)


def test_short_40_frames_repeats_last():
    rng = FixedRng(999)  # must not be used: average_duration = -23
    ids = pretrain_frame_indices(40, 16, 4, rng)
    assert rng.calls == []
    # 1-based offsets 1,5,...,37; 37 + 4 = 41 is not < 40 -> stays at 37 (frame 36)
    expected = np.array([0, 4, 8, 12, 16, 20, 24, 28, 32, 36, 36, 36, 36, 36, 36, 36])
    np.testing.assert_array_equal(ids, expected)


def test_short_41_frames_strict_less_quirk():
    # offset 37 + 4 = 41 is not < 41, so frame 40 is never reached
    ids = pretrain_frame_indices(41, 16, 4, FixedRng(0))
    assert ids[-1] == 36 and ids[9] == 36


def test_short_10_frames():
    ids = pretrain_frame_indices(10, 16, 4, FixedRng(0))
    # offsets 1 -> 5 (5<10) -> 9 (9<10) -> 13 not < 10: stay at 9 (frame 8)
    expected = np.array([0, 4, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8])
    np.testing.assert_array_equal(ids, expected)


def test_single_frame_and_ssv2_rate():
    np.testing.assert_array_equal(pretrain_frame_indices(1, 16, 4, FixedRng(0)), np.zeros(16))
    # SSv2 stride 2: skip_length 32, N=40 -> average_duration 9
    rng = FixedRng(8)
    ids = pretrain_frame_indices(40, 16, 2, rng)
    assert rng.calls == [9]
    np.testing.assert_array_equal(ids, np.arange(8, 40, 2))


def test_empty_video_raises():
    with pytest.raises(VideoDecodeError, match="0 frames"):
        pretrain_frame_indices(0, 16, 4, FixedRng(0), path="empty.mp4")
