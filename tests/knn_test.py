"""The weighted kNN vote (InstDisc / DINO protocol) against a hand-computed example."""

import jax.numpy as jnp
import numpy as np
import pytest

from vmae2.ops import knn

# Training features: b0 = (1, 0) class 0; b1 = (0, 1) class 1; b2 = (1, 1) class 1.
BANK = jnp.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
LABELS = jnp.array([0, 1, 1])
# Query (1, 0.2): cosine similarities, by hand, 0.98058, 0.19612 and 0.83205.
QUERY = jnp.array([[1.0, 0.2]])


def test_votes_match_the_hand_computed_weights():
    # k = 2, T = 0.5: neighbours b0 and b2; weights e^(0.98058/0.5) = 7.1074 for
    # class 0 and e^(0.83205/0.5) = 5.2809 for class 1.
    votes = knn.knn_votes(QUERY, BANK, LABELS, 2, k=2, temperature=0.5)
    np.testing.assert_allclose(votes, [[7.1074, 5.2809]], rtol=1e-4)


@pytest.mark.parametrize(
    'k,temperature,want',
    [
        (1, 0.5, 0),  # nearest neighbour b0
        (3, 0.5, 0),  # class 1: 5.2809 + e^(0.19612/0.5) = 6.7612 < 7.1074
        (3, 2.0, 1),  # a soft vote: class 1 e^0.41603 + e^0.09806 = 2.6189 > e^0.49029 = 1.6328
    ],
)
def test_k_and_temperature_decide_the_vote(k, temperature, want):
    top1 = knn.knn_top1(QUERY, jnp.array([want]), BANK, LABELS, 2, k, temperature)
    assert float(top1) == 100.0
    other = knn.knn_top1(QUERY, jnp.array([1 - want]), BANK, LABELS, 2, k, temperature)
    assert float(other) == 0.0
