"""Sharding on 8 fake CPU devices: rules -> specs, sharded steps equal the
single-device step, checkpoints move between mesh shapes, ViT-g coverage."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from jax.sharding import AbstractMesh, AxisType, Mesh, PartitionSpec as P

from configs import common as config_common
from configs.finetune import common as ft_common
from configs.pretrain import vit_g as vit_g_config
from tiny_configs import TINY_SIZES
from vmae2.core import step as step_lib
from vmae2.core.state import StateFactory
from vmae2.models.classifier import Classifier
from vmae2.models.config import ModelConfig
from vmae2.models.pretrain import PretrainModel
from vmae2.runtime import checkpointing
from vmae2.runtime import distributed
from vmae2.runtime import sharding
from vmae2.trainers.finetune import Finetune
from vmae2.trainers.pretrain import Pretrain

RTOL = 1e-5

# Width 32 (heads 2, qkv 96, mlp 64): every large dimension divides 2 and 4.
TINY = dict(TINY_SIZES, patch_size=8)

MESHES = {
    'single': ({'data': 1}, {}),
    'data8': ({'data': 8, 'fsdp': 1}, sharding.FSDP_RULES),
    'fsdp2x4': ({'data': 2, 'fsdp': 4}, sharding.FSDP_RULES),
    'tensor2x2x2': ({'data': 2, 'fsdp': 2, 'tensor': 2}, sharding.TENSOR_RULES),
}


def mesh_of(name: str) -> tuple[Mesh, dict]:
    axes, rules = MESHES[name]
    n = int(np.prod(list(axes.values())))
    mesh = jax.make_mesh(
        tuple(axes.values()),
        tuple(axes),
        axis_types=(AxisType.Auto,) * len(axes),
        devices=jax.devices()[:n],
    )
    return mesh, dict(rules)


def tiny_config(c=None):
    c = c or config_common.pretrain_config('vit_s')
    c.model.num_frames = 4
    c.model.input_size = 32
    c.model.decoder_depth = 1
    c.model.overrides = TINY
    if 'masking' in c:
        c.masking.mask_ratio = 0.75
    return c


def tiny_spec() -> ModelConfig:
    return ModelConfig.from_config(tiny_config())


def adamw(_):
    return optax.adamw(1e-3, b1=0.9, b2=0.95, weight_decay=0.05)


def video_batch(n: int = 8, seed: int = 0) -> np.ndarray:
    spec = tiny_spec()
    shape = (n, spec.num_frames, spec.input_size, spec.input_size, 3)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def tree_rel_error(a, b) -> float:
    """Largest ||a - b|| / ||b|| over the leaves (float64 on the host)."""
    errs = []
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        errs.append(np.linalg.norm(x - y) / max(np.linalg.norm(y), 1e-30))
    return float(max(errs))


def spec_of(x) -> P:
    return x.sharding.spec


# ---------------------------------------------------------------- rule -> spec


def test_logical_to_spec_rules_divisibility_and_fallback():
    mesh = AbstractMesh((2, 4), ('data', 'fsdp'))
    rules = {'embed': 'fsdp', 'mlp': 'tensor'}
    assert sharding.logical_to_spec(('embed', 'mlp'), (32, 64), mesh, rules) == P('fsdp', None)
    # 'tensor' is not in the mesh: inert.
    assert sharding.logical_to_spec(('mlp', 'embed'), (64, 32), mesh, rules) == P(None, 'fsdp')
    # 30 does not divide by 4: fsdp falls back to the largest dimension that does.
    assert sharding.logical_to_spec(('embed', 'mlp'), (30, 64), mesh, rules) == P(None, 'fsdp')
    assert sharding.logical_to_spec(('embed', None), (30, 6), mesh, rules) == P(None, None)
    assert sharding.logical_to_spec(('embed', 'mlp'), (30, 64), mesh, rules, fallback_axes=()) == P(
        None, None
    )
    # A tuple rule splits one dimension over both axes.
    both = {'embed': ('data', 'fsdp')}
    assert sharding.logical_to_spec(('embed',), (16,), mesh, both) == P(('data', 'fsdp'))
    assert sharding.logical_to_spec(('norm',), (32,), mesh, rules) == P(None)
    assert sharding.logical_to_spec(None, (3,), mesh, rules) == P()


@functools.lru_cache(maxsize=None)
def abstract_vit_g(stage: str):
    spec = ModelConfig.create('vit_g')
    if stage == 'pretrain':
        return nnx.eval_shape(lambda: PretrainModel(spec, rngs=nnx.Rngs(0)))
    return nnx.eval_shape(lambda: Classifier(spec, 710, rngs=nnx.Rngs(0)))


def _vit_g_fraction(stage: str, mesh_shape: tuple[int, int], rules: dict) -> tuple[float, int]:
    mesh = AbstractMesh(mesh_shape, ('data', 'fsdp'))
    abstract = abstract_vit_g(stage)
    specs = jax.tree.leaves(
        sharding.param_specs(abstract, mesh, rules), is_leaf=lambda s: isinstance(s, P)
    )
    params = jax.tree.leaves(nnx.to_pure_dict(nnx.state(abstract, nnx.Param)))
    total = sharded = 0
    for x, s in zip(params, specs):
        nbytes = int(np.prod(x.shape)) * 4
        total += nbytes
        sharded += nbytes if any(a is not None for a in s) else 0
    return sharded / total, total


# 1408 = 2^7 * 11: FSDP over up to 128 devices; beyond, add data parallelism
# across FSDP groups (256 devices = data 2 x fsdp 128).
@pytest.mark.parametrize('mesh_shape', [(1, 8), (1, 64), (1, 128), (2, 128)])
@pytest.mark.parametrize('stage', ['pretrain', 'finetune'])
def test_vit_g_fsdp_shards_at_least_98_percent(stage, mesh_shape):
    for rules in (dict(vit_g_config.get_config().sharding_rules), config_common.SHARDING_RULES):
        frac, total = _vit_g_fraction(stage, mesh_shape, rules)
        print(f'ViT-g {stage} on mesh data x fsdp = {mesh_shape}: {100 * frac:.3f} % sharded')
        assert frac >= 0.98, (stage, mesh_shape, rules, frac)
    assert total > 3.5e9  # ~1B float32 parameters: the real ViT-g


def test_fsdp_fallback_on_256_way_fsdp():
    # 256-way FSDP: 'embed' (1408) does not divide, fc1 moves to its 6144 side.
    with_fallback, _ = _vit_g_fraction('pretrain', (1, 256), {'embed': 'fsdp'})
    mesh = AbstractMesh((1, 256), ('data', 'fsdp'))
    abstract = abstract_vit_g('pretrain')
    specs = sharding.param_specs(abstract, mesh, {'embed': 'fsdp'})
    assert specs['encoder']['blocks'][0]['mlp']['fc1']['kernel'] == P(None, 'fsdp')
    assert specs['encoder']['blocks'][0]['mlp']['fc2']['kernel'] == P('fsdp', None)
    assert 0.6 < with_fallback < 0.98


# ------------------------------------------------------- pre-training step


def stage_step_on(stage, mesh_name: str, local: dict, steps: int = 2, seed: int = 0):
    """`steps` of the stage's real train step (core.step) on a mesh of MESHES."""
    mesh, rules = mesh_of(mesh_name)
    factory = StateFactory(stage.build_model, adamw, mesh, rules, seed=seed)
    train_step = step_lib.make_train_step(
        stage.loss, stage.prepare, factory.graphdef, factory.tx, optax.constant_schedule(1e-3)
    )
    step = jax.jit(
        train_step,
        in_shardings=(factory.shardings, sharding.batch_sharding(mesh), {}),
        out_shardings=(factory.shardings, sharding.replicated(mesh)),
        donate_argnums=0,
    )
    losses = []
    with jax.set_mesh(mesh):
        state = factory.create()
        batch = sharding.global_batch(local, mesh)
        for _ in range(steps):
            state, m = step(state, batch, {})
            losses.append(float(m['loss']))
    return state, losses


