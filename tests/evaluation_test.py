"""Multi-view fusion (official final_test + merge, spec 5.4) against hand-computed means."""

import jax
import jax.numpy as jnp
import numpy as np

from vmae2.core import evaluation
from vmae2.runtime import sharding


def _rows(table, video_index, label, valid):
    """A batch whose clip k carries row id k, so a predictor can look its probabilities up."""
    n = len(video_index)
    video = np.zeros((n, 1, 1, 1, 3), np.uint8)
    video[:, 0, 0, 0, 0] = np.arange(n) + table
    return {
        'video': video,
        'video_index': np.asarray(video_index, np.int32),
        'label': np.asarray(label, np.int32),
        'valid': np.asarray(valid, bool),
    }


def _lookup(probs):
    table = jnp.asarray(probs, jnp.float32)
    return jax.jit(lambda params, v: table[v[:, 0, 0, 0, 0].astype(jnp.int32)])


def test_view_fusion_averages_softmax_per_video_and_ignores_padding():
    probs = np.array(
        [
            [0.6, 0.3, 0.1],  # video 0, view 0
            [0.2, 0.7, 0.1],  # video 0, view 1  -> mean [0.4, 0.5, 0.1]: class 1
            [0.1, 0.1, 0.8],  # video 1 -> class 2
            [0.9, 0.05, 0.05],  # padding (valid False)
            [1.0, 0.0, 0.0],  # video 2 unreadable (valid False)
            [0.3, 0.3, 0.4],  # padding
            [0.3, 0.3, 0.4],  # padding
            [0.3, 0.3, 0.4],  # padding
        ]
    )
    batch = _rows(0, [0, 0, 1, -1, 2, -1, -1, -1], [0, 0, 2, 0, 1, 0, 0, 0], [1, 1, 1, 0, 0, 0, 0, 0])
    mesh = sharding.make_mesh({'data': -1})
    res = evaluation.run_views(_lookup(probs), None, [batch], mesh, num_videos=3, num_classes=3)
    np.testing.assert_array_equal(res.video_index, [0, 1])
    np.testing.assert_allclose(res.probs[0], [0.4, 0.5, 0.1], rtol=1e-6)
    np.testing.assert_array_equal(res.views, [2, 1])
    m = res.metrics()
    assert m['top1'] == 50.0 and m['top5'] == 100.0 and m['unreadable_videos'] == 1
    assert evaluation.topk_accuracy(res.probs, res.labels, (2,)) == [100.0]


def test_views_of_one_video_across_batches_are_fused():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(3), size=16)
    vi = [[0, 0, 1, 1, 2, 2, 3, -1], [3, 4, 4, -1, -1, -1, -1, -1]]
    batches = [
        _rows(8 * b, v, np.maximum(v, 0) % 3, np.asarray(v) >= 0) for b, v in enumerate(vi)
    ]
    mesh = sharding.make_mesh({'data': -1})
    res = evaluation.run_views(_lookup(probs), None, batches, mesh, num_videos=5, num_classes=3)
    flat_vi = np.concatenate(vi)
    want = np.stack([probs[flat_vi == v].mean(0) for v in range(5)])  # video 3 spans both
    np.testing.assert_array_equal(res.video_index, np.arange(5))
    np.testing.assert_array_equal(res.views, [2, 2, 2, 2, 2])
    np.testing.assert_allclose(res.probs, want, rtol=1e-5)
    np.testing.assert_array_equal(res.labels, np.arange(5) % 3)
    assert res.unreadable == 0
