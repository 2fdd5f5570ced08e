"""TAD feature extraction (official extract_tad_feature.py, spec 7).

For every video of config.data.video_dir: windows of `num_frames` (16)
consecutive frames starting every `data.step` frames (THUMOS14 4, FineAction 16;
official `range(0, T - 15, step)`), squash-resized to input_size x input_size
(bilinear, aspect not kept, no crop), /255 and, only with `normalize=True`,
ImageNet mean/std (the official extractor does not normalise; issue #62). Each
window gives fc_norm(mean over tokens) (official forward_features); a video's
features are saved as float32 [num_windows, width] in `{output_dir}/<stem>.npy`.

Differences on purpose: windows are batched (`batch_size`, official 1), the list
is sorted (official: shuffled), videos are split over processes, and a video that
cannot be read is reported and skipped (counted at the end) instead of stopping
the run. A re-run skips videos whose .npy exists (as officially); files are
written atomically. A video shorter than num_frames gets a [0, width] array.
init_from may also be a pre-training checkpoint: fc_norm then keeps its initial
(1, 0) (the official extractor uses the K710-fine-tuned model).
"""

from __future__ import annotations

import logging
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from data_pipelines import finetune_pipeline
from data_pipelines.decode import VideoDecodeError
from vmae2 import init_from as init_lib
from vmae2 import targets
from vmae2.models import classifier as classifier_model
from vmae2.trainers import common

log = logging.getLogger('vmae2')

VIDEO_EXTENSIONS = ('.mp4', '.avi', '.mkv', '.webm', '.mov', '.m4v', '.mpg', '.mpeg', '.flv')


def list_videos(video_dir: str) -> list[str]:
    """Sorted video files (by extension) directly inside `video_dir`.

    Raises:
      FileNotFoundError: the folder does not exist.
    """
    if not os.path.isdir(video_dir):
        raise FileNotFoundError(f'data.video_dir {video_dir!r} is not a folder')
    return sorted(
        os.path.join(video_dir, f)
        for f in os.listdir(video_dir)
        if f.lower().endswith(VIDEO_EXTENSIONS)
    )


def make_feature_fn(graphdef, mesh, *, normalize: bool, dtype):
    """jit (params, uint8 [B, T, S, S, 3]) -> float32 [B, width] fc_norm features."""

    def features(params, video):
        model = nnx.merge(graphdef, nnx.State(params))
        x = targets.normalize(video) if normalize else video.astype(jnp.float32) / 255.0
        return model.features(x, dtype=dtype)

    return jax.jit(features)


def train(cfg: ml_collections.ConfigDict, workdir: str) -> dict:
    """Extracts features of every video; returns {'written', 'skipped_existing', 'unreadable'}.

    Raises:
      ValueError: no init_from / output_dir, or a checkpoint that does not fit.
    """
    if not cfg.init_from:
        raise ValueError('extract_features needs --config.init_from=CHECKPOINT')
    out_dir = os.path.abspath(cfg.output_dir or os.path.join(workdir, 'features'))
    os.makedirs(out_dir, exist_ok=True)
    common.save_config(os.path.abspath(workdir), cfg)
    spec = common.model_spec(cfg)
    dtype = common.compute_dtype(cfg.dtype)
    num_classes = cfg.num_classes or init_lib.source_num_classes(cfg.init_from) or 1

    # Each process works alone on its share of the videos: a local mesh, no collectives.
    local = jax.local_devices()
    mesh = jax.sharding.Mesh(np.array(local), ('data',))
    model = nnx.eval_shape(
        lambda: classifier_model.Classifier(
            spec, num_classes, attention_impl=cfg.model.attention_impl, rngs=nnx.Rngs(0)
        )
    )
    graphdef, _ = nnx.split(model)
    target = nnx.to_pure_dict(nnx.state(model, nnx.Param))
    # Values only for what a pre-training checkpoint lacks: fc_norm at its init (1, 0);
    # the head is unused here.
    width = spec.arch.width
    target['fc_norm'] = {'scale': np.ones(width, np.float32), 'bias': np.zeros(width, np.float32)}
    target['head'] = {
        'kernel': np.zeros((width, num_classes), np.float32),
        'bias': np.zeros(num_classes, np.float32),
    }
    params = init_lib.load(cfg.init_from, target, require_head=False)
    rep = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    params = jax.device_put(params, rep)
    batch_sh = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec('data'))
    feature_fn = make_feature_fn(graphdef, mesh, normalize=cfg.normalize, dtype=dtype)
    bs = -(-cfg.batch_size // len(local)) * len(local)  # a multiple of the local devices

    videos = list_videos(cfg.data.video_dir)[jax.process_index() :: jax.process_count()]
    counts = {'written': 0, 'skipped_existing': 0, 'unreadable': 0}
    bad = []
    for i, path in enumerate(videos):
        stem = os.path.splitext(os.path.basename(path))[0]
        dest = os.path.join(out_dir, stem + '.npy')
        if os.path.exists(dest):
            counts['skipped_existing'] += 1
            continue
        feats = []
        try:
            for windows in finetune_pipeline.make_feature_windows(
                path,
                step=cfg.data.step,
                num_frames=spec.num_frames,
                input_size=spec.input_size,
                batch_size=bs,
            ):
                n = windows.shape[0]
                if n < bs:
                    pad = np.zeros((bs - n,) + windows.shape[1:], windows.dtype)
                    windows = np.concatenate([windows, pad])
                out = feature_fn(params, jax.device_put(windows, batch_sh))
                feats.append(np.asarray(out, np.float32)[:n])
        except (VideoDecodeError, OSError, ValueError) as e:
            log.warning('unreadable video %s skipped: %s', path, e)
            counts['unreadable'] += 1
            bad.append(path)
            continue
        arr = np.concatenate(feats) if feats else np.zeros((0, width), np.float32)
        if not feats:
            log.warning('%s is shorter than %d frames: no windows', path, spec.num_frames)
        tmp = dest + '.tmp.npy'
        np.save(tmp, arr.astype(np.float32))
        os.replace(tmp, dest)
        counts['written'] += 1
        log.info('[%d/%d] %s: %s', i + 1, len(videos), stem, arr.shape)
    log.info(
        'features in %s: %d written, %d already there, %d unreadable%s',
        out_dir,
        counts['written'],
        counts['skipped_existing'],
        counts['unreadable'],
        (': ' + ', '.join(bad)) if bad else '',
    )
    return counts
