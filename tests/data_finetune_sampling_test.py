"""Fine-tuning temporal sampling against hand-computed index arrays (spec 5.3, 5.4, 7)."""

import numpy as np
import pytest

from data_pipelines import finetune_sampling as fs
from data_pipelines.decode import VideoDecodeError


class FakeRng:
    """Returns preset values from ``integers`` and records the calls."""

    def __init__(self, *values):
        self.values = list(values)
        self.calls = []

    def integers(self, *args, **kwargs):
        self.calls.append((args, kwargs))
        return self.values.pop(0)


def test_dense_train_long_video():
    # L=100, span 64: end ~ randint(64, 100); with end=80: start=16,
    # linspace(16, 80, 16) = 16 + k*64/15, last clipped to 79, floored.
    rng = FakeRng(80)
    idx = fs.dense_clip_indices(100, 16, 4, "train", rng)
    assert rng.calls == [((64, 100), {})]
    expected = [16, 20, 24, 28, 33, 37, 41, 45, 50, 54, 58, 62, 67, 71, 75, 79]
    assert idx.tolist() == expected and idx.dtype == np.int64


def test_dense_train_end_range_real_rng():
    rng = np.random.default_rng(0)
    for _ in range(200):
        idx = fs.dense_clip_indices(100, 16, 4, "train", rng)
        start = idx[0]
        assert 0 <= start <= 100 - 1 - 64  # end in [64, 99]
        assert idx[-1] == start + 63


def test_dense_val_long_video():
    # end = (64 + 100) // 2 = 82, start = 18
    idx = fs.dense_clip_indices(100, 16, 4, "val")
    assert idx.tolist() == [18, 22, 26, 30, 35, 39, 43, 47, 52, 56, 60, 64, 69, 73, 77, 81]


@pytest.mark.parametrize("mode", ["train", "val"])
def test_dense_short_video(mode):
    # L=40 <= 64: n = 40//4 = 10; linspace(0, 40, 10) = 40k/9, then six 40s, clip to 39
    rng = FakeRng()  # must not be used
    idx = fs.dense_clip_indices(40, 16, 4, mode, rng)
    assert idx.tolist() == [0, 4, 8, 13, 17, 22, 26, 31, 35, 39, 39, 39, 39, 39, 39, 39]
    assert rng.calls == []


def test_dense_exactly_span_and_tiny():
    # L=64 is short: linspace(0, 64, 16) = 64k/15, last 64 -> 63
    assert fs.dense_clip_indices(64, mode="val").tolist() == [
        0, 4, 8, 12, 17, 21, 25, 29, 34, 38, 42, 46, 51, 55, 59, 63
    ]  # fmt: skip
    assert fs.dense_clip_indices(3, mode="val").tolist() == [2] * 16  # n = 0: all L -> L-1
    with pytest.raises(VideoDecodeError):
        fs.dense_clip_indices(0)
    with pytest.raises(ValueError):
        fs.dense_clip_indices(10, mode="test")


def test_dense_test_segments_l300():
    # every 4th frame: 0, 4, ..., 296 -> L' = 75; S=5: step (75-16)/4 = 14.75
    sampled = fs.dense_test_sampled_indices(300)
    assert len(sampled) == 75 and sampled[:3].tolist() == [0, 4, 8] and sampled[-1] == 296
    starts = [fs.dense_test_chunk_start(75, c, 5) for c in range(5)]
    assert starts == [0, 14, 29, 44, 59]
    assert fs.dense_test_clip_indices(300, 0, 5).tolist() == list(range(0, 64, 4))
    assert fs.dense_test_clip_indices(300, 1, 5).tolist() == list(range(56, 120, 4))
    assert fs.dense_test_clip_indices(300, 4, 5).tolist() == list(range(236, 300, 4))


def test_dense_test_short_video_pads_last_frame():
    # L=30: 0, 4, ..., 28 (8 frames) + eight more 28s; L' = 16 -> every start 0
    assert fs.dense_test_sampled_indices(30).tolist() == list(range(0, 29, 4)) + [28] * 8
    assert [fs.dense_test_chunk_start(16, c, 5) for c in range(5)] == [0] * 5


def test_dense_test_single_segment_is_centre():
    # SINGLE_SEGMENT_CENTRE: official divides by zero; here int((75 - 16) / 2) = 29
    assert fs.dense_test_chunk_start(75, 0, 1) == 29
    assert fs.dense_test_chunk_start(10, 0, 1) == 0
    with pytest.raises(ValueError):
        fs.dense_test_chunk_start(75, 5, 5)


def test_tsn_val_and_train():
    # N=50, 16 segments: avg = 3; val k*3 + 1; train k*3 + randint(3)
    assert fs.tsn_segment_indices(50, 16, "val").tolist() == list(range(1, 48, 3))
    offsets = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    rng = FakeRng(offsets)
    idx = fs.tsn_segment_indices(50, 16, "train", rng)
    assert rng.calls == [((3,), {"size": 16})]
    assert idx.tolist() == [0, 4, 8, 9, 13, 17, 18, 22, 26, 27, 31, 35, 36, 40, 44, 45]


def test_tsn_short_videos():
    # N=10 < 16: [0]*6 + range(10); N=16: avg 1 -> range(16) in both modes
    expected = [0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
    assert fs.tsn_segment_indices(10, 16, "train", FakeRng()).tolist() == expected
    assert fs.tsn_segment_indices(10, 16, "val").tolist() == expected
    assert fs.tsn_segment_indices(16, 16, "val").tolist() == list(range(16))
    rng = np.random.default_rng(0)
    assert fs.tsn_segment_indices(16, 16, "train", rng).tolist() == list(range(16))


def test_tsn_test_two_segments_n50():
    # tick = 50/16 = 3.125; t=0: int(3.125x); t=1: int(1.5625 + 3.125x); sorted, chunk c = [c::2]
    c0 = [0, 3, 6, 9, 12, 15, 18, 21, 25, 28, 31, 34, 37, 40, 43, 46]
    c1 = [1, 4, 7, 10, 14, 17, 20, 23, 26, 29, 32, 35, 39, 42, 45, 48]
    assert fs.tsn_test_all_indices(50, 2).tolist() == sorted(c0 + c1)
    assert fs.tsn_test_indices(50, 0, 2).tolist() == c0
    assert fs.tsn_test_indices(50, 1, 2).tolist() == c1


def test_feature_windows():
    # THUMOS14: range(0, T-15, 4); T=40 -> 0..24, floor((40-16)/4)+1 = 7 windows
    assert fs.feature_window_starts(40, 4).tolist() == [0, 4, 8, 12, 16, 20, 24]
    assert fs.feature_window_starts(40, 16).tolist() == [0, 16]  # FineAction
    assert fs.feature_window_starts(16, 4).tolist() == [0]
    assert fs.feature_window_starts(15, 4).tolist() == []
    with pytest.raises(ValueError):
        fs.feature_window_starts(40, 0)
