"""vmae2.weights and the convert tool: key maps, surgery, files and directories."""

from __future__ import annotations

import json
import os
import sys

import jax
import numpy as np
import pytest
from flax import nnx

from vmae2.core.state import param_tree
from vmae2.errors import CheckpointError
from vmae2.models.classifier import Classifier
from vmae2.models.config import ModelConfig
from vmae2.models.pretrain import PretrainModel
from vmae2.tools import convert
from vmae2.weights import files
from vmae2.weights import keymaps
from vmae2.weights import surgery

OVERRIDES = {
    'width': 32,
    'depth': 2,
    'num_heads': 2,
    'mlp_dim': 64,
    'patch_size': 8,
    'decoder_width': 16,
    'decoder_num_heads': 2,
    'decoder_mlp_dim': 32,
}
SPEC = ModelConfig.create('vit_s', num_frames=4, input_size=16, decoder_depth=1, **OVERRIDES)
D, P = OVERRIDES['width'], OVERRIDES['patch_size']


def random_params(kind: str, num_classes: int = 5, seed: int = 0):
    """NumPy float32 params of a tiny model, every leaf random."""
    abstract = convert.abstract_params(SPEC, kind, num_classes)
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda s: rng.standard_normal(s.shape).astype(np.float32), abstract)


def fresh_params(kind: str, num_classes: int = 5):
    """Initialised params (what a trainer passes as the template)."""
    if kind == 'pretrain':
        model = PretrainModel(SPEC, rngs=nnx.Rngs(1))
    else:
        model = Classifier(SPEC, num_classes, rngs=nnx.Rngs(1))
    return jax.tree.map(np.asarray, nnx.to_pure_dict(nnx.state(model, nnx.Param)))


def load(sd, kind, target, *, strict=True, label_map=None):
    """An official state dict onto a model's params (key map, then surgery)."""
    params, unexpected = keymaps.map_official(sd, kind)
    return surgery.transplant(
        params, target, label_map=label_map, strict=strict, unexpected=unexpected
    )


def assert_trees_equal(a, b):
    fa, fb = keymaps.flatten(a), keymaps.flatten(b)
    assert fa.keys() == fb.keys()
    for k in fa:
        assert np.asarray(fa[k]).dtype == np.asarray(fb[k]).dtype, k
        np.testing.assert_array_equal(np.asarray(fa[k]), np.asarray(fb[k]), err_msg=str(k))


@pytest.mark.parametrize('kind', ['pretrain', 'classifier'])
def test_round_trip_is_bit_exact(kind):
    params = random_params(kind)
    sd = keymaps.params_to_official(params, kind)
    back = keymaps.official_to_params(sd, kind)
    assert_trees_equal(back, params)
    sd2 = keymaps.params_to_official(back, kind)
    assert sd.keys() == sd2.keys()
    for k in sd:
        assert sd[k].tobytes() == sd2[k].tobytes()


def test_official_key_layout_pretrain():
    sd = keymaps.params_to_official(random_params('pretrain'), 'pretrain')
    # 13 tensors per block, patch_embed 2, encoder.norm 2, decoder norm/head 4,
    # encoder_to_decoder 1, mask_token 1 (spec 9.1 lists them).
    assert len(sd) == 13 * (SPEC.depth + SPEC.decoder_depth) + 10
    assert sd['encoder.patch_embed.proj.weight'].shape == (D, 3, 2, P, P)
    assert sd['encoder.blocks.1.attn.qkv.weight'].shape == (3 * D, D)
    assert sd['encoder.blocks.0.attn.q_bias'].shape == (D,)
    assert sd['encoder.blocks.0.mlp.fc1.weight'].shape == (64, D)
    assert sd['encoder_to_decoder.weight'].shape == (16, D)
    assert sd['mask_token'].shape == (1, 1, 16)
    assert sd['decoder.head.weight'].shape == (3 * 2 * P * P, 16)
    assert 'encoder.norm.weight' in sd and 'decoder.blocks.0.norm2.bias' in sd
    assert not any('pos_embed' in k or 'gamma' in k for k in sd)


