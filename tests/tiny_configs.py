"""Tiny models and run configs the tests share."""

from configs import smoke
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
    """configs/smoke.py (a 1-block, 32-wide model on 4 frames of 32x32) on `video_dir`.

    Callers set the mesh, the schedule and the logging cadence they need.
    """
    c = smoke.get_config()
    c.data.video_dir = video_dir
    return c


def train_rows(workdir: str) -> list[dict]:
    """The training rows of {workdir}/metrics.jsonl (those with a loss; the step-0
    row holds loss_baseline, evaluators add their own rows)."""
    import json
    import os

    with open(os.path.join(workdir, 'metrics.jsonl')) as f:
        return [r for r in map(json.loads, f) if 'loss' in r]
