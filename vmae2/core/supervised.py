"""The shared half of the stages that train on labelled videos (fine-tuning,
distillation): labelled lists, the official augmentation (host transform +
device-side erasing and mixup; with data.augment_on='device' RandAugment, the
RandomResizedCrop and the flip run on the device too), the un-mixed top-1, and the
validation and test evaluators. A stage subclasses `SupervisedStage` and adds its model
and loss.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from data_pipelines import augment
from data_pipelines import transforms
from vmae2.core import data
from vmae2.core import evaluation
from vmae2.core.stage import Stage
from vmae2.ops import augment as device_augment
from vmae2.ops import mixup
from vmae2.weights import surgery


# What the device views read (data_pipelines.transforms.device_layout).
VIEW_KEYS = ('frames', 'frame_hw', 'canvas_hw', 'crop_box', 'flip', 'ra_op', 'ra_arg')


def mixup_config(cfg) -> mixup.MixupConfig:
    """config.augment -> timm Mixup arguments (official defaults, spec 5.1)."""
    a = cfg.augment
    return mixup.MixupConfig(
        mixup_alpha=a.mixup, cutmix_alpha=a.cutmix, prob=a.mixup_prob,
        switch_prob=a.mixup_switch_prob, label_smoothing=a.smoothing,
    )


class SupervisedStage(Stage):
    """A stage on `{data.data_path}/{train,val}.csv` with the official augmentation."""

    def __init__(self, cfg):
        super().__init__(cfg)
        self.mix = mixup_config(cfg)

    @functools.cached_property
    def labelled(self) -> data.LabelledData:
        """The lists, read on first use (an abstract build with num_classes set needs none)."""
        cfg, classes = self.cfg, None
        if not cfg.num_classes and not cfg.data.label_names and cfg.init_from and cfg.head_label_map:
            classes = len(surgery.load_label_map(cfg.head_label_map))
        return data.labelled_data(cfg, checkpoint_classes=classes)

    @property
    def num_classes(self) -> int:
        return self.cfg.num_classes or self.labelled.num_classes

    def train_records(self):
        return self.labelled.train

    def train_transform(self, records):
        """Decode, RandAugment, RandomResizedCrop, flip, erasing box (spec 5.2, on the
        host; with augment_on='device' only the decode and the draws)."""
        d, m = self.cfg.data, self.model_cfg
        return transforms.ClassifyTransform(
            records, num_frames=m.num_frames, sampling_rate=d.sampling_rate,
            input_size=m.input_size, num_sample=d.num_sample, sampler=d.sampler,
            rand_augment=d.rand_augment, flip=d.flip, reprob=d.reprob,
            crop_scale=tuple(d.crop_scale),
            reader=data.reader(self.cfg), augment_on=data.augment_on(self.cfg),
            canvas=data.canvas(self.cfg),
        )

    def batch_spec(self, clips):
        if data.augment_on(self.cfg) == 'device':
            return data.device_batch_spec(self.cfg, clips, self.model_cfg.num_frames, labelled=True)
        return {
            **super().batch_spec(clips),
            'label': jax.ShapeDtypeStruct((clips,), np.int32),
            'erase_box': jax.ShapeDtypeStruct((clips, 4), np.int32),
        }

    def clips(self, batch) -> jax.Array:
        """The batch's uint8 views: as they came, or made here on each device's videos
        (augment_on='device': RandAugment, RandomResizedCrop, flip)."""
        if 'video' in batch:
            return batch['video']
        size = self.model_cfg.input_size

        def views(b):
            return device_augment.finetune_views(b, size, augment.RAND_INCREASING_OPS)

        return data.device_views(self.cfg, views, VIEW_KEYS)(batch)

    def prepare(self, rng, batch):
        """Normalise, erase, mix (spec 5.2, on the device); keeps the un-mixed labels."""
        batch = {**batch, 'video': self.clips(batch)}
        x, y, info = mixup.augment_batch(rng, batch, self.num_classes, self.mix)
        return {'x': x, 'targets': y, 'label': batch['label']}, {'mixup_lam': info['lam']}

    def drop_rng(self, rng):
        """The key for drop path and head dropout, or None when both are off."""
        m = self.model_cfg
        return rng if m.drop_path_rate > 0 or m.head_drop_rate > 0 else None

    @staticmethod
    def correct(logits, labels) -> jax.Array:
        """100 x the number of rows whose top-1 is the (un-mixed) label: float32 []."""
        return 100.0 * (jnp.argmax(logits, -1) == labels).sum().astype(jnp.float32)

    def evaluators(self, exp, workdir):
        """1-view validation every `eval_every` steps; the test protocol at the end; with
        cfg.fit_check, the training videos' top-1 at the end."""
        cfg = self.cfg
        out = []
        if cfg.eval_every:
            out.append(
                evaluation.ClassificationEvaluator(
                    cfg, exp, self.labelled, workdir, 'val', every=cfg.eval_every,
                    at_end=not cfg.final_test,
                )
            )
        if cfg.final_test:
            out.append(evaluation.ClassificationEvaluator(cfg, exp, self.labelled, workdir, 'test'))
        if cfg.get('fit_check'):
            out.append(evaluation.ClassificationEvaluator(cfg, exp, self.labelled, workdir, 'fit'))
        return out

    def describe(self, exp):
        n = self.labelled
        return (
            f'{self.model_cfg.describe()}: {n.num_classes} classes, {len(n.train)} train / '
            f'{len(n.val)} val videos'
        )