def test_official_key_layout_classifier_and_weight_layouts():
    params = random_params('classifier', num_classes=7)
    sd = keymaps.params_to_official(params, 'classifier')
    assert set(k.split('.')[0] for k in sd) == {'patch_embed', 'blocks', 'fc_norm', 'head'}
    assert sd['head.weight'].shape == (7, D)
    assert 'norm.weight' not in sd
    # Linear: torch weight (out, in) = kernel.T; qkv rows [q; k; v].
    qkv = params['encoder']['blocks'][0]['attn']['qkv']['kernel']
    np.testing.assert_array_equal(sd['blocks.0.attn.qkv.weight'][D : 2 * D], qkv[:, D : 2 * D].T)
    # Conv3d weight (width, 3, kt, p, p) -> kernel [kt, p, p, 3, width].
    k = params['encoder']['patch_embed']['kernel']
    w = sd['patch_embed.proj.weight']
    np.testing.assert_array_equal(w[5, 2, 1, 3, 4], k[1, 3, 4, 2, 5])
    assert sd['fc_norm.weight'] is not None
    np.testing.assert_array_equal(sd['fc_norm.weight'], params['fc_norm']['scale'])


def test_prefixes_and_nesting_are_stripped():
    params = random_params('classifier')
    sd = keymaps.params_to_official(params, 'classifier')
    compiled = {'_orig_mod.' + k: v for k, v in sd.items()}
    assert_trees_equal(keymaps.official_to_params(compiled, 'classifier'), params)
    for pre in ('encoder.', 'backbone.'):
        prefixed = {(pre + k if k.startswith(('blocks', 'patch')) else k): v for k, v in sd.items()}
        assert_trees_equal(keymaps.official_to_params(prefixed, 'classifier'), params)
    notes = []
    assert files._unwrap({'module': sd, 'epoch': 3}, notes) is sd
    assert files._unwrap({'model': sd}, notes) is sd
    assert files._unwrap(sd, notes) is sd


def test_strict_lists_every_problem():
    params = random_params('pretrain')
    sd = keymaps.params_to_official(params, 'pretrain')
    del sd['encoder.blocks.1.attn.v_bias']
    del sd['mask_token']
    sd['encoder.blocks.0.gamma_1'] = np.ones(D, np.float32)
    sd['decoder.head.weight'] = np.zeros((10, 16), np.float32)
    with pytest.raises(CheckpointError) as e:
        load(sd, 'pretrain', convert.abstract_params(SPEC, 'pretrain'))
    msg = str(e.value)
    for s in ('encoder.blocks.1.attn.v_bias', 'mask_token', 'gamma_1', 'decoder.head.kernel'):
        assert s in msg
    assert '2 missing keys' in msg and '1 unexpected keys' in msg and '1 shape mismatches' in msg
    # Without a model: unmappable and missing keys still all reported.
    with pytest.raises(CheckpointError, match='v_bias'):
        keymaps.official_to_params(sd, 'pretrain')


def test_strict_load_matches_official_to_params():
    params = random_params('pretrain')
    sd = keymaps.params_to_official(params, 'pretrain')
    out, report = load(sd, 'pretrain', convert.abstract_params(SPEC, 'pretrain'))
    assert_trees_equal(out, params)
    assert not report.dropped and not report.fresh
    assert len(report.loaded) == len(sd)


def test_non_strict_pretrain_into_classifier():
    pre = random_params('pretrain')
    sd = keymaps.params_to_official(pre, 'pretrain')
    init = fresh_params('classifier')
    with pytest.raises(CheckpointError):
        load(sd, 'pretrain', init)
    out, report = load(sd, 'pretrain', init, strict=False)
    assert_trees_equal(out['encoder'], {k: pre['encoder'][k] for k in ('patch_embed', 'blocks')})
    assert_trees_equal(
        {'fc_norm': out['fc_norm'], 'head': out['head']},
        {
            'fc_norm': init['fc_norm'],
            'head': init['head'],
        },
    )
    assert sorted(report.fresh) == ['fc_norm.bias', 'fc_norm.scale', 'head.bias', 'head.kernel']
    dropped = set(report.dropped)
    names = {'encoder.norm.scale', 'encoder.norm.bias', 'encoder_to_decoder.kernel', 'mask_token'}
    assert names <= dropped
    assert 'decoder.head.kernel' in dropped and 'decoder.blocks.0.attn.qkv.kernel' in dropped
    assert 'fc_norm' in report.summary()


