"""Losses (pure functions of arrays)."""

from __future__ import annotations

import jax.numpy as jnp


def masked_mse(pred, target, weight):
    """Official pre-training loss (engine_for_pretraining.py, spec 2.3 and 3).

    Args:
      pred: float [batch, n_decode, D] decoder output.
      target: float [batch, n_decode, D] targets at the same positions.
      weight: 0/1 float [batch, n_decode]: 1 for tokens that are encoder-masked and
        decoder-kept.

    Returns:
      float32 scalar: the per-token MSE (mean over D) averaged over the weighted
      tokens of the whole batch (one global mean, not per sample).
    """
    per_token = jnp.mean(jnp.square(pred.astype(jnp.float32) - target), axis=-1)
    return jnp.sum(per_token * weight) / jnp.maximum(jnp.sum(weight), 1.0)
