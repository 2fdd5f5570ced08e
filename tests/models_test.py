"""Model shapes, parameter counts (spec numbers) and initialisation."""

import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

from tiny_configs import tiny_model
from vmae2.errors import ConfigError
from vmae2.models import embed
from vmae2.models.classifier import Classifier
from vmae2.models.config import ModelConfig
from vmae2.models.pretrain import PretrainModel
from vmae2.ops import masking


def n_params(module):
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(nnx.state(module, nnx.Param)))


# Spec 1.7 totals (decoder depth 4) and the 1.8 formula for the classifiers.
@pytest.mark.parametrize(
    'variant,total_m',
    [('vit_s', 24.03), ('vit_b', 94.21), ('vit_l', 317.78), ('vit_h', 645.66), ('vit_g', 1026.31)],
)
def test_pretrain_parameter_counts(variant, total_m):
    spec = ModelConfig.create(variant)
    model = nnx.eval_shape(lambda: PretrainModel(spec, rngs=nnx.Rngs(0)))
    assert round(n_params(model) / 1e6, 2) == total_m


def formula_classifier(d, depth, h, p, classes):
    """Spec 1.8: per block 4d^2 + 2dh + 8d + h; patch embed 6p^2 d + d; fc_norm + head."""
    return (
        depth * (4 * d * d + 2 * d * h + 8 * d + h)
        + 6 * p * p * d
        + d
        + 2 * d
        + d * classes
        + classes
    )


@pytest.mark.parametrize(
    'variant,d,depth,h,p',
    [('vit_s', 384, 12, 1536, 16), ('vit_b', 768, 12, 3072, 16), ('vit_g', 1408, 40, 6144, 14)],
)
def test_classifier_parameter_counts(variant, d, depth, h, p):
    spec = ModelConfig.create(variant)
    model = nnx.eval_shape(lambda: Classifier(spec, 400, rngs=nnx.Rngs(0)))
    assert n_params(model) == formula_classifier(d, depth, h, p, 400)
    if variant == 'vit_b':
        assert n_params(model) == 86_534_800  # the log quoted in official issue #13


def test_giant_geometry():
    spec = ModelConfig.create('vit_g')
    assert spec.grid == (8, 16, 16) and spec.num_tokens == 2048
    assert spec.patch_dim == 1176 and spec.decoder_mlp_dim == 2234


