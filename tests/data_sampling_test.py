"""Temporal sampling against hand-computed index arrays from the official code.

Pre-training (spec 4.3, num_segments=1): average_duration = N - 64 + 1; 1-based
offset = randint(average_duration) + 1 (or 1 if average_duration <= 0); emit
offset-1, then offset += 4 only while offset + 4 < N.  Fine-tuning dense / TSN
and multi-view test: spec 5.3, 5.4.
"""

import numpy as np
import pytest

from data_pipelines import sampling
from data_pipelines.decode import VideoDecodeError
from data_pipelines.sampling import pretrain_frame_indices


class FakeRng:
    """Stands in for np.random.Generator: returns preset values from ``integers``
    and records the calls (an unexpected call fails on the empty list)."""

    def __init__(self, *values):
        self.values = list(values)
        self.calls = []

    def integers(self, *args, **kwargs):
        self.calls.append((args, kwargs))
        return self.values.pop(0)


# ---------------------------------------------------------------- pre-training


def test_long_video_200_frames_fixed_start():
    rng = FakeRng(100)
    ids = pretrain_frame_indices(200, 16, 4, rng)
    # average_duration = 200 - 64 + 1 = 137 -> start drawn from [0, 136]
    assert rng.calls == [((137,), {})]
    expected = np.array(
        [100, 104, 108, 112, 116, 120, 124, 128, 132, 136, 140, 144, 148, 152, 156, 160]
    )
    np.testing.assert_array_equal(ids, expected)
    assert ids.dtype == np.int64 and ids.shape == (16,)


def test_long_video_200_frames_last_possible_start():
    ids = pretrain_frame_indices(200, 16, 4, FakeRng(136))
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
    rng = FakeRng(0)
    ids = pretrain_frame_indices(64, 16, 4, rng)
    assert rng.calls == [((1,), {})]  # average_duration = 1 -> randint(1) = 0
    expected = np.array([0, 4, 8, 12, 16, 20, 24, 28, 32, 36, 40, 44, 48, 52, 56, 60])
    np.testing.assert_array_equal(ids, expected)


def test_short_40_frames_repeats_last():
    rng = FakeRng()  # must not be used: average_duration = -23
    ids = pretrain_frame_indices(40, 16, 4, rng)
    assert rng.calls == []
    # 1-based offsets 1,5,...,37; 37 + 4 = 41 is not < 40 -> stays at 37 (frame 36)
    expected = np.array([0, 4, 8, 12, 16, 20, 24, 28, 32, 36, 36, 36, 36, 36, 36, 36])
    np.testing.assert_array_equal(ids, expected)


def test_short_41_frames_strict_less_quirk():
    # offset 37 + 4 = 41 is not < 41, so frame 40 is never reached
    ids = pretrain_frame_indices(41, 16, 4, FakeRng(0))
    assert ids[-1] == 36 and ids[9] == 36


def test_short_10_frames():
    ids = pretrain_frame_indices(10, 16, 4, FakeRng(0))
    # offsets 1 -> 5 (5<10) -> 9 (9<10) -> 13 not < 10: stay at 9 (frame 8)
    expected = np.array([0, 4, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8])
    np.testing.assert_array_equal(ids, expected)


def test_single_frame_and_ssv2_rate():
    np.testing.assert_array_equal(pretrain_frame_indices(1, 16, 4, FakeRng(0)), np.zeros(16))
    # SSv2 stride 2: skip_length 32, N=40 -> average_duration 9
    rng = FakeRng(8)
    ids = pretrain_frame_indices(40, 16, 2, rng)
    assert rng.calls == [((9,), {})]
    np.testing.assert_array_equal(ids, np.arange(8, 40, 2))


def test_empty_video_raises():
    with pytest.raises(VideoDecodeError, match="0 frames"):
        pretrain_frame_indices(0, 16, 4, FakeRng(0), path="empty.mp4")


# ---------------------------------------------------------------- fine-tuning: dense, TSN


def test_dense_train_long_video():
    # L=100, span 64: end ~ randint(64, 100); with end=80: start=16,
    # linspace(16, 80, 16) = 16 + k*64/15, last clipped to 79, floored.
    rng = FakeRng(80)
    idx = sampling.dense_clip_indices(100, 16, 4, "train", rng)
    assert rng.calls == [((64, 100), {})]
    expected = [16, 20, 24, 28, 33, 37, 41, 45, 50, 54, 58, 62, 67, 71, 75, 79]
    assert idx.tolist() == expected and idx.dtype == np.int64


def test_dense_train_end_range_real_rng():
    rng = np.random.default_rng(0)
    for _ in range(200):
        idx = sampling.dense_clip_indices(100, 16, 4, "train", rng)
        start = idx[0]
        assert 0 <= start <= 100 - 1 - 64  # end in [64, 99]
        assert idx[-1] == start + 63


def test_dense_val_long_video():
    # end = (64 + 100) // 2 = 82, start = 18
    idx = sampling.dense_clip_indices(100, 16, 4, "val")
    assert idx.tolist() == [18, 22, 26, 30, 35, 39, 43, 47, 52, 56, 60, 64, 69, 73, 77, 81]


@pytest.mark.parametrize("mode", ["train", "val"])
def test_dense_short_video(mode):
    # L=40 <= 64: n = 40//4 = 10; linspace(0, 40, 10) = 40k/9, then six 40s, clip to 39
    rng = FakeRng()  # must not be used
    idx = sampling.dense_clip_indices(40, 16, 4, mode, rng)
    assert idx.tolist() == [0, 4, 8, 13, 17, 22, 26, 31, 35, 39, 39, 39, 39, 39, 39, 39]
    assert rng.calls == []


