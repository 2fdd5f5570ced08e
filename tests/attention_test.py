"""The recompute attention (custom VJP) against float64 NumPy formulas."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from vmae2.errors import ConfigError
from vmae2.models import layers
from vmae2.models.config import ModelConfig


def np_attention_and_grads(q, k, v, d_out):
    """float64 softmax(q k^T) v over [b, n, h, hd] and its vector-Jacobian product.

    The backward is the textbook softmax/matmul chain rule, written out on its own:
    dV = P^T dO, dP = dO V^T, dS = P * (dP - rowsum(P * dP)), dQ = dS K, dK = dS^T Q.
    """
    q, k, v, d_out = (np.asarray(a, np.float64).transpose(0, 2, 1, 3) for a in (q, k, v, d_out))
    s = q @ k.transpose(0, 1, 3, 2)
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    out = p @ v
    d_v = p.transpose(0, 1, 3, 2) @ d_out
    d_p = d_out @ v.transpose(0, 1, 3, 2)
    d_s = p * (d_p - (p * d_p).sum(-1, keepdims=True))
    d_q = d_s @ k
    d_k = d_s.transpose(0, 1, 3, 2) @ q
    back = lambda a: a.transpose(0, 2, 1, 3)  # noqa: E731
    return back(out), back(d_q), back(d_k), back(d_v)


def _inputs(seed, shape=(2, 37, 3, 8), dtype=jnp.float32):
    keys = jax.random.split(jax.random.key(seed), 4)
    # Logits of a few units, like a trained model's, so the softmax is not flat.
    return [2.0 * jax.random.normal(key, shape, dtype) for key in keys]


def test_recompute_attention_matches_float64_formula():
    q, k, v, d_out = _inputs(0)
    out, vjp = jax.vjp(layers.recompute_attention, q, k, v)
    grads = vjp(d_out)
    ref = np_attention_and_grads(q, k, v, d_out)
    for got, want, name in zip((out, *grads), ref, ('out', 'd_q', 'd_k', 'd_v')):
        chex.assert_shape(got, want.shape)
        err = np.abs(np.asarray(got, np.float64) - want).max() / np.abs(want).max()
        assert err < 1e-5, (name, err)


@pytest.mark.parametrize('impl', ['recompute', 'xla'])
def test_attention_impls_agree_with_einsum_in_the_module(impl):
    """Same parameters, same input: every implementation gives the einsum path's output
    and parameter gradients within float32 rounding."""
    x = jax.random.normal(jax.random.key(3), (2, 19, 24))

    def loss_and_grads(attention_impl):
        cfg = ModelConfig.create('vit_s', attention_impl=attention_impl)
        module = layers.Attention(cfg, 24, 4, kernel_init=layers.xavier_uniform, rngs=nnx.Rngs(0))
        module.q_bias[...] = jnp.linspace(-1, 1, 24)
        module.v_bias[...] = jnp.linspace(1, -1, 24)
        return nnx.value_and_grad(lambda m: jnp.sum(jnp.sin(m(x))))(module)

    loss_ref, g_ref = loss_and_grads('einsum')
    loss, g = loss_and_grads(impl)
    np.testing.assert_allclose(loss, loss_ref, rtol=1e-5)
    chex.assert_trees_all_close(nnx.to_pure_dict(g), nnx.to_pure_dict(g_ref), atol=2e-5, rtol=1e-4)


def test_recompute_attention_bfloat16_keeps_dtype_and_tracks_float32():
    q, k, v, d_out = _inputs(1, shape=(1, 64, 2, 16))
    cast = lambda *a: [x.astype(jnp.bfloat16) for x in a]  # noqa: E731
    out16, vjp16 = jax.vjp(layers.recompute_attention, *cast(q, k, v))
    grads16 = vjp16(d_out.astype(jnp.bfloat16))
    ref = np_attention_and_grads(*cast(q, k, v, d_out))
    for got, want in zip((out16, *grads16), ref):
        assert got.dtype == jnp.bfloat16
        err = np.abs(np.asarray(got, np.float64) - want).max() / np.abs(want).max()
        assert err < 3e-2, err  # bf16 has 8 mantissa bits: ~0.4 % per rounding


def test_unknown_attention_impl_names_the_choices():
    with pytest.raises(ConfigError, match='recompute'):
        ModelConfig.create('vit_s', attention_impl='flash')
