"""End to end through registry.run (what main.py calls) on small made videos:
pretrain -> fine-tune -> evaluate -> distil -> extract features."""

import csv
import json
import os

import jax
import numpy as np
import pytest

from configs import common as config_common
from configs import evaluate as evaluate_config
from configs import extract_features as features_config
from configs.distill import k710 as distill_config
from configs.finetune import common as ft_common
from data_pipelines import testing as data_testing
from tiny_configs import TINY_SIZES
from vmae2.core import build
from vmae2.core import loop
from vmae2.errors import CheckpointError
from vmae2.runtime import checkpointing
from vmae2.tools import predict
from vmae2.trainers import registry

TINY = dict(TINY_SIZES, patch_size=8)
# The data fields the evaluation and distillation configs take from fine-tuning.
DATA_KEYS = (
    'data_path', 'data_root', 'label_names', 'sampling_rate', 'test_num_segment',
    'test_num_crop', 'read_threads',
)


def shrink(c, **overrides):
    c.model.num_frames = 4
    c.model.input_size = 32
    c.model.decoder_depth = 1
    c.model.overrides = dict(TINY, **overrides)
    return c


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
    """8 videos, 2 classes told apart by colour; val = 4 of them + one broken file."""
    d = tmp_path_factory.mktemp('labeled')
    lines = []
    for i in range(8):
        label = i % 2
        data_testing.write_test_video(
            str(d / f'v{i}.mp4'), num_frames=24, width=48, height=40, first_code=32 * label + i
        )
        lines.append(f'v{i}.mp4 {label}')
    (d / 'broken.mp4').write_bytes(b'not a video')
    (d / 'train.csv').write_text('\n'.join(lines) + '\n')
    (d / 'val.csv').write_text('\n'.join(lines[:4] + ['broken.mp4 1']) + '\n')
    (d / 'names.txt').write_text('dark\nbright\n')
    return str(d)


def finetune_cfg(data_dir, variant='vit_s', trainer='finetune', seed=0, **model_overrides):
    c = shrink(ft_common.finetune_config(variant), **model_overrides)
    c.trainer = trainer
    c.seed = seed
    c.data.data_path = data_dir
    c.data.data_root = data_dir
    c.data.label_names = os.path.join(data_dir, 'names.txt')
    c.data.sampling_rate = 2
    c.data.test_num_segment = 2
    c.data.test_num_crop = 2
    c.data.read_threads = 1
    c.batch_size = 4  # 8 clips: one per fake device
    c.eval_batch_size = 8
    c.optim.update(total_steps=4, warmup_steps=1, base_lr=0.05)
    c.log_every = c.checkpoint_every = c.eval_every = 2
    return c


def rows(workdir):
    return [json.loads(line) for line in open(os.path.join(workdir, 'metrics.jsonl'))]


