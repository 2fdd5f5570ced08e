"""GroupMultiScaleCrop vs hand-computed tables (official dataset/transforms.py, spec 4.3)."""

import numpy as np
import pytest
from PIL import Image

from data_pipelines.transforms import (
    crop_size_pairs,
    crop_and_resize,
    fixed_offsets,
    multi_scale_crop,
)


def test_pairs_320x240():
    # base 240: int(240*[1,.875,.75,.66]) = 240, 210, 180, 158 (158.4); none within 3 px of 224
    assert crop_size_pairs(320, 240, 224) == [
        (240, 240),
        (210, 240),
        (240, 210),
        (210, 210),
        (180, 210),
        (210, 180),
        (180, 180),
        (158, 180),
        (180, 158),
        (158, 158),
    ]


def test_pairs_1280x720():
    # base 720: 720, 630, 540, 475 (475.2)
    assert crop_size_pairs(1280, 720, 224) == [
        (720, 720),
        (630, 720),
        (720, 630),
        (630, 630),
        (540, 630),
        (630, 540),
        (540, 540),
        (475, 540),
        (540, 475),
        (475, 475),
    ]


def test_pairs_snap_within_3px():
    # 320x240 at size 208: 210 is 2 px away -> 208; 180 and 158 stay
    assert crop_size_pairs(320, 240, 208) == [
        (240, 240),
        (208, 240),
        (240, 208),
        (208, 208),
        (180, 208),
        (208, 180),
        (180, 180),
        (158, 180),
        (180, 158),
        (158, 158),
    ]
    # 340x255 at 224: 255, 223 (223.125 -> snaps to 224), 191, 168
    assert crop_size_pairs(340, 255, 224)[:5] == [
        (255, 255),
        (224, 255),
        (255, 224),
        (224, 224),
        (191, 224),
    ]
    # exactly 3 px away does not snap (strict <)
    assert crop_size_pairs(320, 240, 213)[3] == (210, 210)


def test_pairs_max_distort_0():
    assert crop_size_pairs(320, 240, 224, max_distort=0) == [
        (240, 240),
        (210, 210),
        (180, 180),
        (158, 158),
    ]


def test_fixed_offsets_13():
    # W=320, H=240, crop 210x180: ws = 110 // 4 = 27, hs = 60 // 4 = 15
    assert fixed_offsets(320, 240, 210, 180) == [
        (0, 0),
        (108, 0),
        (0, 60),
        (108, 60),
        (54, 30),
        (0, 30),
        (108, 30),
        (54, 60),
        (54, 0),
        (27, 15),
        (81, 15),
        (27, 45),
        (81, 45),
    ]
    assert fixed_offsets(320, 240, 210, 180, more_fix_crop=False) == [
        (0, 0),
        (108, 0),
        (0, 60),
        (108, 60),
        (54, 30),
    ]
    # crop as tall as the frame: hs = 0
    assert fixed_offsets(320, 240, 240, 240)[:5] == [(0, 0), (80, 0), (0, 0), (80, 0), (40, 0)]


def _ramp_frames(t, h, w):
    """uint8 [t, h, w, 3]: R = x, G = y (coordinates), B = frame number."""
    y, x = np.mgrid[0:h, 0:w]
    f = np.empty((t, h, w, 3), dtype=np.uint8)
    f[..., 0] = x
    f[..., 1] = y
    f[..., 2] = np.arange(t)[:, None, None]
    return f


def test_output_shape_dtype_and_same_crop_all_frames():
    frames = _ramp_frames(4, 240, 250)  # coordinates < 256 fit in uint8
    rng = np.random.default_rng(0)
    pairs = crop_size_pairs(250, 240, 112)
    seen = set()
    for _ in range(30):
        out = multi_scale_crop(frames, rng, size=112)
        assert out.shape == (4, 112, 112, 3) and out.dtype == np.uint8
        # spatial content identical across frames; frame channel kept
        for t in range(1, 4):
            np.testing.assert_array_equal(out[t, ..., :2], out[0, ..., :2])
        np.testing.assert_array_equal(out[:, 0, 0, 2], np.arange(4))
        # top-left pixel tells the crop's offset (up to bilinear half-pixel blur)
        x0, y0 = int(out[0, 0, 0, 0]), int(out[0, 0, 0, 1])
        x1, y1 = int(out[0, -1, -1, 0]), int(out[0, -1, -1, 1])
        cw, ch = x1 - x0 + 1, y1 - y0 + 1
        match = [(w, h) for (w, h) in pairs if abs(w - cw) <= 2 and abs(h - ch) <= 2]
        assert match, (cw, ch)
        w, h = match[0]
        offs = fixed_offsets(250, 240, w, h)
        assert any(abs(ox - x0) <= 1 and abs(oy - y0) <= 1 for ox, oy in offs), (x0, y0, w, h)
        seen.add((w, h))
    assert len(seen) > 3  # several scales were drawn


def test_crop_and_resize_matches_pil():
    frames = np.random.default_rng(1).integers(0, 256, (2, 60, 80, 3), dtype=np.uint8)
    out = crop_and_resize(frames, (10, 5, 50, 40), 32)
    ref = np.asarray(
        Image.fromarray(frames[1]).crop((10, 5, 60, 45)).resize((32, 32), Image.BILINEAR)
    )
    np.testing.assert_array_equal(out[1], ref)
    # crop of exactly `size` is copied untouched
    same = crop_and_resize(frames, (3, 4, 32, 32), 32)
    np.testing.assert_array_equal(same, frames[:, 4:36, 3:35])


def test_deterministic_for_seed_and_bad_input():
    frames = _ramp_frames(2, 64, 96)
    a = multi_scale_crop(frames, np.random.default_rng(5), size=32)
    b = multi_scale_crop(frames, np.random.default_rng(5), size=32)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="uint8"):
        multi_scale_crop(frames.astype(np.float32), np.random.default_rng(0), size=32)
