"""VideoMAE V2 pre-training model: encoder on visible tokens, shallow decoder.

Official: models/modeling_pretrain.py::PretrainVisionTransformer (spec 1.7, 2.3).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
from flax import nnx

from vmae2.models import embed
from vmae2.models import layers
from vmae2.models import variants
from vmae2.models import vit


@dataclasses.dataclass(frozen=True)
class PretrainSpec:
    """Everything that fixes the pre-training model's shapes.

    `variant` names a row of variants.VARIANTS; any of the width fields may be
    overridden (small demo and test models) with `overrides`.
    """

    variant: str = 'vit_b'
    num_frames: int = 16
    input_size: int = 224
    tubelet_size: int = 2
    decoder_depth: int = 4
    overrides: tuple[tuple[str, int], ...] = ()

    @property
    def arch(self) -> variants.Variant:
        return dataclasses.replace(variants.get_variant(self.variant), **dict(self.overrides))

    @property
    def grid(self) -> tuple[int, int, int]:
        """Token grid (T', H', W')."""
        p = self.arch.patch_size
        return (self.num_frames // self.tubelet_size, self.input_size // p, self.input_size // p)

    @property
    def num_tokens(self) -> int:
        return math.prod(self.grid)

    @property
    def patch_dim(self) -> int:
        """Decoder head output 3 * tubelet * p * p (1536; g: 1176)."""
        return 3 * self.tubelet_size * self.arch.patch_size**2


def _truncated_normal_1sigma(key, shape, dtype=jnp.float32):
    """mask_token init: trunc_normal_(std=.02, a=-.02, b=.02), i.e. cut at +-1 sigma."""
    return 0.02 * jax.random.truncated_normal(key, -1.0, 1.0, shape, dtype)


class Decoder(nnx.Module):
    """Decoder blocks + norm + head Linear(d_dec, 3 * tubelet * p * p)."""

    def __init__(
        self,
        *,
        width: int,
        depth: int,
        num_heads: int,
        mlp_dim: int,
        patch_dim: int,
        drop_path_rate: float,
        attention_impl: str,
        remat_policy: str,
        param_dtype,
        rngs: nnx.Rngs,
        scan_layers: bool = True,
    ):
        # The official decoder uses the encoder's drop_path_rate (0 in pre-training).
        vit.check_remat_policy(remat_policy)
        self.remat_policy = remat_policy
        self.scan_layers = bool(scan_layers)
        self.blocks = vit.make_blocks(
            depth,
            width,
            num_heads,
            mlp_dim,
            drop_path_rate=drop_path_rate,
            attention_impl=attention_impl,
            param_dtype=param_dtype,
            rngs=rngs,
        )
        self.norm = layers.LayerNorm(width, param_dtype=param_dtype)
        self.head = layers.Dense(
            width, patch_dim, axes=('embed', None), param_dtype=param_dtype, rngs=rngs
        )


class PretrainModel(nnx.Module):
    """Dual-masking VideoMAE V2 (attribute names follow the official state_dict)."""

    def __init__(
        self,
        spec: PretrainSpec,
        *,
        drop_path_rate: float = 0.0,
        attention_impl: str = 'einsum',
        remat_policy: str = 'none',
        scan_layers: bool = True,
        param_dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        a = spec.arch
        self.spec = spec
        self.encoder = vit.Encoder(
            width=a.width,
            depth=a.depth,
            num_heads=a.num_heads,
            mlp_dim=a.mlp_dim,
            patch_size=a.patch_size,
            tubelet_size=spec.tubelet_size,
            drop_path_rate=drop_path_rate,
            attention_impl=attention_impl,
            remat_policy=remat_policy,
            scan_layers=scan_layers,
            param_dtype=param_dtype,
            rngs=rngs,
        )
        # Never re-initialised officially: PyTorch's default Linear init U(+-1/sqrt(d)).
        self.encoder_to_decoder = layers.Dense(
            a.width,
            a.decoder_width,
            use_bias=False,
            kernel_init=embed._torch_default_uniform(a.width),
            axes=('embed', None),
            param_dtype=param_dtype,
            rngs=rngs,
        )
        self.mask_token = nnx.Param(
            _truncated_normal_1sigma(rngs.params(), (1, 1, a.decoder_width), param_dtype),
            logical_axes=(None, None, None),
        )
        self.decoder = Decoder(
            width=a.decoder_width,
            depth=spec.decoder_depth,
            num_heads=a.decoder_num_heads,
            mlp_dim=a.decoder_mlp_dim,
            patch_dim=spec.patch_dim,
            drop_path_rate=drop_path_rate,
            attention_impl=attention_impl,
            remat_policy=remat_policy,
            scan_layers=scan_layers,
            param_dtype=param_dtype,
            rngs=rngs,
        )

    def __call__(
        self,
        x: jax.Array,
        visible_idx: jax.Array,
        decode_idx: jax.Array,
        *,
        rng: jax.Array | None = None,
        dtype=jnp.float32,
    ) -> jax.Array:
        """Reconstructs the tokens at `decode_idx`.

        Args:
          x: float [batch, frames, height, width, 3], ImageNet-normalised.
          visible_idx: int32 [batch, n_visible], ascending encoder-visible tokens.
          decode_idx: int32 [batch, n_decode], ascending positions that get a mask
            token (the official `~decode_mask`). They may include visible tokens.
          rng: drop-path key or None.
          dtype: compute dtype.

        Returns:
          float32 [batch, n_decode, 3 * tubelet * p * p], rows in `decode_idx` order.
        """
        d_dec = self.mask_token.shape[-1]
        x_vis = self.encoder_to_decoder(self.encoder(x, visible_idx, rng=rng, dtype=dtype), dtype)
        pos = jnp.asarray(embed.sinusoid_table(self.spec.num_tokens, d_dec))
        b, n_dec = decode_idx.shape
        pos_vis = pos[visible_idx]
        pos_dec = pos[decode_idx]
        mask_tokens = self.mask_token[...].astype(jnp.float32) + pos_dec
        full = jnp.concatenate([x_vis.astype(jnp.float32) + pos_vis, mask_tokens], axis=1).astype(
            dtype
        )
        dec_rng = None if rng is None else jax.random.fold_in(rng, 1)
        y = vit.apply_blocks(
            self.decoder.blocks,
            full,
            dec_rng,
            remat_policy=self.decoder.remat_policy,
            scan_layers=self.decoder.scan_layers,
            dtype=dtype,
        )
        y = y[:, -n_dec:]
        y = self.decoder.head(self.decoder.norm(y, dtype), dtype)
        return y.astype(jnp.float32)
