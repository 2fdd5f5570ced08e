"""What tells a user whether a run learns: the loss baseline, the kNN probe,
train_top1, and a reconstruction picture that cannot flatter a model."""

import json
import os

import jax.numpy as jnp
import numpy as np
import pytest

import tiny_configs
from vmae2.core import visualize
from vmae2.core.supervised import SupervisedStage
from vmae2.ops import losses
from vmae2.ops import targets
from vmae2.trainers import registry
from vmae2.trainers.pretrain import Pretrain


@pytest.mark.parametrize('patch,tubelet', [(16, 2), (4, 2), (8, 1)])
def test_loss_baseline_is_the_zero_prediction_loss(patch, tubelet):
    cfg = tiny_configs.tiny_pretrain_config('')
    cfg.model.overrides = dict(cfg.model.overrides, patch_size=patch)
    cfg.model.update(input_size=2 * patch, tubelet_size=tubelet)
    stage = Pretrain(cfg)
    p = tubelet * patch * patch
    assert stage.loss_baseline({}) == pytest.approx((p - 1) / p)
    # ... which is what predicting zeros scores on normalised targets of real pixels.
    video = np.random.default_rng(0).integers(0, 256, (2, 4, 2 * patch, 2 * patch, 3), np.uint8)
    t = targets.pixel_targets(targets.normalize(jnp.asarray(video)), patch, tubelet)
    zero = losses.masked_mse(jnp.zeros_like(t), t, jnp.ones(t.shape[:2]))
    assert float(zero) == pytest.approx((p - 1) / p, rel=1e-4)


def test_raw_target_baseline_is_the_mean_square_of_the_first_batch():
    cfg = tiny_configs.tiny_pretrain_config('')
    cfg.normalize_target = False
    video = np.full((2, 4, 32, 32, 3), 255, np.uint8)  # white: every raw target is 1
    assert Pretrain(cfg).loss_baseline({'video': video}) == pytest.approx(1.0, rel=1e-6)


def test_train_top1_counts_rows_whose_argmax_is_the_unmixed_label():
    logits = jnp.array([[2.0, 1.0], [0.0, 3.0], [5.0, 0.0]])
    assert float(SupervisedStage.correct(logits, jnp.array([0, 0, 0]))) == 200.0  # 2 of 3


def test_a_zero_prediction_is_flat_in_the_normalised_rows_only():
    rng = np.random.default_rng(1)
    video = rng.integers(0, 256, (2, 16, 16, 3), np.uint8)
    visible, decode = np.array([0, 3]), np.array([1, 2])
    rows = visualize.reconstruct_clip(
        video, visible, decode, np.zeros((2, 2 * 8 * 8 * 3)), patch_size=8, tubelet_size=2
    )
    hidden = np.s_[:, :8, 8:]  # token 1: the top-right patch
    assert np.all(rows['prediction (normalised)'][hidden] == 128)  # nothing learned: grey
    assert rows['target (normalised)'][hidden].std() > 10  # the target has structure
    # The reconstruction row borrows the patch's own mean: each channel flat at the
    # original's mean there, whatever the model knows.
    recon = rows['reconstruction'][hidden].reshape(-1, 3).astype(float)
    truth = video[hidden].reshape(-1, 3).astype(float)
    np.testing.assert_allclose(recon.mean(0), truth.mean(0), atol=1.0)
    assert recon.std(0).max() < 1.0 < truth.std(0).min()
    image = visualize.grid_image({'original': video, **rows})
    assert image.shape[0] > 5 * 128 and image.dtype == np.uint8


def test_a_pretraining_run_logs_the_baseline_and_a_finite_probe(video_dir, tmp_path):
    lists = tmp_path / 'lists'
    lists.mkdir()
    for split in ('train', 'val'):
        (lists / f'{split}.csv').write_text(
            ''.join(f'{video_dir}/v{i}.mp4 {i % 2}\n' for i in range(4))
        )
    cfg = tiny_configs.tiny_pretrain_config(video_dir)
    cfg.mesh = {'data': -1}
    cfg.optim.update(total_steps=2, warmup_steps=1)
    cfg.probe.update(train_list=str(lists / 'train.csv'), val_list=str(lists / 'val.csv'))
    cfg.probe.update(sampling_rate=2, batch_size=8, k=3)
    work = str(tmp_path / 'w')
    out = registry.run(cfg, work)
    rows = [json.loads(line) for line in open(os.path.join(work, 'metrics.jsonl'))]
    assert rows[0] == {'step': 0, 'loss_baseline': pytest.approx(127 / 128)}
    probe = [r for r in rows if 'probe_knn_top1' in r]
    # Step 0 (the random-init reference) and the end.
    assert [r['step'] for r in probe] == [0, 2]
    assert all(0.0 <= r['probe_knn_top1'] <= 100.0 for r in probe)
    assert out['probe_knn_top1'] == probe[-1]['probe_knn_top1']


@pytest.mark.parametrize('loss,step,want', [
    (0.958, 30, False),  # 0.9889 x baseline: more than 1 % below
    (0.962, 30, True),  # 0.9928 x: not yet 1 % below
    (1.662, 30, True),  # above the baseline: not learning either
    (1.662, 24, False),  # within the first quarter of 100 steps: too early to say
])
def test_the_flat_loss_warning(loss, step, want, caplog):
    from vmae2.core import loop

    assert loop._warn_if_flat(loss, 0.96875, step, 100) is want
    assert ('not yet 1 % below loss_baseline' in caplog.text) is want
