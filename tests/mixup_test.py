"""Batch mixup / cutmix and the random-erasing fill against their formulas (timm Mixup,
official RandomErasing; spec 5.2)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vmae2.ops import mixup


def _batch(b=6, t=2, h=8, w=10):
    x = jax.random.normal(jax.random.key(0), (b, t, h, w, 3))
    labels = jnp.array([0, 1, 2, 3, 1, 0][:b])
    return x, labels


def test_cutmix_targets_match_the_box_area_and_sum_to_one():
    x, labels = _batch()
    cfg = mixup.MixupConfig(mixup_alpha=0.0, cutmix_alpha=1.0, label_smoothing=0.1)
    seen = 0
    for seed in range(8):
        out, y, info = mixup.mix_batch(jax.random.key(seed), x, labels, 4, cfg)
        out, y = np.asarray(out), np.asarray(y)
        np.testing.assert_allclose(y.sum(1), 1.0, rtol=1e-6)
        from_flip = np.all(out == np.asarray(x)[::-1], axis=(0, 1, 4))  # [H, W] pixel source
        lam = 1.0 - from_flip.mean()
        assert float(info['lam']) == pytest.approx(lam, abs=1e-6)
        # The box is the same for every clip and frame.
        assert np.all((out == np.asarray(x)[::-1]) | (out == np.asarray(x)))
        one = np.full((6, 4), 0.1 / 4)
        one[np.arange(6), np.asarray(labels)] = 1 - 0.1 + 0.1 / 4
        np.testing.assert_allclose(y, lam * one + (1 - lam) * one[::-1], rtol=1e-5, atol=1e-6)
        seen += 0 < lam < 1
    assert seen > 0


def test_mixup_is_a_convex_combination_with_the_flipped_batch():
    x, labels = _batch()
    cfg = mixup.MixupConfig(mixup_alpha=0.8, cutmix_alpha=0.0, label_smoothing=0.0)
    out, y, info = mixup.mix_batch(jax.random.key(3), x, labels, 4, cfg)
    lam = float(info['lam'])
    assert not bool(info['cutmix']) and 0 < lam < 1
    np.testing.assert_allclose(out, lam * x + (1 - lam) * x[::-1], rtol=1e-5, atol=1e-6)
    one = np.eye(4)[np.asarray(labels)]
    np.testing.assert_allclose(y, lam * one + (1 - lam) * one[::-1], rtol=1e-5, atol=1e-6)


def test_switch_prob_picks_both_modes_and_prob_zero_leaves_the_batch():
    x, labels = _batch()
    cfg = mixup.MixupConfig()
    kinds = {
        bool(mixup.mix_batch(jax.random.key(s), x, labels, 4, cfg)[2]['cutmix']) for s in range(20)
    }
    assert kinds == {True, False}
    off = mixup.MixupConfig(prob=0.0)
    out, y, info = mixup.mix_batch(jax.random.key(0), x, labels, 4, off)
    np.testing.assert_array_equal(out, x)
    assert float(info['lam']) == 1.0


def test_random_erasing_fills_only_the_box_with_fresh_noise_per_frame():
    x = jnp.zeros((2, 3, 8, 8, 3))
    boxes = jnp.array([[1, 2, 3, 4], [0, 0, 0, 0]], jnp.int32)
    out = np.asarray(mixup.erase_boxes(jax.random.key(0), x, boxes))
    inside = np.zeros((8, 8), bool)
    inside[1:4, 2:6] = True
    assert np.all(out[0][:, ~inside] == 0) and np.all(out[0][:, inside] != 0)
    assert not np.allclose(out[0, 0][inside], out[0, 1][inside])  # per frame
    assert np.all(out[1] == 0)  # h == 0: no box
    assert abs(out[0][:, inside].std() - 1) < 0.35
