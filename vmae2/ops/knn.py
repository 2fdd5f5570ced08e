"""Weighted k-nearest-neighbour classification of frozen features.

The protocol of InstDisc (Wu et al. 2018, section 3.4) as DINO's eval_knn.py runs
it: features are L2-normalised, a query's k most cosine-similar training features
vote for their labels with weight exp(similarity / temperature), and the class
with the largest summed weight wins.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def l2_normalize(x: jax.Array, eps: float = 1e-12) -> jax.Array:
    """Rows divided by their L2 norm: float32 [n, dim]."""
    x = x.astype(jnp.float32)
    return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), eps)


def knn_votes(
    query: jax.Array,
    bank: jax.Array,
    bank_labels: jax.Array,
    num_classes: int,
    k: int = 20,
    temperature: float = 0.07,
) -> jax.Array:
    """Summed vote weights per class: float32 [n_query, num_classes].

    Args:
      query: float [n_query, dim] features to classify.
      bank: float [n_bank, dim] training features.
      bank_labels: int [n_bank] their labels.
      k: neighbours that vote (capped at n_bank).
      temperature: T of the vote weight exp(cosine / T) (DINO: 0.07).
    """
    sim = l2_normalize(query) @ l2_normalize(bank).T
    top, idx = jax.lax.top_k(sim, min(k, bank.shape[0]))
    onehot = jax.nn.one_hot(bank_labels[idx], num_classes, dtype=jnp.float32)
    return jnp.einsum('qk,qkc->qc', jnp.exp(top / temperature), onehot)


def knn_top1(query, query_labels, bank, bank_labels, num_classes, k=20, temperature=0.07):
    """Percent of queries whose weighted kNN vote is their label (float)."""
    votes = knn_votes(query, bank, bank_labels, num_classes, k, temperature)
    return 100.0 * jnp.mean((jnp.argmax(votes, -1) == query_labels).astype(jnp.float32))
