"""The tiny pre-training config the trainer, multi-host and fast-format tests share."""

from configs import common as config_common


def tiny_pretrain_config(video_dir: str):
    """A 1-block, 32-wide VideoMAE V2 on 4 frames of 32x32 (a 2x4x4 token grid).

    Callers set the mesh, the schedule and the logging cadence they need.
    """
    c = config_common.pretrain_config('vit_s')
    c.model.num_frames = 4
    c.model.input_size = 32
    c.model.decoder_depth = 1
    c.model.overrides = dict(
        width=32,
        depth=1,
        num_heads=2,
        mlp_dim=64,
        patch_size=8,
        decoder_width=16,
        decoder_num_heads=2,
        decoder_mlp_dim=32,
    )
    c.masking.mask_ratio = 0.75
    c.data.video_dir = video_dir
    c.data.sampling_rate = 2
    c.data.num_sample = 2
    c.batch_size = 4  # videos per step -> 8 clips
    return c
