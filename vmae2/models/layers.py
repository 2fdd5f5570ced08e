"""Transformer building blocks of the VideoMAE V2 ViT (spec 1.2, 1.3).

Dense and LayerNorm take the compute `dtype` per call; Attention, Mlp and Block
read it, with the attention implementation and the parameter dtype, from the
ModelConfig they are built with. LayerNorm statistics and the softmax always run
in float32. Parameters carry
logical axis names under the metadata key `logical_axes` (read by
vmae2/sharding.py); the models know nothing about meshes.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
from flax import nnx

from vmae2.models.config import ModelConfig

Initializer = Callable[..., jax.Array]

# Official pre-training init: xavier_uniform on every Linear (qkv as one
# (3d x d) matrix), bias 0 (models/modeling_pretrain.py::_init_weights).
xavier_uniform = jax.nn.initializers.xavier_uniform()


def trunc_normal_002(key, shape, dtype=jnp.float32):
    """timm trunc_normal_(std=.02) with absolute bounds +-2: effectively N(0, .02^2).

    Official fine-tuning init (models/modeling_finetune.py::_init_weights).
    """
    return 0.02 * jax.random.truncated_normal(key, -100.0, 100.0, shape, dtype)


class Dense(nnx.Module):
    """y = x @ kernel + bias with kernel [in, out] (torch weight transposed)."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        use_bias: bool = True,
        kernel_init: Initializer = xavier_uniform,
        bias_init: Initializer = jax.nn.initializers.zeros,
        axes: tuple[str | None, str | None] = (None, None),
        param_dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        self.kernel = nnx.Param(
            kernel_init(rngs.params(), (in_features, out_features), param_dtype), logical_axes=axes
        )
        self.bias = (
            nnx.Param(
                bias_init(rngs.params(), (out_features,), param_dtype), logical_axes=(axes[1],)
            )
            if use_bias
            else None
        )

    def __call__(self, x: jax.Array, dtype=jnp.float32) -> jax.Array:
        y = jnp.dot(
            x.astype(dtype), self.kernel[...].astype(dtype), preferred_element_type=jnp.float32
        )
        if self.bias is not None:
            y = y + self.bias[...]
        return y.astype(dtype)


class LayerNorm(nnx.Module):
    """LayerNorm with float32 statistics; eps 1e-6 everywhere (spec 1.1, 11.3)."""

    def __init__(self, dim: int, *, epsilon: float = 1e-6, param_dtype=jnp.float32):
        self.epsilon = epsilon
        self.scale = nnx.Param(jnp.ones((dim,), param_dtype), logical_axes=('norm',))
        self.bias = nnx.Param(jnp.zeros((dim,), param_dtype), logical_axes=('norm',))

    def __call__(self, x: jax.Array, dtype=jnp.float32) -> jax.Array:
        x32 = x.astype(jnp.float32)
        mean = x32.mean(-1, keepdims=True)
        var = jnp.square(x32 - mean).mean(-1, keepdims=True)
        y = (x32 - mean) * jax.lax.rsqrt(var + self.epsilon)
        return (y * self.scale[...] + self.bias[...]).astype(dtype)


def drop_path(x: jax.Array, rate: float, rng: jax.Array | None) -> jax.Array:
    """timm per-sample stochastic depth: x / keep * bernoulli(keep) per example.

    Identity when `rate` is 0 or `rng` is None (evaluation).
    """
    if rng is None or (isinstance(rate, float) and rate == 0.0):
        return x
    keep = 1.0 - rate
    shape = (x.shape[0],) + (1,) * (x.ndim - 1)
    mask = jax.random.bernoulli(rng, keep, shape)
    return jnp.where(mask, x / keep, 0).astype(x.dtype)


def _attention_forward(q, k, v):
    """Softmax attention that also returns the row log-sum-exp [b, h, q, 1] (float32)."""
    logits = jnp.einsum('bqhd,bkhd->bhqk', q, k, preferred_element_type=jnp.float32)
    row_max = jax.lax.stop_gradient(logits.max(-1, keepdims=True))
    unnorm = jnp.exp(logits - row_max)
    row_sum = unnorm.sum(-1, keepdims=True)
    probs = (unnorm / row_sum).astype(q.dtype)
    out = jnp.einsum('bhqk,bkhd->bqhd', probs, v)
    return out, row_max + jnp.log(row_sum)


