"""Spatial crops vs hand-computed tables: GroupMultiScaleCrop (official
dataset/transforms.py, spec 4.3), RandomResizedCrop (spec 5.2), eval views (spec 5.4, 7).

Boxes are (top, left, height, width); sizes (height, width).
"""

import numpy as np
import pytest
from PIL import Image

from data_pipelines import crops
from data_pipelines.crops import crop_and_resize, crop_size_pairs, fixed_offsets, multi_scale_crop
from data_helpers import noise_clip


# ---------------------------------------------------------------- GroupMultiScaleCrop


def test_pairs_320x240():
    # base 240: int(240*[1,.875,.75,.66]) = 240, 210, 180, 158 (158.4); none within 3 px of 224
    assert crop_size_pairs(240, 320, 224) == [
        (240, 240),
        (240, 210),
        (210, 240),
        (210, 210),
        (210, 180),
        (180, 210),
        (180, 180),
        (180, 158),
        (158, 180),
        (158, 158),
    ]


def test_pairs_1280x720():
    # base 720: 720, 630, 540, 475 (475.2)
    assert crop_size_pairs(720, 1280, 224) == [
        (720, 720),
        (720, 630),
        (630, 720),
        (630, 630),
        (630, 540),
        (540, 630),
        (540, 540),
        (540, 475),
        (475, 540),
        (475, 475),
    ]


def test_pairs_snap_within_3px():
    # 320x240 at size 208: 210 is 2 px away -> 208; 180 and 158 stay
    assert crop_size_pairs(240, 320, 208) == [
        (240, 240),
        (240, 208),
        (208, 240),
        (208, 208),
        (208, 180),
        (180, 208),
        (180, 180),
        (180, 158),
        (158, 180),
        (158, 158),
    ]
    # 340x255 at 224: 255, 223 (223.125 -> snaps to 224), 191, 168
    assert crop_size_pairs(255, 340, 224)[:5] == [
        (255, 255),
        (255, 224),
        (224, 255),
        (224, 224),
        (224, 191),
    ]
    # exactly 3 px away does not snap (strict <)
    assert crop_size_pairs(240, 320, 213)[3] == (210, 210)


def test_pairs_max_distort_0():
    assert crop_size_pairs(240, 320, 224, max_distort=0) == [
        (240, 240),
        (210, 210),
        (180, 180),
        (158, 158),
    ]


def test_fixed_offsets_13():
    # H=240, W=320, crop 180 high x 210 wide: hs = 60 // 4 = 15, ws = 110 // 4 = 27
    assert fixed_offsets(240, 320, 180, 210) == [
        (0, 0),
        (0, 108),
        (60, 0),
        (60, 108),
        (30, 54),
        (30, 0),
        (30, 108),
        (60, 54),
        (0, 54),
        (15, 27),
        (15, 81),
        (45, 27),
        (45, 81),
    ]
    assert fixed_offsets(240, 320, 180, 210, more_fix_crop=False) == [
        (0, 0),
        (0, 108),
        (60, 0),
        (60, 108),
        (30, 54),
    ]
    # crop as tall as the frame: hs = 0, ws = 80 // 4 = 20
    assert fixed_offsets(240, 320, 240, 240)[:5] == [(0, 0), (0, 80), (0, 0), (0, 80), (0, 40)]


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
    pairs = crop_size_pairs(240, 250, 112)
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
        match = [(h, w) for (h, w) in pairs if abs(w - cw) <= 2 and abs(h - ch) <= 2]
        assert match, (ch, cw)
        h, w = match[0]
        offs = fixed_offsets(240, 250, h, w)
        assert any(abs(top - y0) <= 1 and abs(left - x0) <= 1 for top, left in offs), (y0, x0, h, w)
        seen.add((h, w))
    assert len(seen) > 3  # several scales were drawn


def test_crop_and_resize_matches_pil():
    frames = np.random.default_rng(1).integers(0, 256, (2, 60, 80, 3), dtype=np.uint8)
    out = crop_and_resize(frames, (5, 10, 40, 50), 32)  # top 5, left 10, 40 high, 50 wide
    ref = np.asarray(
        Image.fromarray(frames[1]).crop((10, 5, 60, 45)).resize((32, 32), Image.BILINEAR)
    )
    np.testing.assert_array_equal(out[1], ref)
    # crop of exactly `size` is copied untouched
    same = crop_and_resize(frames, (4, 3, 32, 32), 32)
    np.testing.assert_array_equal(same, frames[:, 4:36, 3:35])


def test_deterministic_for_seed_and_bad_input():
    frames = _ramp_frames(2, 64, 96)
    a = multi_scale_crop(frames, np.random.default_rng(5), size=32)
    b = multi_scale_crop(frames, np.random.default_rng(5), size=32)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="uint8"):
        multi_scale_crop(frames.astype(np.float32), np.random.default_rng(0), size=32)


# ---------------------------------------------------------------- RandomResizedCrop


def test_cv2_resize_is_within_one_of_the_float_formula():
    rng = np.random.default_rng(0)
    clip = rng.integers(0, 256, (2, 57, 83, 3), dtype=np.uint8)
    for out_h, out_w in ((32, 32), (224, 224), (20, 101)):
        got = crops.resize_bilinear(clip, out_h, out_w).astype(int)
        want = crops.resize_bilinear_reference(clip, out_h, out_w).astype(int)
        assert got.shape == want.shape == (2, out_h, out_w, 3)
        assert np.abs(got - want).max() <= 1