def test_sinusoid_table_formula():
    table = embed.sinusoid_table(10, 6)
    pos, j = 7, 3
    angle = pos / 10000 ** (2 * (j // 2) / 6)
    assert table[pos, j] == pytest.approx(np.cos(angle), rel=1e-6)  # odd -> cos
    assert table[pos, 2] == pytest.approx(np.sin(pos / 10000 ** (2 / 6)), rel=1e-6)
    assert table.dtype == np.float32


def test_pretrain_forward_shapes_and_dtypes():
    spec = tiny_model()
    model = PretrainModel(spec, rngs=nnx.Rngs(0))
    mspec = masking.MaskSpec(spec.grid, mask_ratio=0.75)
    vis, dec, _ = masking.sample_masks(jax.random.key(0), mspec, 2)
    x = jax.random.normal(jax.random.key(1), (2, 4, 32, 32, 3))
    out = model(x, vis, dec)
    chex.assert_shape(out, (2, mspec.num_decode, spec.patch_dim))
    chex.assert_type(out, jnp.float32)
    # The same parameters computing in bfloat16 (ModelConfig.dtype).
    model16 = PretrainModel(spec.replace(dtype='bfloat16'), rngs=nnx.Rngs(0))
    out16 = model16(x, vis, dec)
    chex.assert_type(out16, jnp.float32)
    np.testing.assert_allclose(out16, out, atol=0.1)


def test_decoder_output_rows_follow_decode_idx_order():
    # Attention is permutation-equivariant, so permuting decode_idx permutes rows.
    spec = tiny_model()
    model = PretrainModel(spec, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(1), (1, 4, 32, 32, 3))
    vis = jnp.array([[0, 5, 9, 17]], jnp.int32)
    dec = jnp.array([[1, 2, 3, 30]], jnp.int32)
    a = model(x, vis, dec)
    b = model(x, vis, dec[:, ::-1])
    np.testing.assert_allclose(a[:, ::-1], b, atol=1e-5)


def test_init_statistics_follow_the_official_scheme():
    model = PretrainModel(ModelConfig.create('vit_b', depth=1), rngs=nnx.Rngs(0))
    qkv = np.asarray(model.encoder.blocks[0].attn.qkv.kernel[...])
    bound = np.sqrt(6 / (768 + 3 * 768))  # xavier_uniform over the full (3d x d) matrix
    assert qkv.max() <= bound and qkv.max() > 0.95 * bound
    mt = np.asarray(model.mask_token[...])
    assert np.abs(mt).max() <= 0.02  # trunc_normal cut at +-1 sigma
    e2d = np.asarray(model.encoder_to_decoder.kernel[...])
    assert np.abs(e2d).max() <= 1 / np.sqrt(768) and np.abs(e2d).max() > 0.9 / np.sqrt(768)
    pe = np.asarray(model.encoder.patch_embed.kernel[...])
    assert np.abs(pe).max() <= 1 / np.sqrt(3 * 2 * 16 * 16)
    assert not np.any(np.asarray(model.encoder.blocks[0].attn.q_bias[...]))


def test_classifier_head_init_scale_and_shapes():
    spec = tiny_model()
    model = Classifier(spec.replace(init_scale=0.001), 10, rngs=nnx.Rngs(0))
    head = np.asarray(model.head.kernel[...])
    assert 0 < head.std() < 0.02 * 0.001 * 1.5
    logits = model(jnp.ones((3, 4, 32, 32, 3)))
    chex.assert_shape(logits, (3, 10))


def test_remat_does_not_change_the_output():
    spec = tiny_model()
    mspec = masking.MaskSpec(spec.grid, mask_ratio=0.75)
    vis, dec, _ = masking.sample_masks(jax.random.key(0), mspec, 2)
    x = jax.random.normal(jax.random.key(1), (2, 4, 32, 32, 3))

    def loss(model):
        return jnp.mean(model(x, vis, dec) ** 2)

    plain = PretrainModel(spec, rngs=nnx.Rngs(0))
    remat = PretrainModel(spec.replace(remat_policy='full'), rngs=nnx.Rngs(0))
    g1 = nnx.grad(loss)(plain)
    g2 = nnx.grad(loss)(remat)
    chex.assert_trees_all_close(nnx.to_pure_dict(g1), nnx.to_pure_dict(g2), atol=1e-6)


def test_bad_shapes_raise():
    spec = tiny_model()
    model = PretrainModel(spec, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match='tubelet'):
        model.encoder(jnp.ones((1, 3, 32, 32, 3)))
    with pytest.raises(ConfigError, match='unknown model variant'):
        ModelConfig.create('vit_x')
    with pytest.raises(ConfigError, match='multiple of the patch size'):
        spec.replace(input_size=36)
    with pytest.raises(ConfigError, match="remat_policy 'some'"):
        spec.replace(remat_policy='some')
    with pytest.raises(ConfigError, match='only sizes can be overridden'):
        ModelConfig.from_config(
            ml_collections.ConfigDict({'model': {'variant': 'vit_s', 'overrides': {'widht': 3}}})
        )


@pytest.mark.parametrize('remat_policy', ['none', 'full'])
def test_scan_layers_matches_the_python_loop(remat_policy):
    """The layer scan runs the same blocks with the same drop-path keys: the loss and
    every gradient leaf equal the unrolled loop's to float32 rounding."""
    spec = tiny_model()
    mspec = masking.MaskSpec(spec.grid, mask_ratio=0.75)
    vis, dec, _ = masking.sample_masks(jax.random.key(0), mspec, 2)
    x = jax.random.normal(jax.random.key(1), (2, 4, 32, 32, 3))

    def loss(model):
        return jnp.mean(model(x, vis, dec, rng=jax.random.key(5)) ** 2)

    def build(scan_layers):
        cfg = spec.replace(drop_path_rate=0.3, remat_policy=remat_policy, scan_layers=scan_layers)
        return PretrainModel(cfg, rngs=nnx.Rngs(0))

    l1, g1 = nnx.value_and_grad(loss)(build(False))
    l2, g2 = nnx.value_and_grad(loss)(build(True))
    np.testing.assert_allclose(l2, l1, rtol=1e-6)
    chex.assert_trees_all_close(nnx.to_pure_dict(g2), nnx.to_pure_dict(g1), atol=1e-6, rtol=1e-5)
    # Drop path was active: without the key the loss differs.
    assert abs(float(jnp.mean(build(True)(x, vis, dec) ** 2)) - float(l2)) > 1e-6
