"""Video classifier: encoder, mean pooling, fc_norm, head.

Official: models/modeling_finetune.py::VisionTransformer with use_mean_pooling
(spec 1.6); init trunc_normal(.02) for Linear layers, head scaled by init_scale.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from vmae2.models import layers
from vmae2.models import pretrain
from vmae2.models import vit


class Classifier(nnx.Module):
    """Encoder without its norm, then fc_norm and head.

    The official fine-tuned keys patch_embed.*, blocks.* live under `encoder.`
    here (one Encoder class for both stages); fc_norm and head keep their names.
    There is no `norm`: it is Identity under mean pooling.
    """

    def __init__(
        self,
        spec: pretrain.PretrainSpec,
        num_classes: int,
        *,
        drop_path_rate: float = 0.0,
        head_drop_rate: float = 0.0,
        init_scale: float = 0.001,
        attention_impl: str = 'einsum',
        remat_policy: str = 'none',
        scan_layers: bool = True,
        param_dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        a = spec.arch
        self.spec = spec
        self.head_drop_rate = float(head_drop_rate)
        encoder = vit.Encoder(
            width=a.width,
            depth=a.depth,
            num_heads=a.num_heads,
            mlp_dim=a.mlp_dim,
            patch_size=a.patch_size,
            tubelet_size=spec.tubelet_size,
            use_norm=False,
            drop_path_rate=drop_path_rate,
            kernel_init=layers.trunc_normal_002,
            attention_impl=attention_impl,
            remat_policy=remat_policy,
            scan_layers=scan_layers,
            param_dtype=param_dtype,
            rngs=rngs,
        )
        self.encoder = encoder
        self.fc_norm = layers.LayerNorm(a.width, param_dtype=param_dtype)

        def head_init(key, shape, dtype=jnp.float32):
            return init_scale * layers.trunc_normal_002(key, shape, dtype)

        # Official: head bias is 0 after init, then *= init_scale (still 0).
        self.head = layers.Dense(
            a.width,
            num_classes,
            kernel_init=head_init,
            axes=('embed', None),
            param_dtype=param_dtype,
            rngs=rngs,
        )

    def features(
        self, x: jax.Array, *, rng: jax.Array | None = None, dtype=jnp.float32
    ) -> jax.Array:
        """fc_norm(mean over tokens): float32 [batch, width] (official forward_features)."""
        tokens = self.encoder(x, rng=rng, dtype=dtype)
        return self.fc_norm(tokens.astype(jnp.float32).mean(1), jnp.float32)

    def __call__(
        self, x: jax.Array, *, rng: jax.Array | None = None, dtype=jnp.float32
    ) -> jax.Array:
        """float [batch, frames, height, width, 3] -> float32 logits [batch, classes]."""
        feat = self.features(x, rng=rng, dtype=dtype)
        if rng is not None and self.head_drop_rate > 0:
            keep = 1.0 - self.head_drop_rate
            mask = jax.random.bernoulli(jax.random.fold_in(rng, 7), keep, feat.shape)
            feat = jnp.where(mask, feat / keep, 0)
        return self.head(feat, jnp.float32)
