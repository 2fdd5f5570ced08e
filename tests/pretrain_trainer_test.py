"""The pre-training stage end to end on small made videos: resume, init_from,
skipping, non-finite stop, config errors, learning on a fixed batch."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import tiny_configs
from vmae2.core import build
from vmae2.core import loop
from vmae2.core import step as step_lib
from vmae2.core.state import StateFactory
from vmae2.errors import CheckpointError
from vmae2.ops import targets
from vmae2.runtime import checkpointing
from vmae2.runtime import sharding
from vmae2.trainers import registry
from vmae2.trainers.pretrain import Pretrain
from vmae2.weights import surgery


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
    return checkpointing.load_params(workdir)


def train(cfg, workdir):
    return registry.run(cfg, workdir)


class _Killed(Exception):
    pass


def test_kill_and_resume_equals_uninterrupted_run(video_dir, tmp_path, monkeypatch):
    # A list with an unreadable file: the skipped count must continue across the resume.
    listing = tmp_path / 'train.csv'
    corrupt = tmp_path / 'corrupt.mp4'
    corrupt.write_bytes(b'not a video')
    lines = [f'{video_dir}/v{i}.mp4 0 -1' for i in range(4)] + [f'{corrupt} 0 -1']
    listing.write_text('\n'.join(lines) + '\n')
    cfg = tiny_config(video_dir, log_every=1)
    cfg.data.update(video_dir='', train_list=str(listing))
    full = str(tmp_path / 'full')
    train(cfg, full)

    killed = str(tmp_path / 'killed')
    calls = {'n': 0}
    real = sharding.global_batch

    def dying_global_batch(local, mesh):
        calls['n'] += 1
        if calls['n'] == 6:  # step 5 never happens: the run dies after checkpoint 4
            raise _Killed()
        return real(local, mesh)

    monkeypatch.setattr(sharding, 'global_batch', dying_global_batch)
    with pytest.raises(_Killed):
        train(cfg, killed)
    monkeypatch.setattr(sharding, 'global_batch', real)
    assert checkpointing.latest_step_number(killed) == 4
    train(cfg, killed)  # the same command again resumes at step 4

    a, b = params_of(full), params_of(killed)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(x, y)  # bitwise
    rows = tiny_configs.train_rows(full)
    assert [r['step'] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert {'loss', 'lr', 'clips_per_sec', 'skipped_videos'} <= set(rows[0])
    # Step 5 was logged before the kill and again after the resume: once in the file;
    # the skipped-video count carries on from the checkpoint.
    again = tiny_configs.train_rows(killed)
    assert [r['step'] for r in again] == [1, 2, 3, 4, 5, 6]
    assert [r['skipped_videos'] for r in again] == [r['skipped_videos'] for r in rows]
    assert rows[-1]['skipped_videos'] > 0
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
    train(cfg, work)
    rows = tiny_configs.train_rows(work)
    assert rows[-1]['step'] == 4
    assert rows[-1]['skipped_videos'] > 0


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(video_dir, tmp_path, monkeypatch):
    cfg = tiny_config(video_dir)
    cfg.optim.total_steps = 2
    work = str(tmp_path / 'w')
    train(cfg, work)
    cfg.optim.total_steps = 6  # a longer schedule: accepted explicitly
    monkeypatch.setattr(targets, 'normalize', lambda v: v.astype(jnp.float32) * jnp.nan)
    with pytest.raises(FloatingPointError, match='last good checkpoint is step 2'):
        registry.run(cfg, work, allow_config_change=True)
    assert checkpointing.latest_step_number(work) == 2


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
        train(cfg, str(tmp_path / 'w'))


def test_missing_data_and_unknown_trainer(tmp_path):
    cfg = tiny_config('')
    with pytest.raises(ValueError, match='train_list'):
        train(cfg, str(tmp_path / 'w'))
    cfg.trainer = 'pretrian'
    with pytest.raises(ValueError, match="config.trainer 'pretrian'"):
        registry.run(cfg, str(tmp_path / 'w'))


def test_init_from_starts_pretraining_from_those_weights(video_dir, tmp_path, caplog):
    first = str(tmp_path / 'first')
    cfg = tiny_config(video_dir, seed=3)
    cfg.optim.total_steps = 2
    train(cfg, first)
    cfg = tiny_config(video_dir)  # another seed: fresh weights would differ
    cfg.init_from = first
    exp = build.build(cfg, Pretrain(cfg))
    ckpt = checkpointing.Checkpointer(str(tmp_path / 'second'))
    try:
        with caplog.at_level('INFO'):
            state, _ = loop.initial_state(exp, ckpt)
    finally:
        ckpt.close()
    assert int(state.step) == 0
    assert 'Metadata file does not exist' not in caplog.text  # no noise when it works
    assert 'init_from' in caplog.text and 'loaded' in caplog.text
    for x, y in zip(jax.tree.leaves(state.params), jax.tree.leaves(params_of(first))):
        np.testing.assert_array_equal(np.asarray(x), y)
    # The optimiser starts afresh: zero first moments.
    mu = optax.tree_utils.tree_get(state.opt_state, 'mu')
    assert jax.tree.leaves(mu) and all(not np.any(np.asarray(m)) for m in jax.tree.leaves(mu))


def test_init_from_in_pretraining_rejects_what_it_cannot_use(video_dir, tmp_path):
    cfg = tiny_config(video_dir)
    cfg.init_from = str(tmp_path / 'no_such_workdir')
    with pytest.raises(FileNotFoundError, match='no_such_workdir'):
        train(cfg, str(tmp_path / 'w'))
    classifier = {'encoder': {}, 'fc_norm': {'scale': np.ones(2)}, 'head': {'bias': np.ones(2)}}
    with pytest.raises(CheckpointError, match='classifier checkpoint'):
        surgery.transplant(classifier, {'decoder': {}, 'mask_token': np.zeros(2)})


def fixed_batch_step(cfg, make_tx, grad_accum_steps=1):
    """(state, jitted step) of the pre-training stage's own step on one device."""
    stage = Pretrain(cfg)
    factory = StateFactory(stage.build_model, make_tx, sharding.make_mesh({'data': -1}), {}, 0)
    step = step_lib.make_train_step(
        stage.loss, stage.prepare, factory.graphdef, factory.tx, optax.constant_schedule(0.0),
        grad_accum_steps,
    )
    return factory.create(), jax.jit(step)


