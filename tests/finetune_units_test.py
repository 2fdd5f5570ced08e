"""Fine-tuning pieces against hand-written references: layer decay, mixup/cutmix,
random erasing, soft-target CE, distillation KL, view fusion, init_from surgery,
K710 head slicing, the K710 list tool, predict, the configs."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from configs import evaluate as evaluate_config
from configs import extract_features as features_config
from configs.distill import k710 as distill_config
from configs.finetune import common as ft_common
from configs.finetune import hmdb51, k400, k600, k710, ssv2, ucf101
from vmae2 import evaluation
from vmae2 import init_from
from vmae2 import losses
from vmae2 import mixup
from vmae2 import optim
from vmae2.models import classifier
from vmae2.models import pretrain
from vmae2.tools import k710 as k710_tool
from vmae2.trainers import common

TINY = (
    ('decoder_mlp_dim', 32),
    ('decoder_num_heads', 2),
    ('decoder_width', 16),
    ('depth', 2),
    ('mlp_dim', 64),
    ('num_heads', 2),
    ('patch_size', 8),
    ('width', 32),
)
SPEC = pretrain.PretrainSpec('vit_s', num_frames=4, input_size=32, decoder_depth=1, overrides=TINY)


def params_of(module):
    return jax.tree.map(np.asarray, nnx.to_pure_dict(nnx.state(module, nnx.Param)))


def flat(tree):
    return {init_from.dotted(k): v for k, v in init_from.flatten(tree).items()}


# ----------------------------------------------------------------------------- layer decay


def test_layer_decay_scale_of_every_classifier_parameter():
    params = params_of(classifier.Classifier(SPEC, 5, rngs=nnx.Rngs(0)))
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
    params = params_of(classifier.Classifier(SPEC, 5, rngs=nnx.Rngs(0)))
    tx = common.make_tx_factory(cfg, optax.constant_schedule(0.1), 2)(params)
    grads = jax.tree.map(jnp.ones_like, params)
    updates, _ = tx.update(grads, tx.init(params), params)
    u = flat(jax.tree.map(lambda x: float(jnp.abs(x).max()), updates))
    # First Adam step: |update| = lr * scale (m / sqrt(v) = 1).
    assert u['head.kernel'] == pytest.approx(0.1, rel=1e-4)
    assert u['encoder.blocks.1.mlp.fc1.kernel'] == pytest.approx(0.075, rel=1e-4)
    assert u['encoder.patch_embed.kernel'] == pytest.approx(0.1 * 0.75**3, rel=1e-4)


# ----------------------------------------------------------------------------- mixup


def _batch(b=6, t=2, h=8, w=10):
    x = jax.random.normal(jax.random.key(0), (b, t, h, w, 3))
    labels = jnp.array([0, 1, 2, 3, 1, 0][:b])
    return x, labels


def test_cutmix_targets_match_the_box_area_and_sum_to_one():
    x, labels = _batch()
    cfg = mixup.MixupConfig(mixup_alpha=0.0, cutmix_alpha=1.0, label_smoothing=0.1)
    seen = 0
    for seed in range(8):
        out, y, info = mixup.mix_batch(jax.random.key(seed), x, labels, 4, cfg)
        out, y = np.asarray(out), np.asarray(y)
        np.testing.assert_allclose(y.sum(1), 1.0, rtol=1e-6)
        from_flip = np.all(out == np.asarray(x)[::-1], axis=(0, 1, 4))  # [H, W] pixel source
        lam = 1.0 - from_flip.mean()
        assert float(info['lam']) == pytest.approx(lam, abs=1e-6)
        # The box is the same for every clip and frame.
        assert np.all((out == np.asarray(x)[::-1]) | (out == np.asarray(x)))
        one = np.full((6, 4), 0.1 / 4)
        one[np.arange(6), np.asarray(labels)] = 1 - 0.1 + 0.1 / 4
        np.testing.assert_allclose(y, lam * one + (1 - lam) * one[::-1], rtol=1e-5, atol=1e-6)
        seen += 0 < lam < 1
    assert seen > 0


def test_mixup_is_a_convex_combination_with_the_flipped_batch():
    x, labels = _batch()
    cfg = mixup.MixupConfig(mixup_alpha=0.8, cutmix_alpha=0.0, label_smoothing=0.0)
    out, y, info = mixup.mix_batch(jax.random.key(3), x, labels, 4, cfg)
    lam = float(info['lam'])
    assert not bool(info['cutmix']) and 0 < lam < 1
    np.testing.assert_allclose(out, lam * x + (1 - lam) * x[::-1], rtol=1e-5, atol=1e-6)
    one = np.eye(4)[np.asarray(labels)]
    np.testing.assert_allclose(y, lam * one + (1 - lam) * one[::-1], rtol=1e-5, atol=1e-6)


def test_switch_prob_picks_both_modes_and_prob_zero_leaves_the_batch():
    x, labels = _batch()
    cfg = mixup.MixupConfig()
    kinds = {
        bool(mixup.mix_batch(jax.random.key(s), x, labels, 4, cfg)[2]['cutmix']) for s in range(20)
    }
    assert kinds == {True, False}
    off = mixup.MixupConfig(prob=0.0)
    out, y, info = mixup.mix_batch(jax.random.key(0), x, labels, 4, off)
    np.testing.assert_array_equal(out, x)
    assert float(info['lam']) == 1.0


def test_random_erasing_fills_only_the_box_with_fresh_noise_per_frame():
    x = jnp.zeros((2, 3, 8, 8, 3))
    boxes = jnp.array([[1, 2, 3, 4], [0, 0, 0, 0]], jnp.int32)
    out = np.asarray(mixup.erase_boxes(jax.random.key(0), x, boxes))
    inside = np.zeros((8, 8), bool)
    inside[1:4, 2:6] = True
    assert np.all(out[0][:, ~inside] == 0) and np.all(out[0][:, inside] != 0)
    assert not np.allclose(out[0, 0][inside], out[0, 1][inside])  # per frame
    assert np.all(out[1] == 0)  # h == 0: no box
    assert abs(out[0][:, inside].std() - 1) < 0.35


# ----------------------------------------------------------------------------- losses


def test_soft_target_cross_entropy_matches_float64_numpy():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(5, 7)) * 3
    t = rng.random((5, 7))
    t /= t.sum(1, keepdims=True)
    logp = logits - logits.max(1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(1, keepdims=True))
    want = np.mean(np.sum(-t * logp, axis=1))
    got = losses.soft_target_cross_entropy(jnp.asarray(logits, jnp.float32), jnp.asarray(t))
    assert float(got) == pytest.approx(want, rel=1e-5)


def test_distillation_kl_matches_numpy_and_vanishes_on_equal_logits():
    rng = np.random.default_rng(1)
    s, t, temp = rng.normal(size=(4, 6)), rng.normal(size=(4, 6)), 2.5

    def log_softmax(z):
        z = z - z.max(1, keepdims=True)
        return z - np.log(np.exp(z).sum(1, keepdims=True))

    lp, lq = log_softmax(t / temp), log_softmax(s / temp)
    want = np.mean(np.sum(np.exp(lp) * (lp - lq), axis=1)) * temp**2
    got = losses.distillation_kl(jnp.asarray(s), jnp.asarray(t), temp)
    assert float(got) == pytest.approx(want, rel=1e-5)
    assert float(losses.distillation_kl(jnp.asarray(s), jnp.asarray(s), temp)) == pytest.approx(
        0.0, abs=1e-6
    )
    f = jnp.asarray(rng.normal(size=(3, 5)))
    assert np.allclose(losses.feature_loss_per_example(f, 2 * f, 'cosine'), 0, atol=1e-6)
    assert np.allclose(losses.feature_loss_per_example(f, f + 1, 'mse'), 1, atol=1e-6)


# ----------------------------------------------------------------------------- view fusion


def test_view_fusion_averages_softmax_per_video_and_ignores_padding():
    probs = np.array(
        [
            [0.6, 0.3, 0.1],  # video 0, view 0
            [0.2, 0.7, 0.1],  # video 0, view 1  -> mean [0.4, 0.5, 0.1]: class 1
            [0.1, 0.1, 0.8],  # video 1 -> class 2
            [0.9, 0.05, 0.05],  # padding (valid False)
            [1.0, 0.0, 0.0],  # video 2 unreadable (valid False)
        ]
    )
    res = evaluation.fuse_views(
        np.array([0, 0, 1, -1, 2]),
        np.array([0, 0, 2, 0, 1]),
        probs,
        np.array([True, True, True, False, False]),
        num_videos=3,
    )
    np.testing.assert_array_equal(res.video_index, [0, 1])
    np.testing.assert_allclose(res.probs[0], [0.4, 0.5, 0.1])
    np.testing.assert_array_equal(res.views, [2, 1])
    m = res.metrics()
    assert m['top1'] == 50.0 and m['top5'] == 100.0 and m['unreadable_videos'] == 1
    assert evaluation.topk_accuracy(res.probs, res.labels, (2,)) == [100.0]


def test_run_views_on_a_mesh_matches_fuse_views():
    mesh = common.make_mesh(ft_common.finetune_config('vit_s'))
    rng = np.random.default_rng(0)
    batches, rows = [], []
    for b in range(2):
        video = rng.integers(0, 255, (8, 1, 1, 1, 3)).astype(np.uint8)
        vi = (
            np.array([0, 0, 1, 1, 2, 2, 3, -1])
            if b == 0
            else np.array([3, 4, 4, -1, -1, -1, -1, -1])
        )
        batch = {
            'video': video,
            'video_index': vi.astype(np.int32),
            'label': (np.maximum(vi, 0) % 3).astype(np.int32),
            'valid': vi >= 0,
        }
        batches.append(batch)

    predict = jax.jit(lambda p, v: jax.nn.softmax(v[:, 0, 0, 0, :].astype(jnp.float32) / 50.0))
    res = evaluation.run_views(predict, None, batches, mesh, num_videos=5, num_classes=3)
    allv = {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}
    probs = np.asarray(jax.nn.softmax(allv['video'][:, 0, 0, 0, :].astype(np.float32) / 50.0))
    want = evaluation.fuse_views(allv['video_index'], allv['label'], probs, allv['valid'], 5)
    np.testing.assert_array_equal(res.video_index, want.video_index)
    np.testing.assert_allclose(res.probs, want.probs, rtol=1e-5)
    assert res.unreadable == 0
    del rows


# ----------------------------------------------------------------------------- init_from


def test_pretrain_to_classifier_surgery_loads_encoder_and_keeps_head_fresh():
    pre = params_of(pretrain.PretrainModel(SPEC, rngs=nnx.Rngs(1)))
    fresh = params_of(classifier.Classifier(SPEC, 5, rngs=nnx.Rngs(2)))
    # Orbax returns block indices as strings: the surgery accepts both.
    stringly = json.loads(json.dumps(jax.tree.map(lambda x: x.tolist(), pre)))
    stringly = jax.tree.map(np.asarray, stringly)
    for source in (pre, stringly):
        out, report = init_from.transplant(source, fresh)
        o, p, f = flat(out), flat(pre), flat(fresh)
        for name in o:
            if name.startswith('encoder.'):
                np.testing.assert_array_equal(o[name], p[name])
            else:
                np.testing.assert_array_equal(o[name], f[name])
        assert sorted(report.fresh) == ['fc_norm.bias', 'fc_norm.scale', 'head.bias', 'head.kernel']
        assert 'encoder.norm.scale' in report.dropped and 'mask_token' in report.dropped
        assert any(k.startswith('decoder.') for k in report.dropped)
        assert report.source_kind == 'pretrain'
        assert jax.tree.structure(out) == jax.tree.structure(fresh)


def test_surgery_lists_every_shape_mismatch():
    other = pretrain.PretrainSpec(
        'vit_s',
        num_frames=4,
        input_size=32,
        decoder_depth=1,
        overrides=tuple((k, 48 if k == 'mlp_dim' else v) for k, v in TINY),
    )
    pre = params_of(pretrain.PretrainModel(other, rngs=nnx.Rngs(1)))
    fresh = params_of(classifier.Classifier(SPEC, 5, rngs=nnx.Rngs(2)))
    with pytest.raises(ValueError, match='6 shape mismatches') as e:
        init_from.transplant(pre, fresh)
    assert 'encoder.blocks.1.mlp.fc2.kernel' in str(e.value)


def test_k710_head_is_sliced_by_the_label_map_else_reinitialised():
    src = params_of(classifier.Classifier(SPEC, 7, rngs=nnx.Rngs(1)))
    src['head']['kernel'] = np.arange(32 * 7, dtype=np.float32).reshape(32, 7)
    src['head']['bias'] = np.arange(7, dtype=np.float32)
    fresh = params_of(classifier.Classifier(SPEC, 3, rngs=nnx.Rngs(2)))
    lm = [6, 0, 3]
    out, report = init_from.transplant(src, fresh, label_map=lm)
    np.testing.assert_array_equal(out['head']['kernel'], src['head']['kernel'][:, lm])
    np.testing.assert_array_equal(out['head']['bias'], [6, 0, 3])
    np.testing.assert_array_equal(out['fc_norm']['scale'], src['fc_norm']['scale'])
    assert '7 classes -> 3' in report.head and not report.fresh
    out, report = init_from.transplant(src, fresh)
    np.testing.assert_array_equal(out['head']['kernel'], fresh['head']['kernel'])
    assert report.fresh == ['head.bias', 'head.kernel']
    with pytest.raises(ValueError, match='no usable classifier head'):
        init_from.transplant(src, fresh, require_head=True)
    with pytest.raises(ValueError, match='cannot map a 7-class head'):
        init_from.transplant(src, fresh, label_map=[0, 1, 9])


def test_load_reads_a_label_map_file(tmp_path):
    path = tmp_path / 'map.json'
    path.write_text('[2, 1]')
    assert init_from.load_label_map(str(path)) == [2, 1]
    path.write_text('{"a": 1}')
    with pytest.raises(ValueError, match='JSON list'):
        init_from.load_label_map(str(path))


# ----------------------------------------------------------------------------- K710 tool


def test_k710_merges_dedups_and_writes_index_maps(tmp_path):
    def yt(i):
        return f'{i:011d}'

    k400 = k710_tool.Source(
        'k400',
        ['dying hair', 'abseiling', 'zumba'],
        [(f'a/{yt(1)}_000001_000011.mp4', 0), (f'a/{yt(2)}_000000_000010.mp4', 1)],
        [(f'v/{yt(3)}_000005_000015.mp4', 2), (f'v/{yt(1)}_000001_000011.mp4', 0)],
    )
    k600 = k710_tool.Source(
        'k600',
        ['abseiling', 'dyeing hair', 'acting in play', 'zumba'],
        [(f'b/{yt(2)}_000000_000010.mp4', 0), (f'b/{yt(4)}_000002_000012.mp4', 2)],
        [(f'w/{yt(5)}_000000_000010.mp4', 1)],
    )
    result = k710_tool.build([k400, k600], {'dying hair': 'dyeing hair'})
    assert result.names == ['abseiling', 'acting in play', 'dyeing hair', 'zumba']
    assert result.maps == {'k400': [2, 0, 3], 'k600': [0, 2, 1, 3]}
    assert [y for _, y in result.train] == [2, 0, 1]  # yt(2) kept once, from K400
    assert [p for p, _ in result.val] == [
        f'v/{yt(3)}_000005_000015.mp4',
        f'w/{yt(5)}_000000_000010.mp4',
    ]
    s = result.summary
    assert s['train_duplicates'] == 1 and s['val_in_train_removed'] == 1
    assert s['renamed'] == {'dying hair': 'dyeing hair'}
    # The written files are what fine-tuning reads.
    for name, src in (('k400', k400), ('k600', k600)):
        d = tmp_path / name
        d.mkdir()
        (d / 'labels.txt').write_text('\n'.join(src.names) + '\n')
        for split in ('train', 'val'):
            (d / f'{split}.csv').write_text(''.join(f'{p} {y}\n' for p, y in getattr(src, split)))
    merge = tmp_path / 'merge.json'
    merge.write_text(json.dumps({'dying hair': 'dyeing hair'}))
    out = tmp_path / 'out'
    k710_tool.main(
        [
            '--k400',
            str(tmp_path / 'k400'),
            '--k600',
            str(tmp_path / 'k600'),
            '--merge',
            str(merge),
            '--output',
            str(out),
        ]
    )
    assert json.loads((out / 'label_710to400.json').read_text()) == [2, 0, 3]
    assert (out / 'label_map_k710.txt').read_text().split('\n')[:4] == result.names
    assert len((out / 'train.csv').read_text().splitlines()) == 3
    assert k710_tool.youtube_id('x/--07WQ2iBlw_000001_000011.mp4') == '--07WQ2iBlw'


# ----------------------------------------------------------------------------- configs


@pytest.mark.parametrize('module', [k710, k400, k600, ssv2, ucf101, hmdb51])
@pytest.mark.parametrize('variant', ['vit_s', 'vit_b', 'vit_l', 'vit_h', 'vit_g'])
def test_every_finetune_config_builds(module, variant):
    c = module.get_config(variant + (',split=2' if module in (ucf101, hmdb51) else ''))
    assert c.trainer == 'finetune' and c.script and c.batch_size > 0


def test_configs_carry_the_script_numbers():
    g = k710.get_config('vit_g')
    assert (g.batch_size, g.optim.base_lr, g.optim.layer_decay, g.optim.clip_grad) == (
        96,
        1e-3,
        0.9,
        5.0,
    )
    assert g.model.drop_path_rate == 0.3 and g.optim.weight_decay == 0.1
    s = ssv2.get_config('vit_b')
    assert s.data.sampler == 'tsn' and not s.data.flip and s.data.test_num_segment == 2
    assert s.optim.layer_decay == 0.65
    it = k400.get_config('vit_g,it=1')
    assert it.optim.base_lr == 1e-5 and it.optim.epochs == 3 and it.optim.warmup_epochs == 1
    assert hmdb51.get_config('vit_g,split=3').data.sampling_rate == 2
    assert evaluate_config.get_config('ssv2').trainer == 'evaluate'
    assert features_config.get_config('fineaction').data.step == 16
    assert distill_config.get_config('vit_s').trainer == 'distill'
    with pytest.raises(ValueError):
        ft_common.parse_arg('vit_x')
