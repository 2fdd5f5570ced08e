"""Classify one video with a fine-tuned checkpoint (multi-view, spec 5.4).

python -m vmae2.predict VIDEO --checkpoint W [--labels label_map_k710.txt]
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
import sys
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from data_pipelines import finetune_pipeline
from data_pipelines import labels as labels_lib
from vmae2 import init_from as init_lib
from vmae2 import targets
from vmae2.models import classifier as classifier_model
from vmae2.models import pretrain as pretrain_model


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
      ValueError: an unreadable video, no model variant known, or a checkpoint
        without a head.
    """
    params_src, meta = init_lib.read_source(checkpoint)
    variant = model or meta.get('variant')
    if not variant:
        raise ValueError(f'{checkpoint}: no recorded model size; pass --model vit_b')
    overrides = {} if model else dict(meta.get('overrides') or {})
    spec = pretrain_model.PretrainSpec(
        variant=variant,
        num_frames=num_frames or int(meta.get('num_frames', 16)),
        input_size=input_size or int(meta.get('input_size', 224)),
        tubelet_size=int(meta.get('tubelet_size', 2)),
        overrides=tuple(sorted(overrides.items())),
    )
    if 'head' not in params_src:
        raise ValueError(f'{checkpoint} has no classifier head (a pre-training checkpoint?)')
    classes = int(np.asarray(params_src['head']['kernel']).shape[-1])
    abstract = nnx.eval_shape(lambda: classifier_model.Classifier(spec, classes, rngs=nnx.Rngs(0)))
    graphdef, _ = nnx.split(abstract)
    target = nnx.to_pure_dict(nnx.state(abstract, nnx.Param))
    params, _ = init_lib.transplant(params_src, target, require_head=True)

    transform = finetune_pipeline.EvalVideoTransform(
        spec.num_frames, sampling_rate, spec.input_size, num_segments, num_crops, 'test', sampler
    )
    views = num_segments * num_crops
    record = labels_lib.ClsRecord(video, 0)
    row = transform.map((0, record, views))
    if not row['valid'].all():
        raise ValueError(f'cannot read video {video} (see the warning above)')
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
    names = labels_lib.read_label_names(args.labels) if args.labels else None
    for rank, c in enumerate(np.argsort(-probs, kind='stable')[: args.top], start=1):
        name = names[c] if names else str(c)
        print(f'{rank}  {probs[c]:.4f}  {name}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