def test_k710_head_by_label_map_and_mismatch_dropped():
    src = random_params('classifier', num_classes=710, seed=3)
    sd = keymaps.params_to_official(src, 'classifier')
    init = fresh_params('classifier', num_classes=5)
    label_map = [700, 3, 0, 42, 709]
    out, report = load(sd, 'classifier', init, label_map=label_map)
    np.testing.assert_array_equal(out['head']['kernel'], sd['head.weight'][label_map].T)
    np.testing.assert_array_equal(out['head']['bias'], sd['head.bias'][label_map])
    assert '710 classes -> 5' in report.head and not report.fresh
    with pytest.raises(CheckpointError, match='label map'):
        load(sd, 'classifier', init, label_map=[0, 1, 710, 2, 3])
    with pytest.raises(CheckpointError, match='head.kernel'):
        load(sd, 'classifier', init)
    out, report = load(sd, 'classifier', init, strict=False)
    assert set(report.dropped) == {'head.kernel', 'head.bias'}
    assert sorted(report.fresh) == ['head.bias', 'head.kernel']
    np.testing.assert_array_equal(out['head']['kernel'], init['head']['kernel'])


def test_non_strict_still_rejects_wrong_backbone_shapes():
    sd = keymaps.params_to_official(random_params('classifier'), 'classifier')
    sd['blocks.0.mlp.fc1.weight'] = np.zeros((65, D), np.float32)
    with pytest.raises(CheckpointError, match='fc1'):
        load(sd, 'classifier', fresh_params('classifier'), strict=False)


@pytest.mark.parametrize('ext', ['.safetensors', '.npz'])
def test_file_round_trip(tmp_path, ext):
    params = random_params('pretrain')
    sd = keymaps.params_to_official(params, 'pretrain')
    path = str(tmp_path / ('w' + ext))
    files.write_official(path, sd, 'pretrain')
    back = files.read_state_dict(path)
    assert back.keys() == sd.keys()
    for k in sd:
        assert back[k].tobytes() == sd[k].tobytes() and back[k].shape == sd[k].shape


@pytest.mark.torch
def test_pth_nesting_and_safe_load(tmp_path):
    torch = pytest.importorskip('torch', reason='needs the [torch] extra')
    for kind, key in (('pretrain', 'model'), ('classifier', 'module')):
        sd = keymaps.params_to_official(random_params(kind), kind)
        path = str(tmp_path / f'{kind}.pth')
        files.write_official(path, sd, kind)
        raw = torch.load(path, map_location='cpu', weights_only=True)
        assert list(raw) == [key]
        back = files.read_state_dict(path)
        for k in sd:
            np.testing.assert_array_equal(back[k], sd[k])


def test_pth_without_torch_names_the_extra(tmp_path, monkeypatch):
    path = tmp_path / 'x.pth'
    path.write_bytes(b'not read')
    monkeypatch.setitem(sys.modules, 'torch', None)
    with pytest.raises(ImportError, match=r"pip install -e '\.\[torch\]'"):
        files.read_state_dict(str(path))


def test_unknown_extension(tmp_path):
    path = tmp_path / 'x.pkl'
    path.write_bytes(b'')
    with pytest.raises(CheckpointError, match='unknown checkpoint type'):
        files.read_state_dict(str(path))


def test_cli_both_directions(tmp_path):
    params = random_params('classifier', num_classes=6)
    src = str(tmp_path / 'ft.safetensors')
    sd = keymaps.params_to_official(params, 'classifier')
    files.write_official(src, {'_orig_mod.' + k: v for k, v in sd.items()}, 'classifier')
    out_dir = str(tmp_path / 'converted')
    argv = ['--input', src, '--output', out_dir, '--model', 'vit_s', '--num-frames', '4']
    argv += ['--input-size', '16'] + [f'--override={k}={v}' for k, v in OVERRIDES.items()]
    assert convert.main(argv) == 0
    meta = json.load(open(os.path.join(out_dir, 'model.json')))
    assert meta['kind'] == 'classifier' and meta['num_classes'] == 6
    assert meta['format'] == files.FORMAT and meta['overrides'] == OVERRIDES
    loaded, meta2 = files.read_source(out_dir)
    assert_trees_equal(loaded, params)
    assert meta2['input_size'] == 16

    dst = str(tmp_path / 'back.safetensors')
    assert convert.main(['--input', out_dir, '--output', dst, '--to-official']) == 0
    back = files.read_state_dict(dst)
    assert back.keys() == sd.keys()
    for k in sd:
        assert back[k].tobytes() == sd[k].tobytes()
    with pytest.raises(FileExistsError):
        convert.main(argv)


