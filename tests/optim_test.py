"""Schedule, weight-decay mask and layer decay against the official formulas."""

import jax.numpy as jnp
import optax
import numpy as np
import pytest

import jax
from flax import nnx

from configs.finetune import common as ft_common
from tiny_configs import tiny_model
from vmae2.core import optim
from vmae2.core.state import param_tree
from vmae2.models.classifier import Classifier
from vmae2.weights import keymaps

SPEC = tiny_model(patch_size=8)


def flat(tree):
    return {keymaps.dotted(k): v for k, v in keymaps.flatten(tree).items()}


def official_cosine_scheduler(base, final, total, warmup):
    """utils.cosine_scheduler (epochs*niter collapsed to steps), spec 4.1."""
    warm = np.linspace(0, base, warmup)
    iters = np.arange(total - warmup)
    cos = final + 0.5 * (base - final) * (1 + np.cos(np.pi * iters / len(iters)))
    return np.concatenate((warm, cos))


@pytest.mark.parametrize('total,warmup', [(100, 10), (37, 0), (20, 1), (50, 49)])
def test_schedule_matches_official(total, warmup):
    sched = optim.cosine_schedule(4e-3, 1.6e-5, total, warmup)
    ours = np.array([float(sched(i)) for i in range(total)])
    np.testing.assert_allclose(
        ours, official_cosine_scheduler(4e-3, 1.6e-5, total, warmup), rtol=2e-5, atol=1e-9
    )
    assert float(sched(total + 5)) == pytest.approx(ours[-1])


def test_scaled_lr_ignores_num_sample():
    assert optim.scaled_lr(1e-3, 1024) == pytest.approx(4e-3)  # ViT-B script (spec 4.2)
    assert optim.scaled_lr(6e-4, 2048) == pytest.approx(4.8e-3)  # ViT-g


def test_bad_schedule_rejected():
    with pytest.raises(ValueError, match='warmup_steps'):
        optim.cosine_schedule(1.0, 0.0, 10, 11)


def test_decay_mask_follows_official_no_decay_set():
    params = {
        'encoder': {
            'blocks': {
                0: {
                    'attn': {'qkv': {'kernel': jnp.zeros((4, 12))}, 'q_bias': jnp.zeros(4)},
                    'norm1': {'scale': jnp.zeros(4), 'bias': jnp.zeros(4)},
                }
            },
            'patch_embed': {'kernel': jnp.zeros((2, 2, 2, 3, 4)), 'bias': jnp.zeros(4)},
        },
        'mask_token': jnp.zeros((1, 1, 4)),
        'encoder_to_decoder': {'kernel': jnp.zeros((4, 2))},
    }
    m = optim.decay_mask(params)
    assert m['encoder']['blocks'][0]['attn']['qkv']['kernel']
    assert not m['encoder']['blocks'][0]['attn']['q_bias']
    assert not m['encoder']['blocks'][0]['norm1']['scale']
    assert not m['encoder']['patch_embed']['bias']
    assert m['encoder']['patch_embed']['kernel']
    assert not m['mask_token']  # 3-D but in no_weight_decay()
    assert m['encoder_to_decoder']['kernel']


def test_layer_decay_ids_and_scales():
    depth = 12
    assert optim.layer_id('encoder.patch_embed.kernel', depth) == 0
    assert optim.layer_id('encoder.blocks.0.attn.qkv.kernel', depth) == 1
    assert optim.layer_id('encoder.blocks.11.mlp.fc2.bias', depth) == 12
    assert optim.layer_id('fc_norm.scale', depth) == 13
    assert optim.layer_id('head.kernel', depth) == 13
    params = {
        'encoder': {'patch_embed': {'kernel': 0.0}, 'blocks': {11: {'w': 0.0}}},
        'head': {'kernel': 0.0},
    }
    s = optim.layer_decay_scales(params, depth, 0.75)
    assert s['encoder']['patch_embed']['kernel'] == pytest.approx(0.75**13)  # ~0.0238
    assert s['encoder']['blocks'][11]['w'] == pytest.approx(0.75)
    assert s['head']['kernel'] == 1.0


def test_layer_decay_scale_of_every_classifier_parameter():
    params = param_tree(Classifier(SPEC, 5, rngs=nnx.Rngs(0)))
    scales = flat(optim.layer_decay_scales(params, depth=2, layer_decay=0.75))
    for name, s in scales.items():
        if name.startswith('encoder.patch_embed'):
            want = 0.75**3  # layer id 0: scale ** (L + 1 - 0)
        elif name.startswith('encoder.blocks.0.'):
            want = 0.75**2
        elif name.startswith('encoder.blocks.1.'):
            want = 0.75
        else:
            assert name.startswith(('fc_norm', 'head')), name
            want = 1.0
        assert s == pytest.approx(want), name
    assert len(scales) == len(flat(params))


def test_finetune_optimizer_applies_layer_decay_to_updates():
    cfg = ft_common.finetune_config('vit_s')
    cfg.optim.weight_decay = 0.0
    params = param_tree(Classifier(SPEC, 5, rngs=nnx.Rngs(0)))
    schedule = optim.Schedule(optax.constant_schedule(0.1), 10, 0, 0.1)
    tx = optim.optimizer_from_config(cfg, schedule, params, depth=2)
    grads = jax.tree.map(jnp.ones_like, params)
    updates, _ = tx.update(grads, tx.init(params), params)
    u = flat(jax.tree.map(lambda x: float(jnp.abs(x).max()), updates))
    # First Adam step: |update| = lr * scale (m / sqrt(v) = 1).
    assert u['head.kernel'] == pytest.approx(0.1, rel=1e-4)
    assert u['encoder.blocks.1.mlp.fc1.kernel'] == pytest.approx(0.075, rel=1e-4)
    assert u['encoder.patch_embed.kernel'] == pytest.approx(0.1 * 0.75**3, rel=1e-4)