def pretrain_step_on(mesh_name: str, video: np.ndarray, steps: int = 2):
    return stage_step_on(Pretrain(tiny_config()), mesh_name, {'video': video}, steps)


@pytest.fixture(scope='module')
def single_pretrain():
    return pretrain_step_on('single', video_batch())


@pytest.mark.parametrize('mesh_name', ['fsdp2x4', 'tensor2x2x2'])
def test_sharded_pretrain_step_equals_single_device(single_pretrain, mesh_name):
    ref_state, ref_losses = single_pretrain
    state, losses = pretrain_step_on(mesh_name, video_batch())
    np.testing.assert_allclose(losses, ref_losses, rtol=RTOL)
    err = tree_rel_error(state.params, ref_state.params)
    assert err < RTOL, err
    assert tree_rel_error(state.opt_state, ref_state.opt_state) < 1e-4
    print(
        f'{mesh_name}: loss rel err {np.max(np.abs(np.subtract(losses, ref_losses)) / ref_losses):.2e}, '
        f'params rel err {err:.2e}'
    )

    p = state.params
    blk = p['encoder']['blocks'][0]
    if mesh_name == 'fsdp2x4':
        assert spec_of(blk['attn']['qkv']['kernel']) == P('fsdp', None)
        assert spec_of(blk['attn']['proj']['kernel']) == P(None, 'fsdp')
        assert spec_of(blk['mlp']['fc1']['kernel']) == P('fsdp', None)
        assert spec_of(blk['mlp']['fc2']['kernel']) == P(None, 'fsdp')
    else:
        assert spec_of(blk['attn']['qkv']['kernel']) == P('fsdp', 'tensor')
        assert spec_of(blk['attn']['proj']['kernel']) == P('tensor', 'fsdp')
        assert spec_of(blk['attn']['q_bias']) == P('tensor')
        assert spec_of(blk['mlp']['fc1']['kernel']) == P('fsdp', 'tensor')
        assert spec_of(blk['mlp']['fc2']['kernel']) == P('tensor', 'fsdp')
    assert spec_of(blk['norm1']['scale']) == P(None)
    assert spec_of(p['encoder']['patch_embed']['kernel'])[-1] == 'fsdp'
    # The AdamW moments are sharded like their parameters.
    mu = state.opt_state[0].mu['encoder']['blocks'][0]['attn']['qkv']['kernel']
    assert spec_of(mu) == spec_of(blk['attn']['qkv']['kernel'])
    shard = blk['attn']['qkv']['kernel'].addressable_shards[0].data
    assert shard.size == blk['attn']['qkv']['kernel'].size // (4 if mesh_name == 'fsdp2x4' else 4)


