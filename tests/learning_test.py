"""Fine-tuning can fit what it trains on: the fit check (configs/finetune/fit_check.py)
on a tiny made set, and the pieces it stands on."""

import json
import os

import numpy as np

from data_pipelines import synthetic
from configs.finetune import fit_check
from data_pipelines.records import VideoRecord
from tiny_configs import TINY_SIZES
from vmae2.core import data
from vmae2.trainers import registry


def test_class_balanced_subset_takes_classes_in_turn_in_list_order():
    labels = [0, 0, 0, 1, 2, 2, 1, 0]
    records = [VideoRecord(f'v{i}', label=y) for i, y in enumerate(labels)]
    # Rank 0 of each class: v0 (0), v3 (1), v4 (2); rank 1: v1 (0), v6 (1), v5 (2).
    picked = data.class_balanced_subset(records, 5)
    assert [r.path for r in picked] == ['v0', 'v1', 'v3', 'v4', 'v6']
    assert data.class_balanced_subset(records, 0) == records
    assert data.class_balanced_subset(records, 99) == records


def test_the_fit_check_fits_a_tiny_made_set(tmp_path):
    root = synthetic.make_dataset(str(tmp_path / 'data'), {'train': 3, 'val': 1})
    c = fit_check.get_config('vit_s')
    c.model.update(num_frames=4, input_size=32, decoder_depth=1)
    c.model.overrides = dict(TINY_SIZES, patch_size=8, width=64, mlp_dim=128)
    c.data.update(data_path=root, data_root=root, sampling_rate=4, read_threads=1)
    c.data.train_subset = 16  # 2 per class
    c.eval_batch_size = 16
    c.optim.update(total_steps=160, warmup_steps=10, base_lr=0.1)
    c.log_every = 20
    work = str(tmp_path / 'w')
    out = registry.run(c, work)
    rows = [json.loads(line) for line in open(os.path.join(work, 'metrics.jsonl'))]
    fit = [r for r in rows if 'fit_top1' in r]
    assert len(fit) == 1 and fit[0]['fit_videos'] == 16
    assert out['fit_top1'] >= 95.0


def test_made_videos_move_in_their_class_direction():
    # The background is static, so frame differences hold only the moving shapes; the
    # difference image 4 frames later is the earlier one shifted by the motion, and the
    # peak of their circular cross-correlation (by FFT) reads that shift from pixels.
    want = {'right': (0, 1), 'left': (0, -1), 'up': (-1, 0), 'down': (1, 0)}
    rng = np.random.default_rng(0)
    side = synthetic.SIDE
    for label, name in enumerate(synthetic.CLASSES):
        video = synthetic.render(label, rng).astype(np.float64).mean(-1)
        assert video.shape == (synthetic.FRAMES, side, side)
        d = np.diff(video, axis=0)
        corr = np.fft.ifft2(np.fft.fft2(d[10]).conj() * np.fft.fft2(d[14])).real
        dy, dx = np.unravel_index(np.argmax(corr), corr.shape)
        dy, dx = (dy + side // 2) % side - side // 2, (dx + side // 2) % side - side // 2
        assert 4 <= abs(dy) + abs(dx) <= 6, (name, dy, dx)  # 1-1.5 pixels a frame
        assert (int(np.sign(dy)), int(np.sign(dx))) == want[name.split('_')[1]], (name, dy, dx)