@jax.custom_vjp
def recompute_attention(q: jax.Array, k: jax.Array, v: jax.Array) -> jax.Array:
    """softmax(q k^T) v over [batch, tokens, heads, head_dim] (q already scaled).

    Same values as the einsum path, but the backward keeps only q, k, v, the
    output and the row log-sum-exp and recomputes the [b, h, n, n] probabilities,
    as FlashAttention does (Dao et al. 2022, algorithm 4, without tiling). Logits,
    softmax and its gradient are float32 whatever the dtype of q, k, v. Saves
    12 x 2 x [b, h, n, n] float32 of residuals per ViT-B step; see docs/benchmarks.md.
    """
    return _attention_forward(q, k, v)[0]


def _recompute_attention_fwd(q, k, v):
    out, lse = _attention_forward(q, k, v)
    return out, (q, k, v, out, lse)


def _recompute_attention_bwd(residuals, d_out):
    q, k, v, out, lse = residuals
    dtype = q.dtype
    logits = jnp.einsum('bqhd,bkhd->bhqk', q, k, preferred_element_type=jnp.float32)
    probs = jnp.exp(logits - lse)
    d_v = jnp.einsum('bhqk,bqhd->bkhd', probs.astype(dtype), d_out.astype(dtype))
    d_probs = jnp.einsum('bqhd,bkhd->bhqk', d_out, v, preferred_element_type=jnp.float32)
    # softmax backward: dS = P * (dP - rowsum(dP * P)), rowsum(dP * P) = rowsum(dO * O).
    row_dot = jnp.einsum('bqhd,bqhd->bhq', d_out.astype(jnp.float32), out.astype(jnp.float32))[
        ..., None
    ]
    d_logits = (probs * (d_probs - row_dot)).astype(dtype)
    d_q = jnp.einsum('bhqk,bkhd->bqhd', d_logits, k)
    d_k = jnp.einsum('bhqk,bqhd->bkhd', d_logits, q)
    return d_q.astype(dtype), d_k.astype(dtype), d_v.astype(v.dtype)


recompute_attention.defvjp(_recompute_attention_fwd, _recompute_attention_bwd)


