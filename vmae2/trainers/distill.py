"""Knowledge distillation of a fine-tuned teacher into a smaller student (spec 6).

The official repo has no distillation code and the loss, temperature and recipe
are unpublished (OpenGVLab/VideoMAEv2 issue #61). What is documented: students
ViT-S/B initialised from their own post-pre-trained (K710 fine-tuned) weights,
teacher the K710-fine-tuned ViT-g, K710 data, 16-frame input. vmae2's choice:

    loss = kd_weight * T^2 KL(softmax(teacher / T) || softmax(student / T))
         + label_weight * soft-target CE(student, mixup targets)
         + feature_weight * feature_loss(proj(student fc_norm), teacher fc_norm)

Defaults (configs/distill/k710.py): kd_weight 1, T 1, label_weight 0,
feature_weight 0: plain logit distillation on the same augmented clips (normalise,
random erasing, mixup/cutmix as in fine-tuning) the teacher sees. With a feature
loss and different widths, a bias-free linear projection `distill_proj` (student
width -> teacher width) is trained with the student; it lives beside the
classifier parameters and is dropped by init_from when the student is loaded
later.

The teacher (config.teacher: workdir, converted directory or official file;
any size, config.teacher_model.variant/overrides or the checkpoint's recorded variant)
is frozen: it is not in the optimiser and its outputs pass through stop_gradient.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from vmae2.core.supervised import SupervisedStage
from vmae2.core.state import param_tree
from vmae2.errors import ConfigError
from vmae2.models import layers
from vmae2.models.classifier import Classifier
from vmae2.models.config import ModelConfig
from vmae2.ops import losses
from vmae2.runtime import sharding
from vmae2.weights import files
from vmae2.weights import surgery

PROJ = 'distill_proj'


class Student(Classifier):
    """A Classifier plus an optional projection of its fc_norm features."""

    def __init__(self, cfg: ModelConfig, num_classes: int, *, proj_dim: int = 0, rngs: nnx.Rngs):
        super().__init__(cfg, num_classes, rngs=rngs)
        if proj_dim:
            self.distill_proj = layers.Dense(
                cfg.width, proj_dim, use_bias=False, kernel_init=layers.trunc_normal_002,
                axes=('embed', None), rngs=rngs,
            )


def teacher_model_config(cfg, student: ModelConfig) -> ModelConfig:
    """The teacher's ModelConfig: its own variant/overrides, the student's input shape."""
    t = cfg.teacher_model
    variant, overrides = t.variant, dict(t.overrides)
    if not variant:
        _, meta = files.read_source(cfg.teacher)
        variant, overrides = meta.get('variant'), dict(meta.get('overrides') or {})
        if not variant:
            raise ConfigError(
                f'teacher {cfg.teacher}: no recorded variant; set --config.teacher_model.variant=vit_g'
            )
    return ModelConfig.create(
        variant, **overrides, num_frames=student.num_frames, input_size=student.input_size,
        tubelet_size=student.tubelet_size, attention_impl=student.attention_impl,
        dtype=student.dtype,
    )


class Distill(SupervisedStage):
    """The distillation stage (module docstring)."""

    def __init__(self, cfg):
        if not cfg.teacher:
            raise ConfigError('distillation needs --config.teacher=CHECKPOINT')
        super().__init__(cfg)
        self.teacher_cfg = teacher_model_config(cfg, self.model_cfg)
        d = cfg.distill
        self.proj_dim = self.teacher_cfg.width if (
            d.feature_weight > 0 and self.teacher_cfg.width != self.model_cfg.width
        ) else 0
        self.teacher_def = nnx.split(self._teacher_abstract())[0]

    def _teacher_abstract(self):
        n = self.num_classes
        return nnx.eval_shape(lambda: Classifier(self.teacher_cfg, n, rngs=nnx.Rngs(0)))

    def build_model(self, rngs):
        return Student(self.model_cfg, self.num_classes, proj_dim=self.proj_dim, rngs=rngs)

    def init_from(self, target):
        return surgery.init_params(
            self.cfg.init_from, target, label_map_path=self.cfg.head_label_map,
            may_stay_fresh=surgery.HEAD + (PROJ,),
        )

    def frozen_abstract(self, mesh):
        model = self._teacher_abstract()
        specs = sharding.param_specs(model, mesh, dict(self.cfg.sharding_rules))
        shardings = jax.tree.map(lambda s: jax.sharding.NamedSharding(mesh, s), specs)
        return param_tree(model), shardings

    def frozen(self, mesh):
        """The teacher's params, loaded and sharded (a head is required)."""
        abstract, shardings = self.frozen_abstract(mesh)
        params = surgery.init_params(
            self.cfg.teacher, abstract, label_map_path=self.cfg.teacher_model.head_label_map,
            require_head=True, what='teacher',
        )
        return sharding.place(params, shardings), shardings

    def loss(self, model, batch, rng, frozen):
        d = self.cfg.distill
        teacher = nnx.merge(self.teacher_def, nnx.State(frozen))
        t_feat = jax.lax.stop_gradient(teacher.features(batch['x']))
        t_logits = jax.lax.stop_gradient(teacher.logits(t_feat))
        r = self.drop_rng(rng)
        feat = model.features(batch['x'], rng=r)
        logits = model.logits(feat, rng=r)
        per = d.kd_weight * losses.distillation_kl_per_example(logits, t_logits, d.temperature)
        if d.label_weight > 0:
            per += d.label_weight * losses.soft_target_cross_entropy_per_example(
                logits, batch['targets']
            )
        if d.feature_weight > 0:
            s_feat = model.distill_proj(feat, jnp.float32) if self.proj_dim else feat
            per += d.feature_weight * losses.feature_loss_per_example(s_feat, t_feat, d.feature_loss)
        sums = {'train_top1': self.correct(logits, batch['label'])}
        return per.sum(), jnp.asarray(per.shape[0], jnp.float32), sums

    def describe(self, exp):
        d = self.cfg.distill
        return (
            f'distillation {self.teacher_cfg.describe()} -> {self.model_cfg.describe()}: '
            f'{self.num_classes} classes, T={d.temperature:g}, weights kd '
            f'{d.kd_weight:g} label {d.label_weight:g} feature {d.feature_weight:g} '
            f'({d.feature_loss})'
        )
