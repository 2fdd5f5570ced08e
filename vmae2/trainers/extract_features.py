"""TAD feature extraction (official extract_tad_feature.py, spec 7).

For every video of config.data.video_dir (or of the TFDS split data.tfds_split of
data.tfds_name, whose frames are stored at short side 320): windows of `num_frames` (16)
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
import numpy as np
from flax import nnx

from data_pipelines import pipeline
from data_pipelines import sources
from data_pipelines.decode import VideoDecodeError
from vmae2.core import data
from vmae2.core import run_config
from vmae2.core.stage import Stage
from vmae2.core.state import param_tree
from vmae2.errors import DataError
from vmae2.models.classifier import Classifier
from vmae2.ops import targets
from vmae2.weights import surgery

log = logging.getLogger('vmae2')


def make_feature_fn(graphdef, *, normalize: bool):
    """jit (params, uint8 [B, T, S, S, 3]) -> float32 [B, width] fc_norm features."""

    def features(params, video):
        model = nnx.merge(graphdef, nnx.State(params))
        x = targets.normalize(video) if normalize else video.astype(jnp.float32) / 255.0
        return model.features(x)

    return jax.jit(features)


class ExtractFeatures(Stage):
    """Clip features of every video of data.video_dir (module docstring)."""

    trains = False
    needs_init_from = True

    def __init__(self, cfg):
        super().__init__(cfg)
        # The head is unused here; any class count that fits the checkpoint will do.
        self.num_classes = cfg.num_classes or surgery.source_num_classes(cfg.init_from) or 1

    def build_model(self, rngs):
        return Classifier(self.model_cfg, self.num_classes, rngs=rngs)

    def _params(self):
        """The encoder and fc_norm; a pre-training checkpoint keeps fc_norm at (1, 0)."""
        target = param_tree(nnx.eval_shape(lambda: self.build_model(nnx.Rngs(0))))
        width, n = self.model_cfg.width, self.num_classes
        target['fc_norm'] = {'scale': np.ones(width, np.float32), 'bias': np.zeros(width, np.float32)}
        target['head'] = {'kernel': np.zeros((width, n), np.float32), 'bias': np.zeros(n, np.float32)}
        return surgery.init_params(self.cfg.init_from, target)

    def _videos(self):
        """(video files or stored records, the stored split's reader or None)."""
        d = self.cfg.data
        stored = data.stored_split(self.cfg, 'train')
        if stored is not None:
            return stored.records, stored.reader
        if not os.path.isdir(d.video_dir):
            raise DataError(f'data.video_dir {d.video_dir!r} is not a folder')
        # The official extractor reads the folder's own videos, not its sub-folders
        # (outputs are named by the video's name).
        top = os.path.abspath(d.video_dir)
        return [r.path for r in sources.list_video_folder(top) if os.path.dirname(r.path) == top], None

    def run(self, workdir: str, allow_config_change: bool = False) -> dict:
        """Returns {'written', 'skipped_existing', 'unreadable'}; a re-run skips done videos."""
        del allow_config_change
        cfg, m = self.cfg, self.model_cfg
        out_dir = os.path.abspath(cfg.output_dir or os.path.join(workdir, 'features'))
        os.makedirs(out_dir, exist_ok=True)
        run_config.record(os.path.abspath(workdir), cfg, None)
        # Each process works alone on its share of the videos: a local mesh, no collectives.
        local = jax.local_devices()
        mesh = jax.sharding.Mesh(np.array(local), ('data',))
        rep = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
        params = jax.device_put(self._params(), rep)
        batch_sh = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec('data'))
        graphdef = nnx.split(nnx.eval_shape(lambda: self.build_model(nnx.Rngs(0))))[0]
        feature_fn = make_feature_fn(graphdef, normalize=cfg.normalize)
        bs = -(-cfg.batch_size // len(local)) * len(local)  # a multiple of the local devices

        videos, reader = self._videos()
        videos = videos[jax.process_index() :: jax.process_count()]
        counts = {'written': 0, 'skipped_existing': 0, 'unreadable': 0}
        bad = []
        for i, video in enumerate(videos):
            path = getattr(video, 'path', video)
            stem = os.path.splitext(os.path.basename(path))[0]
            dest = os.path.join(out_dir, stem + '.npy')
            if os.path.exists(dest):
                counts['skipped_existing'] += 1
                continue
            feats = []
            try:
                for windows in pipeline.feature_windows(
                    video, step=cfg.data.step, num_frames=m.num_frames, input_size=m.input_size,
                    batch_size=bs, reader=reader,
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
            arr = np.concatenate(feats) if feats else np.zeros((0, m.width), np.float32)
            if not feats:
                log.warning('%s is shorter than %d frames: no windows', path, m.num_frames)
            tmp = dest + '.tmp.npy'
            np.save(tmp, arr.astype(np.float32))
            os.replace(tmp, dest)
            counts['written'] += 1
            log.info('[%d/%d] %s: %s', i + 1, len(videos), stem, arr.shape)
        log.info(
            'features in %s: %d written, %d already there, %d unreadable%s',
            out_dir, counts['written'], counts['skipped_existing'], counts['unreadable'],
            (': ' + ', '.join(bad)) if bad else '',
        )
        return counts
