"""Video classifier: encoder, mean pooling, fc_norm, head.

Official: models/modeling_finetune.py::VisionTransformer with use_mean_pooling
(spec 1.6); init trunc_normal(.02) for Linear layers, head scaled by init_scale.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from vmae2.models import layers
from vmae2.models import vit
from vmae2.models.config import ModelConfig


class Classifier(nnx.Module):
    """Encoder without its norm, then fc_norm and head.

    The official fine-tuned keys patch_embed.*, blocks.* live under `encoder.`
    here (one Encoder class for both stages); fc_norm and head keep their names.
    There is no `norm`: it is Identity under mean pooling. Dropout before the head
    (cfg.head_drop_rate) and drop path act only when a `rng` is given (training).
    """

    def __init__(self, cfg: ModelConfig, num_classes: int, *, rngs: nnx.Rngs):
        self.cfg = cfg
        pd = cfg.params_dtype
        self.encoder = vit.Encoder(
            cfg, use_norm=False, kernel_init=layers.trunc_normal_002, rngs=rngs
        )
        self.fc_norm = layers.LayerNorm(cfg.width, param_dtype=pd)

        def head_init(key, shape, dtype=jnp.float32):
            return cfg.init_scale * layers.trunc_normal_002(key, shape, dtype)

        # Official: head bias is 0 after init, then *= init_scale (still 0).
        self.head = layers.Dense(
            cfg.width, num_classes, kernel_init=head_init, axes=('embed', None), param_dtype=pd,
            rngs=rngs,
        )

    def features(self, x: jax.Array, *, rng: jax.Array | None = None) -> jax.Array:
        """fc_norm(mean over tokens): float32 [batch, width] (official forward_features)."""
        tokens = self.encoder(x, rng=rng)
        return self.fc_norm(tokens.astype(jnp.float32).mean(1), jnp.float32)

    def logits(self, features: jax.Array, *, rng: jax.Array | None = None) -> jax.Array:
        """Head dropout (training, `rng` given) then the head: float32 [batch, classes]."""
        rate = self.cfg.head_drop_rate
        if rng is not None and rate > 0:
            keep = 1.0 - rate
            mask = jax.random.bernoulli(jax.random.fold_in(rng, 7), keep, features.shape)
            features = jnp.where(mask, features / keep, 0)
        return self.head(features, jnp.float32)

    def __call__(self, x: jax.Array, *, rng: jax.Array | None = None) -> jax.Array:
        """float [batch, frames, height, width, 3] -> float32 logits [batch, classes]."""
        return self.logits(self.features(x, rng=rng), rng=rng)