# ------------------------------------------------------- fine-tuning step


def finetune_step_on(mesh_name: str, steps: int = 2):
    """The fine-tuning stage's step (erasing, mixup, soft-target CE) on a tiny classifier."""
    cfg = tiny_config(ft_common.finetune_config('vit_s'))
    cfg.num_classes = 10
    cfg.model.init_scale = 1.0
    local = {
        'video': video_batch(seed=3),
        'label': np.arange(8, dtype=np.int32) % 10,
        'erase_box': np.tile(np.array([[2, 3, 5, 6]], np.int32), (8, 1)),
    }
    return stage_step_on(Finetune(cfg), mesh_name, local, steps, seed=1)


def test_sharded_finetune_step_equals_single_device():
    ref_state, ref_losses = finetune_step_on('single')
    for name in ('fsdp2x4', 'tensor2x2x2'):
        state, losses = finetune_step_on(name)
        np.testing.assert_allclose(losses, ref_losses, rtol=RTOL)
        err = tree_rel_error(state.params, ref_state.params)
        assert err < RTOL, (name, err)
        print(f'finetune {name}: params rel err {err:.2e}')
        head = state.params['head']['kernel']
        assert spec_of(head)[0] == 'fsdp'


# ------------------------------------------------------- checkpoints


def test_checkpoint_from_one_mesh_restores_onto_another(tmp_path):
    stage = Pretrain(tiny_config())
    src_mesh, src_rules = mesh_of('data8')
    dst_mesh, dst_rules = mesh_of('fsdp2x4')
    saved = StateFactory(stage.build_model, adamw, src_mesh, src_rules, seed=0).create()
    saved = saved.replace(step=jnp.asarray(7, jnp.int32))
    assert spec_of(saved.params['encoder']['blocks'][0]['attn']['qkv']['kernel']) == P(None, None)

    ckpt = checkpointing.Checkpointer(str(tmp_path), async_save=False)
    ckpt.save(7, saved.as_dict(), data_state=b'{"next_index": 12}')
    ckpt.close()
    assert checkpointing.Checkpointer(str(tmp_path)).iterator_files(7) == ['process_0-of-1.json']

    # Another seed: restoring must overwrite every value.
    target = StateFactory(stage.build_model, adamw, dst_mesh, dst_rules, seed=5)
    ckpt = checkpointing.Checkpointer(str(tmp_path))
    restored, data = ckpt.restore(7, target.abstract.as_dict())
    ckpt.close()
    assert data == b'{"next_index": 12}'
    assert int(restored['step']) == 7
    same = jax.tree.map(
        lambda a, b: np.array_equal(np.asarray(a), np.asarray(b)), restored, saved.as_dict()
    )
    assert all(jax.tree.leaves(same))
    kernel = restored['params']['encoder']['blocks'][0]['attn']['qkv']['kernel']
    assert spec_of(kernel) == P('fsdp', None)
    assert kernel.sharding.mesh.shape == dst_mesh.shape


