"""The ViT encoder shared by pre-training and classification, and the block stack.

Official: models/modeling_pretrain.py::PretrainVisionTransformerEncoder and
models/modeling_finetune.py::VisionTransformer (spec 1.1-1.7).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from vmae2.models import embed
from vmae2.models import layers
from vmae2.models.config import ModelConfig

REMAT_POLICIES = {
    'none': None,
    'full': jax.checkpoint_policies.nothing_saveable,
    'dots_saveable': jax.checkpoint_policies.dots_saveable,
    'dots_with_no_batch_dims_saveable': jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
}


def make_blocks(
    cfg: ModelConfig,
    depth: int,
    width: int,
    num_heads: int,
    mlp_dim: int,
    *,
    kernel_init=layers.xavier_uniform,
    rngs: nnx.Rngs,
) -> nnx.List:
    """`depth` Blocks, drop path rising linearly: linspace(0, cfg.drop_path_rate, depth)[i]."""
    rates = np.linspace(0.0, cfg.drop_path_rate, depth) if depth else []
    return nnx.List(
        [
            layers.Block(
                cfg, width, num_heads, mlp_dim, drop_path_rate=float(r), kernel_init=kernel_init,
                rngs=rngs,
            )
            for r in rates
        ]
    )


def apply_blocks(
    blocks: nnx.List, x: jax.Array, rng: jax.Array | None, cfg: ModelConfig
) -> jax.Array:
    """Runs the blocks in order, each under jax.checkpoint unless cfg.remat_policy is 'none'.

    cfg.scan_layers: run the blocks as one lax.scan over their stacked parameters
    (the parameter tree itself stays one entry per block). Same arithmetic and
    the same per-block drop-path keys as the Python loop; the loop boundary keeps
    XLA from fusing the residual stream's gradient of every later block into each
    block's backward, which costs O(depth^2) work on CPU (docs/benchmarks.md
    section 9), and it compiles one block instead of `depth`.
    """
    if not len(blocks):
        return x
    keys = None if rng is None else jax.random.split(rng, len(blocks))
    policy = REMAT_POLICIES[cfg.remat_policy]
    if cfg.scan_layers and len(blocks) > 1:
        return _scan_blocks(blocks, x, keys, policy)

    def apply(block, x, r):
        return block(x, r)

    if policy is not None:
        apply = nnx.remat(apply, policy=policy)
    for i, block in enumerate(blocks):
        x = apply(block, x, None if keys is None else keys[i])
    return x


def _scan_blocks(blocks, x, keys, policy):
    graphdef, _ = nnx.split(blocks[0])
    states = [nnx.split(b)[1] for b in blocks]
    stacked = jax.tree.map(lambda *leaves: jnp.stack(leaves), *states)
    rates = jnp.asarray([b.drop_path_rate for b in blocks], jnp.float32)

    def body(x, layer):
        state, key, rate = layer
        block = nnx.merge(graphdef, state)
        return block(x, key, drop_path_rate=None if key is None else rate), None

    if policy is not None:
        body = jax.checkpoint(body, policy=policy)
    x, _ = jax.lax.scan(body, x, (stacked, keys, rates))
    return x


def gather_tokens(x: jax.Array, idx: jax.Array) -> jax.Array:
    """x [batch, tokens, dim], idx int [batch, k] -> [batch, k, dim]."""
    return jnp.take_along_axis(x, idx[:, :, None], axis=1)


class Encoder(nnx.Module):
    """patch_embed + fixed sinusoid PE, optional visible-token gather, blocks, norm.

    Attribute names follow the official keys (`patch_embed`, `blocks`, `norm`) so
    conversion is a rename. `norm` is None for the classifier (the official
    VisionTransformer uses fc_norm on the pooled features instead).
    """

    def __init__(
        self,
        cfg: ModelConfig,
        *,
        use_norm: bool = True,
        kernel_init=layers.xavier_uniform,
        rngs: nnx.Rngs,
    ):
        self.cfg = cfg
        pd = cfg.params_dtype
        self.patch_embed = embed.PatchEmbed(
            cfg.width, cfg.patch_size, cfg.tubelet_size, param_dtype=pd, rngs=rngs
        )
        self.blocks = make_blocks(
            cfg, cfg.depth, cfg.width, cfg.num_heads, cfg.mlp_dim, kernel_init=kernel_init,
            rngs=rngs,
        )
        self.norm = layers.LayerNorm(cfg.width, param_dtype=pd) if use_norm else None

    def __call__(
        self, x: jax.Array, visible_idx: jax.Array | None = None, *, rng: jax.Array | None = None
    ) -> jax.Array:
        """Encodes a clip.

        Args:
          x: float [batch, frames, height, width, 3], ImageNet-normalised.
          visible_idx: int32 [batch, n_visible] ascending token indices to keep (the
            official `x[~mask]`), or None to keep every token.
          rng: drop-path key (training) or None.

        Returns:
          [batch, n_visible or tokens, width] in the compute dtype.
        """
        dtype = self.cfg.compute_dtype
        tokens = self.patch_embed(x, dtype)
        pos = embed.sinusoid_table(tokens.shape[1], self.cfg.width)
        tokens = (tokens.astype(jnp.float32) + pos[None]).astype(dtype)
        if visible_idx is not None:
            tokens = gather_tokens(tokens, visible_idx)
        tokens = apply_blocks(self.blocks, tokens, rng, self.cfg)
        if self.norm is not None:
            tokens = self.norm(tokens, dtype)
        return tokens
