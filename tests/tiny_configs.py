"""Tiny models and run configs the tests share."""

from configs import common as config_common
from vmae2.models.config import ModelConfig

# A 2-block, 32-wide ViT with a 16-wide decoder (patch 16) for model-level tests.
TINY_SIZES = dict(
    width=32, depth=2, num_heads=2, mlp_dim=64, decoder_width=16, decoder_num_heads=2,
    decoder_mlp_dim=32,
)


def tiny_model(**fields) -> ModelConfig:
    """TINY_SIZES on 4 frames of 32x32 (a 2x2x2 token grid), float32."""
    return ModelConfig.create('vit_s', **{**TINY_SIZES, 'num_frames': 4, 'input_size': 32, **fields})


def tiny_pretrain_config(video_dir: str):
    """A 1-block, 32-wide VideoMAE V2 on 4 frames of 32x32 (a 2x4x4 token grid).

    Callers set the mesh, the schedule and the logging cadence they need.
    """
    c = config_common.pretrain_config('vit_s')
    c.model.num_frames = 4
    c.model.input_size = 32
    c.model.decoder_depth = 1
    c.model.overrides = dict(TINY_SIZES, depth=1, patch_size=8)
    c.masking.mask_ratio = 0.75
    c.data.video_dir = video_dir
    c.data.sampling_rate = 2
    c.data.num_sample = 2
    c.batch_size = 4  # videos per step -> 8 clips
    return c