def test_pretrain_finetune_evaluate_distill_extract(data_dir, tmp_path, capsys):
    # 1. pre-training (tiny) on the training videos.
    pre = config_common.pretrain_config('vit_s')
    shrink(pre)
    pre.masking.mask_ratio = 0.75
    pre.data.video_dir = data_dir
    pre.data.sampling_rate = 2
    pre.data.num_sample = 2
    pre.batch_size = 4
    pre.optim.total_steps = 2
    pre.optim.warmup_steps = 1
    pre.log_every = 1
    pre.checkpoint_every = 2
    pre_dir = str(tmp_path / 'pretrain')
    registry.run(pre, pre_dir)

    # 2. fine-tuning from it.
    ft = finetune_cfg(data_dir)
    ft.init_from = pre_dir
    ft_dir = str(tmp_path / 'finetune')
    out = registry.run(ft, ft_dir)
    assert np.isfinite(out['loss']) and np.isfinite(out['test_top1'])
    r = rows(ft_dir)
    assert any('val_top1' in x for x in r)
    final = [x for x in r if 'test_top1' in x][-1]
    assert final['step'] == 4 and final['test_videos'] == 4
    assert final['test_unreadable_videos'] == 1  # broken.mp4
    assert 0 <= final['test_top1'] <= final['test_top5'] <= 100
    with open(os.path.join(ft_dir, 'predictions.csv')) as f:
        pred = list(csv.DictReader(f))
    assert len(pred) == 4 and pred[0]['label'] in ('dark', 'bright')
    probs = [float(pred[0]['prob1']), float(pred[0]['prob2'])]
    assert abs(sum(probs) - 1) < 1e-4 and probs[0] >= probs[1]
    # The encoder really came from the pre-training run: a fresh fine-tuning run's
    # initial encoder equals the pre-trained one, its head does not come from there.
    pre_params = checkpointing.load_params(pre_dir)
    fresh_ft = finetune_cfg(data_dir, seed=7)
    fresh_ft.init_from = pre_dir
    exp = build.build(fresh_ft, registry.stage_for(fresh_ft))
    ckpt = checkpointing.Checkpointer(str(tmp_path / 'fresh'))
    try:
        first = loop.initial_state(exp, ckpt)[0].params
    finally:
        ckpt.close()
    for part in ('patch_embed', 'blocks'):
        a = jax.tree.leaves(first['encoder'][part])
        b = jax.tree.leaves(pre_params['encoder'][part])
        assert len(a) == len(b) > 0
        for x, y in zip(a, b):
            np.testing.assert_array_equal(np.asarray(x), y)
    # A checkpoint of another size is refused, naming both sizes.
    wrong = finetune_cfg(data_dir, width=16)
    wrong.init_from = pre_dir
    with pytest.raises(CheckpointError, match='shape mismatches: the checkpoint is'):
        registry.run(wrong, str(tmp_path / 'wrong'))

    # predict: one video, the same multi-view protocol, the row of predictions.csv.
    probs = predict.predict(
        os.path.join(data_dir, 'v0.mp4'), ft_dir, num_segments=2, num_crops=2, sampling_rate=2
    )
    assert probs.shape == (2,) and abs(probs.sum() - 1) < 1e-5
    row = [p for p in pred if p['video'].endswith('v0.mp4')][0]
    assert float(row['prob1']) == pytest.approx(float(probs.max()), abs=1e-4)
    predict.main(
        [
            os.path.join(data_dir, 'v0.mp4'),
            '--checkpoint',
            ft_dir,
            '--num-segments',
            '2',
            '--num-crops',
            '2',
            '--sampling-rate',
            '2',
            '--labels',
            os.path.join(data_dir, 'names.txt'),
        ]
    )
    assert 'dark' in capsys.readouterr().out

    # A finished workdir: running again only re-runs the test protocol.
    again = registry.run(ft, ft_dir)
    assert again['test_top1'] == out['test_top1']

    # 3. evaluate the fine-tuned checkpoint alone: same numbers.
    ev = shrink(evaluate_config.get_config('k400,vit_s'))
    ev.num_classes = 0  # from the label names
    ev.init_from = ft_dir
    for k in DATA_KEYS:
        ev.data[k] = ft.data[k]
    ev.eval_batch_size = 8
    ev_dir = str(tmp_path / 'evaluate')
    m = registry.run(ev, ev_dir)
    assert m['test_top1'] == pytest.approx(out['test_top1'])
    assert m['test_top5'] == pytest.approx(out['test_top5'])
    assert os.path.exists(os.path.join(ev_dir, 'predictions.csv'))

    # 4. distil the fine-tuned model (teacher, 2 blocks) into a 1-block student
    #    with a wider-than-student feature loss (projection).
    dc = distill_config.get_config('vit_s')
    shrink(dc, depth=1, width=16, mlp_dim=32)
    for k in DATA_KEYS:
        dc.data[k] = ft.data[k]
    dc.num_classes = 0
    dc.batch_size, dc.eval_batch_size = 4, 8
    dc.optim.total_steps, dc.optim.warmup_steps, dc.optim.base_lr = 2, 1, 0.05
    dc.log_every = dc.checkpoint_every = 2
    dc.teacher = ft_dir
    dc.teacher_model.variant = 'vit_s'
    dc.teacher_model.overrides = dict(TINY)
    dc.distill.temperature = 2.0
    dc.distill.label_weight = 0.5
    dc.distill.feature_weight = 1.0
    dist_dir = str(tmp_path / 'distill')
    d = registry.run(dc, dist_dir)
    assert np.isfinite(d['loss']) and np.isfinite(d['test_top1'])
    saved = checkpointing.load_params(dist_dir)
    assert saved['distill_proj']['kernel'].shape == (16, 32)

    # 5. TAD features from the fine-tuned model: windows of num_frames=4 every 4 frames
    #    of 24 -> floor((24 - 4) / 4) + 1 = 6 per video.
    fc = shrink(features_config.get_config('thumos14'))
    fc.model.variant = 'vit_s'
    fc.init_from = ft_dir
    fc.data.video_dir = data_dir
    fc.output_dir = str(tmp_path / 'features')
    fc.batch_size = 4
    f_dir = str(tmp_path / 'extract')
    counts = registry.run(fc, f_dir)
    assert counts == {'written': 8, 'skipped_existing': 0, 'unreadable': 1}
    feat = np.load(os.path.join(fc.output_dir, 'v0.npy'))
    assert feat.shape == (6, 32) and feat.dtype == np.float32 and np.isfinite(feat).all()
    # A re-run skips the finished videos.
    counts = registry.run(fc, f_dir)
    assert counts['skipped_existing'] == 8 and counts['written'] == 0
