"""The pre-training trainer end to end on small made videos: resume, skipping,
non-finite stop, config errors, learning on a fixed batch."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from data_pipelines import testing as data_testing
import tiny_configs
from vmae2 import checkpointing
from vmae2 import targets
from vmae2.trainers import common
from vmae2.trainers import pretrain
from vmae2.trainers import registry


@pytest.fixture(scope='module')
def video_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp('videos')
    for i in range(4):
        data_testing.write_test_video(
            str(d / f'v{i}.mp4'), num_frames=40, width=48, height=40, first_code=i * 3
        )
    return str(d)


def tiny_config(video_dir, **overrides):
    c = tiny_configs.tiny_pretrain_config(video_dir)  # 8 clips: one per fake CPU device
    c.mesh = {'data': -1}
    c.optim.base_lr = 1.0
    c.optim.total_steps = 6
    c.optim.warmup_steps = 2
    c.log_every = 2
    c.checkpoint_every = 2
    for k, v in overrides.items():
        c[k] = v
    return c


def params_of(workdir):
    return checkpointing.load_state(workdir)['params']


class _Killed(Exception):
    pass


def test_kill_and_resume_equals_uninterrupted_run(video_dir, tmp_path, monkeypatch):
    cfg = tiny_config(video_dir)
    full = str(tmp_path / 'full')
    pretrain.train(cfg, full)

    killed = str(tmp_path / 'killed')
    calls = {'n': 0}
    real = common.global_batch

    def dying_global_batch(local, mesh):
        calls['n'] += 1
        if calls['n'] == 6:  # step 5 never happens: the run dies after checkpoint 4
            raise _Killed()
        return real(local, mesh)

    monkeypatch.setattr(common, 'global_batch', dying_global_batch)
    with pytest.raises(_Killed):
        pretrain.train(cfg, killed)
    monkeypatch.setattr(common, 'global_batch', real)
    assert checkpointing.latest_state_dir(killed).endswith('/4/state')
    pretrain.train(cfg, killed)  # the same command again resumes at step 4

    a, b = params_of(full), params_of(killed)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(x, y)  # bitwise
    rows = [json.loads(line) for line in open(os.path.join(full, 'metrics.jsonl'))]
    assert [r['step'] for r in rows] == [2, 4, 6]
    assert {'loss', 'lr', 'clips_per_sec', 'skipped_videos'} <= set(rows[0])
    assert any(f.startswith('reconstruction_') for f in os.listdir(full))
    assert os.listdir(os.path.join(full, 'tensorboard'))


def test_unreadable_videos_are_skipped_and_counted(video_dir, tmp_path):
    corrupt = tmp_path / 'corrupt.mp4'
    corrupt.write_bytes(b'not a video at all')
    listing = tmp_path / 'train.csv'
    names = [f'v{i}.mp4' for i in range(4)] + ['missing.mp4']
    lines = [f'{video_dir}/{n} 0 -1' for n in names] + [f'{corrupt} 0 -1']
    listing.write_text('\n'.join(lines) + '\n')
    cfg = tiny_config(video_dir)
    cfg.data.video_dir = ''
    cfg.data.train_list = str(listing)
    cfg.optim.total_steps = 4
    work = str(tmp_path / 'w')
    pretrain.train(cfg, work)
    rows = [json.loads(line) for line in open(os.path.join(work, 'metrics.jsonl'))]
    assert rows[-1]['step'] == 4
    assert rows[-1]['skipped_videos'] > 0


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(video_dir, tmp_path, monkeypatch):
    cfg = tiny_config(video_dir)
    cfg.optim.total_steps = 2
    work = str(tmp_path / 'w')
    pretrain.train(cfg, work)
    cfg.optim.total_steps = 6
    monkeypatch.setattr(targets, 'normalize', lambda v: v.astype(jnp.float32) * jnp.nan)
    with pytest.raises(FloatingPointError, match='last good checkpoint is step 2'):
        pretrain.train(cfg, work)
    assert checkpointing.latest_state_dir(work).endswith('/2/state')


@pytest.mark.parametrize(
    'field,value,message',
    [
        ('masking.decoder_mask_ratio', 0.6, 'running-cell masking supports'),
        ('model.input_size', 36, 'multiple of the patch size'),
        ('dtype', 'float16', "dtype 'float16'"),
        ('model.remat_policy', 'some', "remat_policy 'some'"),
    ],
)
def test_bad_configs_fail_with_clear_errors(video_dir, tmp_path, field, value, message):
    cfg = tiny_config(video_dir)
    section, _, name = field.rpartition('.')
    (cfg[section] if section else cfg)[name] = value
    with pytest.raises(ValueError, match=message):
        pretrain.train(cfg, str(tmp_path / 'w'))


def test_missing_data_and_unknown_trainer(tmp_path):
    cfg = tiny_config('')
    with pytest.raises(ValueError, match='train_list'):
        pretrain.train(cfg, str(tmp_path / 'w'))
    cfg.trainer = 'pretrian'
    with pytest.raises(ValueError, match="config.trainer 'pretrian'"):
        registry.run(cfg, str(tmp_path / 'w'))


def test_a_few_steps_lower_the_loss_on_a_fixed_batch():
    cfg = tiny_config('')
    spec = common.model_spec(cfg)
    mspec = pretrain.mask_spec(cfg, spec)
    mesh = common.make_mesh(cfg)
    sched = optax.constant_schedule(2e-3)

    def make_tx(params):
        return optax.adamw(sched, b1=0.9, b2=0.95, weight_decay=0.05)

    state, shardings, graphdef, tx = common.create_state(
        pretrain.build_model(cfg, spec), make_tx, mesh, {}, 0
    )
    loss_fn = pretrain.make_loss_fn(
        graphdef, spec, mspec, dtype=jnp.float32, normalize_target=True, drop_path=False
    )
    step = jax.jit(pretrain.make_train_step(loss_fn, tx, sched, mspec, seed=0))
    # Smooth random clips (a learnable signal), the same batch and masks every step.
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (4, 1, 4, 4, 3)).astype(np.float32)
    video = jnp.asarray(np.kron(base, np.ones((1, 4, 8, 8, 1))).clip(0, 255).astype(np.uint8))
    losses = []
    for _ in range(30):
        state = dict(state, step=jnp.zeros((), jnp.int32))  # fixed masks
        state, m = step(state, {'video': video})
        losses.append(float(m['loss']))
    assert losses[-1] < 0.8 * losses[0], losses


def test_gradient_accumulation_equals_one_big_step():
    cfg = tiny_config('')
    spec = common.model_spec(cfg)
    mspec = pretrain.mask_spec(cfg, spec)
    mesh = common.make_mesh(cfg)
    sched = optax.constant_schedule(1.0)

    def make_tx(params):
        return optax.sgd(sched)  # new params = params - gradient: compares gradients

    state, _, graphdef, tx = common.create_state(
        pretrain.build_model(cfg, spec), make_tx, mesh, {}, 0
    )
    loss_fn = pretrain.make_loss_fn(
        graphdef, spec, mspec, dtype=jnp.float32, normalize_target=True, drop_path=False
    )
    video = jnp.asarray(np.random.default_rng(3).integers(0, 256, (8, 4, 32, 32, 3), np.uint8))
    outs = []
    for k in (1, 4):
        step = jax.jit(
            pretrain.make_train_step(loss_fn, tx, sched, mspec, seed=0, grad_accum_steps=k)
        )
        new_state, m = step(jax.tree.map(jnp.copy, state), {'video': video})
        outs.append((new_state['params'], float(m['loss'])))
    assert outs[0][1] == pytest.approx(outs[1][1], rel=1e-5)
    for a, b in zip(jax.tree.leaves(outs[0][0]), jax.tree.leaves(outs[1][0])):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