class Attention(nnx.Module):
    """Multi-head self-attention with the official BEiT-style biases (spec 1.3).

    A fused qkv projection without bias plus `q_bias` and `v_bias` (the key has no
    bias); q is scaled by head_dim**-0.5 before q.k^T. The qkv kernel is
    [width, 3*width] with columns [q | k | v], each head-major.
    """

    def __init__(
        self, cfg: ModelConfig, width: int, num_heads: int, *, kernel_init: Initializer, rngs
    ):
        self.num_heads = num_heads
        self.attention_impl = cfg.attention_impl
        self.dtype = cfg.compute_dtype
        pd = cfg.params_dtype
        self.qkv = Dense(
            width, 3 * width, use_bias=False, kernel_init=kernel_init, axes=('embed', 'qkv'),
            param_dtype=pd, rngs=rngs,
        )
        self.q_bias = nnx.Param(jnp.zeros((width,), pd), logical_axes=('heads',))
        self.v_bias = nnx.Param(jnp.zeros((width,), pd), logical_axes=('heads',))
        self.proj = Dense(
            width, width, kernel_init=kernel_init, axes=('heads', 'embed'), param_dtype=pd,
            rngs=rngs,
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        """[batch, tokens, width] -> [batch, tokens, width]."""
        b, n, d = x.shape
        h, dtype = self.num_heads, self.dtype
        hd = d // h
        bias = jnp.concatenate(
            [self.q_bias[...], jnp.zeros_like(self.v_bias[...]), self.v_bias[...]]
        )
        qkv = (self.qkv(x, dtype).astype(jnp.float32) + bias).astype(dtype)
        q, k, v = jnp.split(qkv.reshape(b, n, 3, h, hd), 3, axis=2)
        q, k, v = q[:, :, 0], k[:, :, 0], v[:, :, 0]  # [b, n, h, hd]
        with jax.named_scope('attention'):  # names the core in profiles (bench/profile_step.py)
            out = self._core(q, k, v, hd**-0.5)
        return self.proj(out.reshape(b, n, d), dtype)

    def _core(self, q, k, v, scale: float) -> jax.Array:
        """softmax(q k^T * scale) v on [batch, tokens, heads, head_dim] -> the same."""
        dtype = self.dtype
        if self.attention_impl == 'einsum':
            logits = jnp.einsum(
                'bqhd,bkhd->bhqk',
                q * jnp.asarray(scale, dtype),
                k,
                preferred_element_type=jnp.float32,
            )
            probs = jax.nn.softmax(logits, axis=-1).astype(dtype)
            out = jnp.einsum('bhqk,bkhd->bqhd', probs, v)
        elif self.attention_impl == 'recompute':
            out = recompute_attention(q * jnp.asarray(scale, dtype), k, v)
        else:
            out = jax.nn.dot_product_attention(
                q, k, v, scale=scale, implementation=self.attention_impl
            )
        return out


class Mlp(nnx.Module):
    """fc1 -> exact (erf) GELU -> fc2; no dropout between (spec 1.2)."""

    def __init__(
        self, cfg: ModelConfig, width: int, hidden: int, *, kernel_init: Initializer, rngs
    ):
        self.dtype = cfg.compute_dtype
        pd = cfg.params_dtype
        self.fc1 = Dense(
            width, hidden, kernel_init=kernel_init, axes=('embed', 'mlp'), param_dtype=pd,
            rngs=rngs,
        )
        self.fc2 = Dense(
            hidden, width, kernel_init=kernel_init, axes=('mlp', 'embed'), param_dtype=pd,
            rngs=rngs,
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        y = self.fc1(x, self.dtype)
        y = jax.nn.gelu(y.astype(jnp.float32), approximate=False).astype(self.dtype)
        return self.fc2(y, self.dtype)


class Block(nnx.Module):
    """Pre-norm block: x + DropPath(Attn(LN1 x)); x + DropPath(MLP(LN2 x)).

    No layer scale: init_values is 0 in every released model (spec 1.2).
    """

    def __init__(
        self,
        cfg: ModelConfig,
        width: int,
        num_heads: int,
        mlp_dim: int,
        *,
        drop_path_rate: float = 0.0,
        kernel_init: Initializer = xavier_uniform,
        rngs: nnx.Rngs,
    ):
        self.drop_path_rate = float(drop_path_rate)
        self.dtype = cfg.compute_dtype
        self.norm1 = LayerNorm(width, param_dtype=cfg.params_dtype)
        self.attn = Attention(cfg, width, num_heads, kernel_init=kernel_init, rngs=rngs)
        self.norm2 = LayerNorm(width, param_dtype=cfg.params_dtype)
        self.mlp = Mlp(cfg, width, mlp_dim, kernel_init=kernel_init, rngs=rngs)

    def __call__(
        self,
        x: jax.Array,
        rng: jax.Array | None = None,
        drop_path_rate: jax.Array | None = None,
    ) -> jax.Array:
        """[batch, tokens, width] -> same; `rng` enables drop path (training).

        `drop_path_rate` (a scalar array) replaces the block's own rate; the layer
        scan (vit.apply_blocks) passes each block's rate this way.
        """
        rate = self.drop_path_rate if drop_path_rate is None else drop_path_rate
        r1 = r2 = None
        if rng is not None and (drop_path_rate is not None or self.drop_path_rate > 0):
            r1, r2 = jax.random.split(rng)
        x = x + drop_path(self.attn(self.norm1(x, self.dtype)), rate, r1)
        x = x + drop_path(self.mlp(self.norm2(x, self.dtype)), rate, r2)
        return x