def test_a_few_steps_lower_the_loss_on_a_fixed_batch():
    cfg = tiny_config('')
    adamw = optax.adamw(2e-3, b1=0.9, b2=0.95, weight_decay=0.05)
    state, step = fixed_batch_step(cfg, lambda p: adamw)
    # Smooth random clips (a learnable signal), the same batch and masks every step.
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (4, 1, 4, 4, 3)).astype(np.float32)
    video = jnp.asarray(np.kron(base, np.ones((1, 4, 8, 8, 1))).clip(0, 255).astype(np.uint8))
    losses = []
    for _ in range(30):
        state = state.replace(step=jnp.zeros((), jnp.int32))  # fixed masks
        state, m = step(state, {'video': video}, {})
        losses.append(float(m['loss']))
    assert losses[-1] < 0.8 * losses[0], losses


def test_gradient_accumulation_equals_one_big_step():
    cfg = tiny_config('')
    video = jnp.asarray(np.random.default_rng(3).integers(0, 256, (8, 4, 32, 32, 3), np.uint8))
    outs = []
    for k in (1, 4):
        # sgd(1): new params = params - gradient, so this compares gradients.
        state, step = fixed_batch_step(cfg, lambda p: optax.sgd(1.0), grad_accum_steps=k)
        new_state, m = step(state, {'video': video}, {})
        outs.append((new_state.params, float(m['loss'])))
    assert outs[0][1] == pytest.approx(outs[1][1], rel=1e-5)
    for a, b in zip(jax.tree.leaves(outs[0][0]), jax.tree.leaves(outs[1][0])):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_checkpoints_without_the_state_key_still_restore(video_dir, tmp_path):
    """Checkpoints written before TrainState carried `rng` ({step, params, opt_state})
    restore: the key is the one the seed gives, which those runs drew from."""
    cfg = tiny_config(video_dir, seed=4)
    exp = build.build(cfg, Pretrain(cfg))
    state = exp.factory.create()
    old = {k: v for k, v in state.as_dict().items() if k != 'rng'}
    ckpt = checkpointing.Checkpointer(str(tmp_path), async_save=False)
    try:
        ckpt.save(3, old)
        assert ckpt.state_keys(3) == {'step', 'params', 'opt_state'}
        restored, _ = loop.restore(exp, ckpt, 3)
    finally:
        ckpt.close()
    np.testing.assert_array_equal(np.asarray(restored.rng), np.asarray(jax.random.key_data(jax.random.key(4))))
    for x, y in zip(jax.tree.leaves(restored.params), jax.tree.leaves(state.params)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