def test_pretrain_dir_feeds_classifier_init(tmp_path):
    """init_from=<converted pre-training dir> for fine-tuning (spec 9.3)."""
    params = random_params('pretrain')
    src = str(tmp_path / 'pt.npz')
    files.write_official(src, keymaps.params_to_official(params, 'pretrain'), 'pretrain')
    out_dir = str(tmp_path / 'pt')
    meta = convert.convert_to_vmae2(
        src, out_dir, variant='vit_s', num_frames=4, input_size=16, overrides=OVERRIDES
    )
    assert meta['kind'] == 'pretrain' and meta['decoder_depth'] == 1
    init = fresh_params('classifier')
    out, report = surgery.transplant(files.read_source(out_dir)[0], init)
    assert_trees_equal(out['encoder']['blocks'], params['encoder']['blocks'])
    assert 'mask_token' in report.dropped


def test_reads_training_workdir(tmp_path):
    import optax

    from vmae2.runtime import checkpointing

    params = random_params('pretrain')
    tx = optax.adamw(1e-3)
    jparams = jax.tree.map(jax.numpy.asarray, params)
    state = {'step': jax.numpy.int32(7), 'params': jparams, 'opt_state': tx.init(jparams)}
    ck = checkpointing.Checkpointer(str(tmp_path), async_save=False)
    ck.save(7, state)
    ck.close()
    loaded, meta = files.read_source(str(tmp_path))
    assert meta['kind'] == 'pretrain' and meta['step'] == 7
    assert_trees_equal(loaded, params)
    dst = str(tmp_path / 'out.npz')
    assert convert.convert_to_official(str(tmp_path), dst) == 'pretrain'
    assert 'mask_token' in files.read_state_dict(dst)


# ----------------------------------------------------------------------------- surgery


def flat(tree):
    return {keymaps.dotted(k): v for k, v in keymaps.flatten(tree).items()}


def test_pretrain_to_classifier_surgery_loads_encoder_and_keeps_head_fresh():
    pre = param_tree(PretrainModel(SPEC, rngs=nnx.Rngs(1)))
    fresh = param_tree(Classifier(SPEC, 5, rngs=nnx.Rngs(2)))
    # Orbax returns block indices as strings: the surgery accepts both.
    stringly = json.loads(json.dumps(jax.tree.map(lambda x: x.tolist(), pre)))
    stringly = jax.tree.map(np.asarray, stringly)
    pre, fresh = jax.tree.map(np.asarray, pre), jax.tree.map(np.asarray, fresh)
    for source in (pre, stringly):
        out, report = surgery.transplant(source, fresh)
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
    pre = param_tree(PretrainModel(SPEC.replace(mlp_dim=48), rngs=nnx.Rngs(1)))
    fresh = param_tree(Classifier(SPEC, 5, rngs=nnx.Rngs(2)))
    with pytest.raises(CheckpointError, match='6 shape mismatches') as e:
        surgery.transplant(pre, fresh)
    assert 'encoder.blocks.1.mlp.fc2.kernel' in str(e.value)


def test_k710_head_is_sliced_by_the_label_map_else_reinitialised():
    src = param_tree(Classifier(SPEC, 7, rngs=nnx.Rngs(1)))
    src['head']['kernel'] = np.arange(32 * 7, dtype=np.float32).reshape(32, 7)
    src['head']['bias'] = np.arange(7, dtype=np.float32)
    fresh = param_tree(Classifier(SPEC, 3, rngs=nnx.Rngs(2)))
    lm = [6, 0, 3]
    out, report = surgery.transplant(src, fresh, label_map=lm)
    np.testing.assert_array_equal(out['head']['kernel'], src['head']['kernel'][:, lm])
    np.testing.assert_array_equal(out['head']['bias'], [6, 0, 3])
    np.testing.assert_array_equal(out['fc_norm']['scale'], src['fc_norm']['scale'])
    assert '7 classes -> 3' in report.head and not report.fresh
    out, report = surgery.transplant(src, fresh)
    np.testing.assert_array_equal(out['head']['kernel'], fresh['head']['kernel'])
    assert report.fresh == ['head.bias', 'head.kernel']
    with pytest.raises(CheckpointError, match='no usable classifier head'):
        surgery.transplant(src, fresh, require_head=True)
    with pytest.raises(CheckpointError, match='cannot map a 7-class head'):
        surgery.transplant(src, fresh, label_map=[0, 1, 9])


def test_load_reads_a_label_map_file(tmp_path):
    path = tmp_path / 'map.json'
    path.write_text('[2, 1]')
    assert surgery.load_label_map(str(path)) == [2, 1]
    path.write_text('{"a": 1}')
    with pytest.raises(CheckpointError, match='JSON list'):
        surgery.load_label_map(str(path))
