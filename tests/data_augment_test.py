"""Fine-tuning augmentation (data_pipelines.augment; spec 5.2): RandAugment, flip, erasing."""

import math

import numpy as np
import pytest

from data_pipelines import augment
from data_pipelines.augment import AugOp
from data_helpers import noise_clip


# ---------------------------------------------------------------- RandAugment


def test_parse_spec():
    assert augment.parse_rand_augment_spec("rand-m7-n4-mstd0.5-inc1") == dict(
        magnitude=7.0, num_ops=4, magnitude_std=0.5, prob=0.5
    )
    with pytest.raises(ValueError, match="inc1"):
        augment.parse_rand_augment_spec("rand-m9-n2")
    with pytest.raises(ValueError, match="unknown"):
        augment.parse_rand_augment_spec("rand-m9-x2-inc1")


def test_the_15_increasing_ops():
    assert len(augment.RAND_INCREASING_OPS) == 15 == len(set(augment.RAND_INCREASING_OPS))


@pytest.mark.parametrize("name", augment.RAND_INCREASING_OPS)
def test_every_op_is_identical_across_frames(name):
    clip = noise_clip()
    rng = np.random.default_rng(1)
    op = AugOp(name, 7.0, augment.op_level_args(name, 7.0, rng))
    out = augment.apply_rand_augment(clip, [op])
    assert out.shape == clip.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out[0], out[2])  # identical in -> identical out
    assert not np.array_equal(out[0], out[1])
    if name not in ("AutoContrast", "Equalize"):  # those can be no-ops on full-range noise
        assert not np.array_equal(out, clip)


def test_sampled_ops_are_identical_across_frames():
    clip = noise_clip(t=4)
    rng = np.random.default_rng(3)
    for _ in range(10):
        out = augment.rand_augment(clip, rng)
        np.testing.assert_array_equal(out[0], out[2])
        np.testing.assert_array_equal(out[1], out[3])


def test_op_draws_follow_the_spec():
    rng = np.random.default_rng(0)
    fired, names, mags = [], [], []
    n_clips = 3000
    for _ in range(n_clips):
        ops = augment.sample_rand_augment(rng)
        assert len(ops) <= 4
        fired.append(len(ops))
        names += [o.name for o in ops]
        mags += [o.magnitude for o in ops]
    assert set(names) == set(augment.RAND_INCREASING_OPS)  # all 15 and only those
    assert abs(np.mean(fired) - 2.0) < 0.1  # 4 ops x p=0.5
    mags = np.array(mags)
    assert mags.min() >= 0 and mags.max() <= 10
    assert abs(mags.mean() - 7.0) < 0.03 and abs(mags.std() - 0.5) < 0.03
    counts = np.array([names.count(n) for n in augment.RAND_INCREASING_OPS])
    assert counts.min() > 0.8 * len(names) / 15  # uniform with replacement


def test_magnitude_is_clipped():
    rng = np.random.default_rng(0)
    ops = [
        o
        for _ in range(50)
        for o in augment.sample_rand_augment(rng, magnitude=9.9, magnitude_std=5)
    ]
    mags = np.array([o.magnitude for o in ops])
    assert mags.max() == 10.0 and mags.min() >= 0


def test_level_mappings():
    rng = np.random.default_rng(0)

    def args(name, m):
        return augment.op_level_args(name, m, rng)

    rot = {args("Rotate", 5.0)[0] for _ in range(50)}
    assert rot == {15.0, -15.0}  # 30 deg * m/10, random sign
    assert args("PosterizeIncreasing", 7.0) == (2,)  # 4 - int(2.8)
    assert args("PosterizeIncreasing", 0.0) == (4,)
    assert args("PosterizeIncreasing", 10.0) == (0,)
    assert args("SolarizeIncreasing", 7.0) == (256 - 179,)  # 256 - int(179.2)
    assert args("SolarizeIncreasing", 0.0) == (256,)
    assert args("SolarizeAdd", 7.0) == (77,)  # int(110 * 0.7)
    for name in ("ColorIncreasing", "ContrastIncreasing", "BrightnessIncreasing"):
        vals = {round(args(name, 5.0)[0], 9) for _ in range(50)}
        assert vals == {1.45, 0.55}  # 1 +- 0.9 * m / 10
    shear = {round(args("ShearX", 10.0)[0], 9) for _ in range(50)}
    assert shear == {0.3, -0.3}
    trans = {round(args("TranslateYRel", 10.0)[0], 9) for _ in range(50)}
    assert trans == {0.45, -0.45}
    assert args("Invert", 7.0) == ()