def test_dense_exactly_span_and_tiny():
    # L=64 is short: linspace(0, 64, 16) = 64k/15, last 64 -> 63
    assert sampling.dense_clip_indices(64, mode="val").tolist() == [
        0, 4, 8, 12, 17, 21, 25, 29, 34, 38, 42, 46, 51, 55, 59, 63
    ]  # fmt: skip
    assert sampling.dense_clip_indices(3, mode="val").tolist() == [2] * 16  # n = 0: all L -> L-1
    with pytest.raises(VideoDecodeError):
        sampling.dense_clip_indices(0)
    with pytest.raises(ValueError):
        sampling.dense_clip_indices(10, mode="test")


def test_dense_test_segments_l300():
    # every 4th frame: 0, 4, ..., 296 -> L' = 75; S=5: step (75-16)/4 = 14.75
    sampled = sampling.dense_test_sampled_indices(300)
    assert len(sampled) == 75 and sampled[:3].tolist() == [0, 4, 8] and sampled[-1] == 296
    starts = [sampling.dense_test_chunk_start(75, c, 5) for c in range(5)]
    assert starts == [0, 14, 29, 44, 59]
    # each clip is 16 consecutive sampled frames: an exact stride of 4
    loaded = sampling.multiview_indices(300, "dense", 5, 16, 4)
    np.testing.assert_array_equal(loaded, sampled)
    segments = sampling.multiview_segments(len(loaded), "dense", 5, 16)
    assert [s.tolist() for s in segments] == [list(range(a, a + 16)) for a in starts]
    assert loaded[segments[0]].tolist() == list(range(0, 64, 4))
    assert loaded[segments[1]].tolist() == list(range(56, 120, 4))
    assert loaded[segments[4]].tolist() == list(range(236, 300, 4))


def test_dense_test_short_video_pads_last_frame():
    # L=30: 0, 4, ..., 28 (8 frames) + eight more 28s; L' = 16 -> every start 0
    assert sampling.dense_test_sampled_indices(30).tolist() == list(range(0, 29, 4)) + [28] * 8
    assert [sampling.dense_test_chunk_start(16, c, 5) for c in range(5)] == [0] * 5


def test_dense_test_single_segment_is_centre():
    # SINGLE_SEGMENT_CENTRE: official divides by zero; here int((75 - 16) / 2) = 29
    assert sampling.dense_test_chunk_start(75, 0, 1) == 29
    assert sampling.dense_test_chunk_start(10, 0, 1) == 0
    with pytest.raises(ValueError):
        sampling.dense_test_chunk_start(75, 5, 5)


def test_tsn_val_and_train():
    # N=50, 16 segments: avg = 3; val k*3 + 1; train k*3 + randint(3)
    assert sampling.tsn_segment_indices(50, 16, "val").tolist() == list(range(1, 48, 3))
    offsets = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    rng = FakeRng(offsets)
    idx = sampling.tsn_segment_indices(50, 16, "train", rng)
    assert rng.calls == [((3,), {"size": 16})]
    assert idx.tolist() == [0, 4, 8, 9, 13, 17, 18, 22, 26, 27, 31, 35, 36, 40, 44, 45]


def test_tsn_short_videos():
    # N=10 < 16: [0]*6 + range(10); N=16: avg 1 -> range(16) in both modes
    expected = [0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
    assert sampling.tsn_segment_indices(10, 16, "train", FakeRng()).tolist() == expected
    assert sampling.tsn_segment_indices(10, 16, "val").tolist() == expected
    assert sampling.tsn_segment_indices(16, 16, "val").tolist() == list(range(16))
    rng = np.random.default_rng(0)
    assert sampling.tsn_segment_indices(16, 16, "train", rng).tolist() == list(range(16))


def test_tsn_test_two_segments_n50():
    # tick = 50/16 = 3.125; t=0: int(3.125x); t=1: int(1.5625 + 3.125x); sorted, chunk c = [c::2]
    c0 = [0, 3, 6, 9, 12, 15, 18, 21, 25, 28, 31, 34, 37, 40, 43, 46]
    c1 = [1, 4, 7, 10, 14, 17, 20, 23, 26, 29, 32, 35, 39, 42, 45, 48]
    assert sampling.tsn_test_all_indices(50, 2).tolist() == sorted(c0 + c1)
    loaded = sampling.multiview_indices(50, "tsn", 2, 16, 4)
    assert loaded.tolist() == sorted(c0 + c1)
    segments = sampling.multiview_segments(len(loaded), "tsn", 2, 16)
    assert [s.tolist() for s in segments] == [list(range(0, 32, 2)), list(range(1, 32, 2))]
    assert loaded[segments[0]].tolist() == c0
    assert loaded[segments[1]].tolist() == c1


def test_sampler_dispatch():
    # dense: as test_dense_train_long_video (end 80 -> start 16, stride 64/15)
    rng = FakeRng(80)
    idx = sampling.clip_indices(100, "dense", 16, 4, "train", rng)
    assert rng.calls == [((64, 100), {})]
    assert idx.tolist() == [16, 20, 24, 28, 33, 37, 41, 45, 50, 54, 58, 62, 67, 71, 75, 79]
    # tsn: num_frames segments, sampling_rate unused; N=50, avg 3, val k*3 + 1
    assert sampling.clip_indices(50, "tsn", 16, 99, "val").tolist() == list(range(1, 48, 3))
    for call in (
        lambda: sampling.clip_indices(50, "sparse", 16, 4, "train"),
        lambda: sampling.multiview_indices(50, "sparse", 2, 16, 4),
    ):
        with pytest.raises(ValueError, match=r"sampler must be one of \('dense', 'tsn'\)"):
            call()
    with pytest.raises(ValueError):
        sampling.multiview_segments(10, "sparse", 2, 16)
