"""VideoMAE V2 pre-training model: encoder on visible tokens, shallow decoder.

Official: models/modeling_pretrain.py::PretrainVisionTransformer (spec 1.7, 2.3).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from vmae2.models import embed
from vmae2.models import layers
from vmae2.models import vit
from vmae2.models.config import ModelConfig


def _truncated_normal_1sigma(key, shape, dtype=jnp.float32):
    """mask_token init: trunc_normal_(std=.02, a=-.02, b=.02), i.e. cut at +-1 sigma."""
    return 0.02 * jax.random.truncated_normal(key, -1.0, 1.0, shape, dtype)


class Decoder(nnx.Module):
    """Decoder blocks + norm + head Linear(decoder_width, 3 * tubelet * p * p).

    The official decoder uses the encoder's drop_path_rate (0 in pre-training).
    """

    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        w, pd = cfg.decoder_width, cfg.params_dtype
        self.blocks = vit.make_blocks(
            cfg, cfg.decoder_depth, w, cfg.decoder_num_heads, cfg.decoder_mlp_dim, rngs=rngs
        )
        self.norm = layers.LayerNorm(w, param_dtype=pd)
        self.head = layers.Dense(w, cfg.patch_dim, axes=('embed', None), param_dtype=pd, rngs=rngs)

    def __call__(self, x: jax.Array, num_predict: int, *, rng: jax.Array | None = None):
        """[batch, tokens, decoder_width] -> float32 [batch, num_predict, patch_dim].

        All tokens attend to each other; only the last `num_predict` (the mask
        tokens) are normalised and projected to pixels (official
        `forward(x, return_token_num)`).
        """
        dtype = self.cfg.compute_dtype
        y = vit.apply_blocks(self.blocks, x.astype(dtype), rng, self.cfg)[:, -num_predict:]
        return self.head(self.norm(y, dtype), dtype).astype(jnp.float32)


class PretrainModel(nnx.Module):
    """Dual-masking VideoMAE V2 (attribute names follow the official state_dict)."""

    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        pd = cfg.params_dtype
        self.encoder = vit.Encoder(cfg, rngs=rngs)
        # Never re-initialised officially: PyTorch's default Linear init U(+-1/sqrt(d)).
        self.encoder_to_decoder = layers.Dense(
            cfg.width, cfg.decoder_width, use_bias=False,
            kernel_init=embed.torch_default_uniform(cfg.width), axes=('embed', None),
            param_dtype=pd, rngs=rngs,
        )
        self.mask_token = nnx.Param(
            _truncated_normal_1sigma(rngs.params(), (1, 1, cfg.decoder_width), pd),
            logical_axes=(None, None, None),
        )
        self.decoder = Decoder(cfg, rngs=rngs)

    def features(self, x: jax.Array) -> jax.Array:
        """The encoder's normalised tokens, every token visible, averaged: float32
        [batch, width] (what the kNN probe compares; the classifier's analogue is
        Classifier.features)."""
        return self.encoder(x).astype(jnp.float32).mean(1)

    def __call__(
        self,
        x: jax.Array,
        visible_idx: jax.Array,
        decode_idx: jax.Array,
        *,
        rng: jax.Array | None = None,
    ) -> jax.Array:
        """Reconstructs the tokens at `decode_idx`.

        Args:
          x: float [batch, frames, height, width, 3], ImageNet-normalised.
          visible_idx: int32 [batch, n_visible], ascending encoder-visible tokens.
          decode_idx: int32 [batch, n_decode], ascending positions that get a mask
            token (the official `~decode_mask`). They may include visible tokens.
          rng: drop-path key or None.

        Returns:
          float32 [batch, n_decode, 3 * tubelet * p * p], rows in `decode_idx` order.
        """
        dtype = self.cfg.compute_dtype
        x_vis = self.encoder_to_decoder(self.encoder(x, visible_idx, rng=rng), dtype)
        pos = jnp.asarray(embed.sinusoid_table(self.cfg.num_tokens, self.cfg.decoder_width))
        mask_tokens = self.mask_token[...].astype(jnp.float32) + pos[decode_idx]
        full = jnp.concatenate([x_vis.astype(jnp.float32) + pos[visible_idx], mask_tokens], 1)
        dec_rng = None if rng is None else jax.random.fold_in(rng, 1)
        return self.decoder(full, decode_idx.shape[1], rng=dec_rng)