def test_ops_numerically():
    clip = noise_clip(t=1, h=16, w=16)
    out = augment.apply_rand_augment(clip, [AugOp("PosterizeIncreasing", 7.0, (2,))])
    np.testing.assert_array_equal(out, clip & 0xC0)
    out = augment.apply_rand_augment(clip, [AugOp("SolarizeIncreasing", 5.0, (128,))])
    np.testing.assert_array_equal(out, np.where(clip >= 128, 255 - clip, clip))
    out = augment.apply_rand_augment(clip, [AugOp("SolarizeAdd", 5.0, (55,))])
    expect = np.where(clip < 128, np.minimum(clip.astype(int) + 55, 255), clip)
    np.testing.assert_array_equal(out, expect)
    out = augment.apply_rand_augment(clip, [AugOp("Invert", 5.0, ())])
    np.testing.assert_array_equal(out, 255 - clip)
    # TranslateXRel 0.25 of width 16 = 4 px: output x reads input x + 4, fill 128 on the right
    out = augment.apply_rand_augment(clip, [AugOp("TranslateXRel", 5.0, (0.25,))])
    np.testing.assert_array_equal(out[:, :, :12], clip[:, :, 4:])
    assert np.all(out[:, :, 12:] == 128)
    # Rotate by 90 degrees (counter-clockwise) of a square frame is exact
    out = augment.apply_rand_augment(clip, [AugOp("Rotate", 10.0, (90.0,))])
    np.testing.assert_array_equal(out[0], np.rot90(clip[0]))


# ---------------------------------------------------------------- flip, train view


class FixedUniform:
    """Stands in for np.random.Generator: ``random()`` returns ``u``."""

    def __init__(self, u):
        self.u = u

    def random(self):
        return self.u


def test_flip_is_one_draw_below_one_half():
    assert augment.draw_flip(FixedUniform(0.49)) is True
    assert augment.draw_flip(FixedUniform(0.5)) is False
    assert augment.RAND_AUGMENT_SPEC == "rand-m7-n4-mstd0.5-inc1"  # official --aa


def test_train_view_flip_switch():
    ramp = np.tile(np.arange(64, dtype=np.uint8)[None, None, :, None] * 4, (2, 48, 1, 3))
    rng = np.random.default_rng(0)

    def increasing(flip):
        out, box = augment.train_view(ramp, rng, 32, None, flip, 0.0)
        assert out.shape == (2, 32, 32, 3) and box.tolist() == [0, 0, 0, 0]
        return int(out[0, 0, -1, 0]) > int(out[0, 0, 0, 0])

    assert all(increasing(False) for _ in range(30))
    flips = [not increasing(True) for _ in range(200)]
    assert 0.35 < np.mean(flips) < 0.65


# ---------------------------------------------------------------- random erasing


def test_erase_box_statistics():
    rng = np.random.default_rng(0)
    boxes = np.stack([augment.sample_erase_box(rng, 224, 224) for _ in range(4000)])
    assert boxes.dtype == np.int32 and boxes.shape == (4000, 4)
    on = boxes[:, 2] > 0
    assert abs(on.mean() - 0.25) < 0.03
    assert np.all(boxes[~on] == 0)
    top, left, h, w = boxes[on].T
    assert np.all(top >= 0) and np.all(left >= 0)
    assert np.all(top + h <= 224) and np.all(left + w <= 224)
    assert np.all(h < 224) and np.all(w < 224)
    area = h * w / 224**2
    assert area.min() >= 0.02 * 0.9 and area.max() <= 1 / 3 * 1.1
    aspect = h / w
    assert aspect.min() >= 0.3 * 0.9 and aspect.max() <= (1 / 0.3) * 1.1
    never = [augment.sample_erase_box(rng, 224, 224, probability=0.0) for _ in range(100)]
    assert all(b.tolist() == [0, 0, 0, 0] for b in never)


def test_apply_erasing_same_box_fresh_noise():
    clip = np.zeros((3, 20, 20, 3), dtype=np.float32)
    box = np.array([2, 5, 6, 4], dtype=np.int32)
    out = augment.apply_erasing(clip, box, np.random.default_rng(0))
    mask = np.zeros((20, 20), bool)
    mask[2:8, 5:9] = True
    assert np.all(out[:, ~mask] == 0)
    assert np.all(out[:, mask] != 0)
    assert not np.array_equal(out[0, mask], out[1, mask])  # fresh noise per frame
    assert abs(out[:, mask].std() - 1.0) < 0.3
    np.testing.assert_array_equal(augment.apply_erasing(clip, np.zeros(4, np.int32), None), clip)


def test_bad_clip():
    with pytest.raises(ValueError, match="uint8"):
        augment.apply_rand_augment(np.zeros((2, 8, 8, 3), np.float32), [])
    assert math.isclose(augment.FILL[0], 128)