def test_resize_bilinear_half_pixel_formula():
    x = np.array([0, 10, 20, 30], dtype=np.uint8).reshape(1, 1, 4, 1)
    # down 4 -> 2: src = (o + .5) * 2 - .5 = 0.5, 2.5
    assert crops.resize_bilinear(x, 1, 2).ravel().tolist() == [5, 25]
    y = np.array([0, 100], dtype=np.uint8).reshape(1, 1, 2, 1)
    # up 2 -> 4: src = -0.25 (clamped 0), 0.25, 0.75, 1.25 (clamped to the edge)
    assert crops.resize_bilinear(y, 1, 4).ravel().tolist() == [0, 25, 75, 100]


def test_resized_crop_box_bounds_and_fallback():
    rng = np.random.default_rng(0)
    for _ in range(500):
        top, left, h, w = crops.sample_resized_crop_box(240, 320, rng)
        assert 0 < h <= 240 and 0 < w <= 320 and top + h <= 240 and left + w <= 320
        assert 0.08 * 240 * 320 * 0.9 <= h * w <= 240 * 320
    # centre fallback: W/H = 3 > 1.3333 -> h = 100, w = round(100 * 1.3333) = 133
    assert crops.sample_resized_crop_box(100, 300, rng, tries=0) == (0, 83, 100, 133)
    # W/H = 1/3 < 0.75 -> w = W = 100, h = round(100 / 0.75) = 133
    assert crops.sample_resized_crop_box(300, 100, rng, tries=0) == (83, 0, 133, 100)
    assert crops.sample_resized_crop_box(100, 120, rng, tries=0) == (0, 0, 100, 120)


def test_crop_scale_reaches_the_view_sampler():
    """data.crop_scale: the area range of the box sample_train_view draws."""
    from data_pipelines import augment

    rng = np.random.default_rng(1)
    # (1, 1) on a square frame: only aspect 1 fits, else the centre fallback (whole frame).
    for _ in range(50):
        draw = augment.sample_train_view(rng, 48, 48, 32, None, False, 0.0, (1.0, 1.0))
        assert draw.crop_box == (0, 0, 48, 48)
    areas = [
        np.prod(augment.sample_train_view(rng, 240, 320, 32, None, False, 0.0, (0.5, 1.0)).crop_box[2:])
        for _ in range(300)
    ]
    # Rounding of w and h moves the area by under 1 % at these sizes.
    assert 0.5 * 0.99 * 240 * 320 <= min(areas) and max(areas) <= 240 * 320
    assert min(areas) < 0.6 * 240 * 320  # the low end is reached


def test_random_resized_crop_same_box_all_frames():
    clip = noise_clip(t=3, h=48, w=64)
    out, (top, left, h, w) = crops.random_resized_crop(clip, np.random.default_rng(5), 32)
    assert out.shape == (3, 32, 32, 3)
    np.testing.assert_array_equal(out[0], out[2])
    np.testing.assert_array_equal(
        out, crops.resize_bilinear(clip[:, top : top + h, left : left + w], 32, 32)
    )


# ---------------------------------------------------------------- eval views


@pytest.mark.parametrize("w, h, new", [(320, 240, (224, 298)), (240, 320, (298, 224))])
def test_three_test_crops_geometry(w, h, new):
    assert crops.short_side_size(h, w, 224) == new  # long side int(224 * 320 / 240) = 298
    assert crops.eval_crop_starts(298, 224, 3) == [0, 37, 74]  # int(split * 74 / 2)
    # frames whose pixels encode their column (R, G) and row (B) after resizing
    yy, xx = np.mgrid[0 : new[0], 0 : new[1]]
    frame = np.stack([xx % 256, xx // 256, yy % 256], -1).astype(np.uint8)[None]
    resized = crops.resize_short_side(np.zeros((1, h, w, 3), np.uint8), 224)
    assert resized.shape == (1, *new, 3)
    for split, start in enumerate([0, 37, 74]):
        crop = crops.eval_spatial_crop(frame, split, 3, 224)
        assert crop.shape == (1, 224, 224, 3)
        if w > h:  # along the width
            assert crop[0, 0, 0, 0] == start and crop[0, 0, 0, 2] == 0
        else:  # along the height
            assert crop[0, 0, 0, 2] == start and crop[0, 0, 0, 0] == 0


def test_single_crop_is_centre_and_val_view():
    assert crops.eval_crop_starts(298, 224, 1) == [37]
    frames = np.zeros((2, 240, 320, 3), np.uint8)
    frames[:, :, 160:] = 200
    v = crops.val_view(frames, 224)
    assert v.shape == (2, 224, 224, 3)
    # centre crop left = round((298 - 224) / 2) = 37: the bright half starts at 149 - 37 = 112
    assert v[0, 0, 110, 0] == 0 and v[0, 0, 114, 0] == 200


def test_squash_resize():
    out = crops.squash_resize(np.full((2, 48, 64, 3), 7, np.uint8), 32)
    assert out.shape == (2, 32, 32, 3) and np.all(out == 7)