# ------------------------------------------------------- config / start-up


def test_default_rules_by_model_size():
    assert dict(config_common.pretrain_config('vit_b').mesh) == {'data': -1}
    g = vit_g_config.get_config()
    assert dict(g.mesh) == {'data': 1, 'fsdp': -1}
    # With a data-only mesh the default rules shard nothing (pure data parallel).
    mesh = AbstractMesh((8,), ('data',))
    for logical in (('embed', 'qkv'), ('heads', 'embed'), ('embed', 'mlp')):
        assert sharding.logical_to_spec(logical, (64, 64), mesh, config_common.SHARDING_RULES) == P(
            None, None
        )


def test_distributed_settings_single_process_is_a_no_op(monkeypatch):
    cfg = config_common.pretrain_config('vit_s')
    assert distributed.settings(cfg, environ={})['launch'] is None
    for name in ('JAX_COORDINATOR_ADDRESS', 'JAX_NUM_PROCESSES', 'JAX_PROCESS_ID', 'SLURM_JOB_ID'):
        monkeypatch.delenv(name, raising=False)
    assert not jax.distributed.is_initialized()
    assert distributed.initialize(cfg) is False
    assert not jax.distributed.is_initialized()
    env = {
        'JAX_COORDINATOR_ADDRESS': '10.0.0.1:1234',
        'JAX_NUM_PROCESSES': '4',
        'JAX_PROCESS_ID': '2',
    }
    s = distributed.settings(cfg, environ=env)
    assert (s['launch'], s['coordinator_address'], s['num_processes'], s['process_id']) == (
        'explicit',
        '10.0.0.1:1234',
        4,
        2,
    )
    cfg.distributed.process_id = 1  # the config wins over the environment
    assert distributed.settings(cfg, environ=env)['process_id'] == 1
    slurm = {'SLURM_JOB_ID': '7', 'SLURM_NTASKS': '16'}
    assert distributed.settings(cfg_without_pid(), environ=slurm)['launch'] == 'slurm'
    assert distributed.settings(cfg_without_pid(), environ={'SLURM_JOB_ID': '7'})['launch'] is None
    cfg.distributed.mode = 'off'
    assert distributed.settings(cfg, environ=env)['launch'] is None
    with pytest.raises(ValueError, match='process_id'):
        distributed.settings(None, environ={'JAX_NUM_PROCESSES': '2', 'JAX_PROCESS_ID': '2'})


def cfg_without_pid():
    return config_common.pretrain_config('vit_s')


def test_sharded_fraction_and_bytes_per_device():
    mesh, rules = mesh_of('fsdp2x4')
    params = {
        'w': jax.ShapeDtypeStruct((64, 32), jnp.float32),
        'b': jax.ShapeDtypeStruct((32,), jnp.float32),
    }
    sh = {
        'w': jax.sharding.NamedSharding(mesh, P('fsdp', None)),
        'b': jax.sharding.NamedSharding(mesh, P()),
    }
    assert sharding.sharded_fraction(params, sh) == pytest.approx(64 / 65)
    assert sharding.bytes_per_device(params, sh) == (64 * 32 // 4 + 32) * 4
    rows = sharding.describe(params, sh, min_bytes=1024)
    assert rows == [('w', (64, 32), P('fsdp', None))]


def test_state_factory_allocates_nothing():
    """Building the abstract state creates no device array (measured: jax.live_arrays)."""
    stage = Pretrain(tiny_config())
    mesh, rules = mesh_of('fsdp2x4')
    before = {id(a) for a in jax.live_arrays()}
    factory = StateFactory(stage.build_model, adamw, mesh, rules, 0)
    created = [a for a in jax.live_arrays() if id(a) not in before]
    assert created == []
    k = factory.abstract.params['encoder']['blocks'][0]['mlp']['fc1']['kernel']
    assert isinstance(k, jax.ShapeDtypeStruct) and k.sharding.spec == P('fsdp', None)
    state = factory.create()  # the real creation does allocate, sharded like the abstract
    assert state.params['encoder']['blocks'][0]['mlp']['fc1']['kernel'].sharding.spec == P(
        'fsdp', None
    )
