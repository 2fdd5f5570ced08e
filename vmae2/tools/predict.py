"""Classify one video with a fine-tuned checkpoint (multi-view, spec 5.4).

python -m vmae2.tools.predict VIDEO --checkpoint W [--labels label_map_k710.txt]
    [--num-segments 5 --num-crops 3] [--sampling-rate 4] [--top 5]

W: a fine-tuning workdir, a converted directory (python -m vmae2.convert) or an
official classifier file (then give --model vit_b). The model size and input
shape come from the checkpoint's record (config.json / model.json) unless given.
The clip views are the official test views (every `sampling_rate`-th frame, short
side resized to the input size, `num_segments` clips x `num_crops` crops); the
softmax of each view is averaged. Prints `rank  probability  class` lines.
"""

from __future__ import annotations

import argparse
import logging
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from data_pipelines import sources
from data_pipelines import transforms
from data_pipelines.records import VideoRecord
from vmae2.core.state import param_tree
from vmae2.errors import CheckpointError
from vmae2.errors import ConfigError
from vmae2.errors import DataError
from vmae2.models.classifier import Classifier
from vmae2.models.config import ModelConfig
from vmae2.ops import targets
from vmae2.weights import files
from vmae2.tools.cli import run_cli
from vmae2.weights import surgery


def predict(
    video: str,
    checkpoint: str,
    *,
    num_segments: int = 5,
    num_crops: int = 3,
    sampling_rate: int = 4,
    model: str = '',
    num_frames: int = 0,
    input_size: int = 0,
    sampler: str = 'dense',
    batch_size: int = 8,
) -> np.ndarray:
    """Mean softmax over the test views of one video.

    Returns:
      float32 [classes] probabilities.

    Raises:
      DataError: an unreadable video. ConfigError: no model variant known.
      CheckpointError: a checkpoint without a head.
    """
    params_src, meta = files.read_source(checkpoint)
    variant = model or meta.get('variant')
    if not variant:
        raise ConfigError(f'{checkpoint}: no recorded model size; pass --model vit_b')
    overrides = {} if model else dict(meta.get('overrides') or {})
    cfg = ModelConfig.create(
        variant, **overrides, num_frames=num_frames or int(meta.get('num_frames', 16)),
        input_size=input_size or int(meta.get('input_size', 224)),
        tubelet_size=int(meta.get('tubelet_size', 2)),
    )
    if 'head' not in params_src:
        raise CheckpointError(f'{checkpoint} has no classifier head (a pre-training checkpoint?)')
    classes = int(np.asarray(params_src['head']['kernel']).shape[-1])
    abstract = nnx.eval_shape(lambda: Classifier(cfg, classes, rngs=nnx.Rngs(0)))
    graphdef, _ = nnx.split(abstract)
    params, _ = surgery.transplant(params_src, param_tree(abstract), require_head=True)

    transform = transforms.EvalTransform(
        num_frames=cfg.num_frames, sampling_rate=sampling_rate, input_size=cfg.input_size,
        test_num_segment=num_segments, test_num_crop=num_crops, mode='test', sampler=sampler,
    )
    views = num_segments * num_crops
    row = transform.map((0, VideoRecord(video, 0), views))
    if not row['valid'].all():
        raise DataError(f'cannot read video {video} (see the warning above)')
    clips = row['video']

    @jax.jit
    def probs_fn(p, v):
        m = nnx.merge(graphdef, nnx.State(p))
        return jax.nn.softmax(m(targets.normalize(v)), axis=-1)

    out = []
    for i in range(0, views, batch_size):
        out.append(np.asarray(probs_fn(params, jnp.asarray(clips[i : i + batch_size]))))
    return np.concatenate(out).mean(axis=0)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument('video')
    ap.add_argument('--checkpoint', required=True)
    ap.add_argument('--labels', default='', help='class names, one per line')
    ap.add_argument('--num-segments', type=int, default=5)
    ap.add_argument('--num-crops', type=int, default=3)
    ap.add_argument('--sampling-rate', type=int, default=4)
    ap.add_argument('--model', default='', help='vit_s/b/l/h/g if not recorded')
    ap.add_argument('--num-frames', type=int, default=0)
    ap.add_argument('--input-size', type=int, default=0)
    ap.add_argument('--top', type=int, default=5)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    probs = predict(
        args.video,
        args.checkpoint,
        num_segments=args.num_segments,
        num_crops=args.num_crops,
        sampling_rate=args.sampling_rate,
        model=args.model,
        num_frames=args.num_frames,
        input_size=args.input_size,
    )
    names = sources.read_label_names(args.labels) if args.labels else None
    if names is not None and len(names) != len(probs):
        raise DataError(
            f'{args.labels} names {len(names)} classes but the checkpoint head has {len(probs)}: '
            'pass the label file the model was trained with'
        )
    for rank, c in enumerate(np.argsort(-probs, kind='stable')[: args.top], start=1):
        name = names[c] if names else str(c)
        print(f'{rank}  {probs[c]:.4f}  {name}')
    return 0


if __name__ == '__main__':
    run_cli(main)
