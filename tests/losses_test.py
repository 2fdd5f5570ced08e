"""Targets and the pre-training loss against a float64 NumPy statement of spec 3."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vmae2.ops import losses
from vmae2.ops import masking
from vmae2.ops import targets

MEAN = np.array([0.485, 0.456, 0.406])
STD = np.array([0.229, 0.224, 0.225])


def reference_loss(video_u8, pred, bool_masked_pos, decode_masked_pos, p, kt):
    """Official engine_for_pretraining.py in float64 NumPy with boolean masks.

    video_u8 [B, T, H, W, 3]; masks [B, N] with 1 = masked / not decoded;
    pred [B, N_dec, kt*p*p*3] rows in ascending order of the decoded positions.
    """
    images = ((video_u8 / 255.0) - MEAN) / STD  # the data pipeline
    unnorm = images * STD + MEAN  # engine: un-normalise
    b, t, h, w, c = unnorm.shape
    x = unnorm.reshape(b, t // kt, kt, h // p, p, w // p, p, c)
    x = x.transpose(0, 1, 3, 5, 2, 4, 6, 7).reshape(b, -1, kt * p * p, c)
    mean = x.mean(axis=-2, keepdims=True)
    std = np.sqrt(x.var(axis=-2, ddof=1, keepdims=True))
    norm = ((x - mean) / (std + 1e-6)).reshape(b, x.shape[1], -1)
    total, count = 0.0, 0.0
    for i in range(b):
        keep = ~decode_masked_pos[i]
        labels = norm[i][keep]
        loss_tok = ((pred[i] - labels) ** 2).mean(-1)
        cal = bool_masked_pos[i][keep]
        total += (loss_tok * cal).sum()
        count += cal.sum()
    return total / count


def test_loss_matches_float64_reference():
    rng = np.random.default_rng(0)
    p, kt, grid = 4, 2, (4, 4, 4)
    video = rng.integers(0, 256, (3, 8, 16, 16, 3), dtype=np.uint8)
    spec = masking.MaskSpec(grid, mask_ratio=0.75)
    vis, dec, weight = (np.asarray(a) for a in masking.sample_masks(jax.random.key(0), spec, 3))
    pred = rng.normal(size=(3, spec.num_decode, kt * p * p * 3)).astype(np.float32)

    x = targets.normalize(jnp.asarray(video))
    tgt = jnp.take_along_axis(targets.pixel_targets(x, p, kt), jnp.asarray(dec)[:, :, None], 1)
    ours = float(losses.masked_mse(jnp.asarray(pred), tgt, jnp.asarray(weight)))

    n = int(np.prod(grid))
    bool_masked = np.ones((3, n), bool)
    not_decoded = np.ones((3, n), bool)
    for i in range(3):
        bool_masked[i, vis[i]] = False
        not_decoded[i, dec[i]] = False
    ref = reference_loss(
        video.astype(np.float64), pred.astype(np.float64), bool_masked, not_decoded, p, kt
    )
    np.testing.assert_allclose(ours, ref, rtol=1e-5)


def test_target_feature_order_is_t_h_w_c():
    # A clip whose value encodes (frame, row, col, channel): token 0's target order
    # must run over (kt, kh, kw) with channels fastest.
    t, h, w = np.meshgrid(np.arange(4), np.arange(8), np.arange(8), indexing='ij')
    clip = np.stack([t * 1000 + h * 10 + w + c * 0.1 for c in range(3)], -1)[None]
    patches = np.asarray(targets.patchify(jnp.asarray(clip, jnp.float32), 4, 2))
    flat = patches.reshape(1, patches.shape[1], -1)[0, 0]
    expected = [
        kt * 1000 + kh * 10 + kw + c * 0.1
        for kt in range(2)
        for kh in range(4)
        for kw in range(4)
        for c in range(3)
    ]
    np.testing.assert_allclose(flat, expected, rtol=1e-6)


def test_unpatchify_inverts_patchify():
    x = np.random.default_rng(1).normal(size=(2, 4, 8, 12, 3)).astype(np.float32)
    grid = (2, 2, 3)
    back = targets.unpatchify(targets.patchify(jnp.asarray(x), 4, 2), grid, 4, 2)
    np.testing.assert_array_equal(np.asarray(back), x)


def test_predicting_zero_gives_loss_one_for_normalised_targets():
    # With per-patch standardised targets (unbiased variance) the zero predictor
    # scores (P-1)/P per token: the reference level the demo must beat.
    rng = np.random.default_rng(2)
    video = rng.integers(0, 256, (2, 4, 8, 8, 3), dtype=np.uint8)
    tgt = targets.pixel_targets(targets.normalize(jnp.asarray(video)), 4, 2)
    loss = float(losses.masked_mse(jnp.zeros_like(tgt), tgt, jnp.ones(tgt.shape[:2])))
    np.testing.assert_allclose(loss, (32 - 1) / 32, rtol=1e-3)


def test_soft_target_cross_entropy_matches_float64_numpy():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(5, 7)) * 3
    t = rng.random((5, 7))
    t /= t.sum(1, keepdims=True)
    logp = logits - logits.max(1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(1, keepdims=True))
    want = np.mean(np.sum(-t * logp, axis=1))
    got = np.mean(
        losses.soft_target_cross_entropy_per_example(jnp.asarray(logits, jnp.float32), jnp.asarray(t))
    )
    assert float(got) == pytest.approx(want, rel=1e-5)


def test_distillation_kl_matches_numpy_and_vanishes_on_equal_logits():
    rng = np.random.default_rng(1)
    s, t, temp = rng.normal(size=(4, 6)), rng.normal(size=(4, 6)), 2.5

    def log_softmax(z):
        z = z - z.max(1, keepdims=True)
        return z - np.log(np.exp(z).sum(1, keepdims=True))

    lp, lq = log_softmax(t / temp), log_softmax(s / temp)
    want = np.mean(np.sum(np.exp(lp) * (lp - lq), axis=1)) * temp**2
    got = np.mean(losses.distillation_kl_per_example(jnp.asarray(s), jnp.asarray(t), temp))
    assert float(got) == pytest.approx(want, rel=1e-5)
    same = losses.distillation_kl_per_example(jnp.asarray(s), jnp.asarray(s), temp)
    np.testing.assert_allclose(same, 0.0, atol=1e-6)
    f = jnp.asarray(rng.normal(size=(3, 5)))
    assert np.allclose(losses.feature_loss_per_example(f, 2 * f, 'cosine'), 0, atol=1e-6)
    assert np.allclose(losses.feature_loss_per_example(f, f + 1, 'mse'), 1, atol=1e-6)
