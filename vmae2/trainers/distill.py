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

import logging
import os

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from vmae2 import init_from as init_lib
from vmae2 import losses
from vmae2 import sharding
from vmae2.models import classifier as classifier_model
from vmae2.models import layers
from vmae2.models import pretrain as pretrain_model
from vmae2.trainers import common
from vmae2.trainers import finetune

log = logging.getLogger('vmae2')

PROJ = 'distill_proj'


class Student(classifier_model.Classifier):
    """A Classifier plus an optional projection of its fc_norm features."""

    def __init__(self, spec, num_classes, *, proj_dim: int = 0, rngs: nnx.Rngs, **kw):
        super().__init__(spec, num_classes, rngs=rngs, **kw)
        if proj_dim:
            self.distill_proj = layers.Dense(
                spec.arch.width,
                proj_dim,
                use_bias=False,
                kernel_init=layers.trunc_normal_002,
                axes=('embed', None),
                rngs=rngs,
            )


def classifier_part(params: dict) -> dict:
    return {k: v for k, v in params.items() if k != PROJ}


def teacher_spec(cfg, student_spec) -> pretrain_model.PretrainSpec:
    """The teacher's spec: its own variant/overrides, the student's input shape."""
    t = cfg.teacher_model
    variant, overrides = t.variant, dict(t.overrides)
    if not variant:
        _, meta = init_lib.read_source(cfg.teacher)
        variant = meta.get('variant')
        overrides = dict(meta.get('overrides') or {})
        if not variant:
            raise ValueError(
                f'teacher {cfg.teacher}: no recorded variant; set '
                '--config.teacher_model.variant=vit_g'
            )
    return pretrain_model.PretrainSpec(
        variant=variant,
        num_frames=student_spec.num_frames,
        input_size=student_spec.input_size,
        tubelet_size=student_spec.tubelet_size,
        overrides=tuple(sorted(overrides.items())),
    )


def load_teacher(cfg, spec, num_classes: int, mesh):
    """(graphdef, sharded params) of the frozen teacher.

    Raises:
      ValueError: no teacher path, a teacher head that does not give
        `num_classes` classes (use teacher_model.head_label_map), any mismatch.
    """
    t = cfg.teacher_model
    if not cfg.teacher:
        raise ValueError('distillation needs --config.teacher=CHECKPOINT')
    model = nnx.eval_shape(
        lambda: classifier_model.Classifier(
            spec, num_classes, attention_impl=cfg.model.attention_impl, rngs=nnx.Rngs(0)
        )
    )
    graphdef, abstract = nnx.split(model)
    pspecs = sharding.param_specs(model, mesh, dict(cfg.sharding_rules))
    shardings = jax.tree.map(lambda s: jax.sharding.NamedSharding(mesh, s), pspecs)
    target = nnx.to_pure_dict(nnx.state(model, nnx.Param))
    params = init_lib.load(
        cfg.teacher, target, label_map_path=t.head_label_map, require_head=True, what='teacher'
    )
    return graphdef, init_lib.place(params, shardings), shardings


def make_train_step(
    student_def,
    teacher_def,
    tx,
    schedule,
    num_classes: int,
    mix_cfg,
    cfg,
    *,
    dtype,
    drop: bool,
):
    """step(state, teacher_params, batch) -> (state, metrics)."""
    dc = cfg.distill
    base_key = jax.random.key(cfg.seed)
    head_drop = cfg.model.head_drop_rate
    need_feat = dc.feature_weight > 0

    def train_step(state, teacher_params, batch):
        aug_key, drop_key = jax.random.split(jax.random.fold_in(base_key, state['step']))
        x, y, info = finetune.augment_on_device(aug_key, batch, num_classes, mix_cfg)

        def loss_terms(params, mb, rng):
            teacher = nnx.merge(teacher_def, nnx.State(teacher_params))
            t_feat = jax.lax.stop_gradient(teacher.features(mb['x'], dtype=dtype))
            t_logits = jax.lax.stop_gradient(teacher.head(t_feat, jnp.float32))
            student = nnx.merge(student_def, nnx.State(params))
            r = rng if drop else None
            feat = student.features(mb['x'], rng=r, dtype=dtype)
            h = feat
            if r is not None and head_drop > 0:  # as Classifier.__call__
                keep = 1.0 - head_drop
                mask = jax.random.bernoulli(jax.random.fold_in(r, 7), keep, h.shape)
                h = jnp.where(mask, h / keep, 0)
            logits = student.head(h, jnp.float32)
            per = dc.kd_weight * losses.distillation_kl_per_example(
                logits, t_logits, dc.temperature
            )
            if dc.label_weight > 0:
                per = per + dc.label_weight * losses.soft_target_cross_entropy_per_example(
                    logits, mb['targets']
                )
            if need_feat:
                s_feat = student.distill_proj(feat, jnp.float32) if PROJ in params else feat
                per = per + dc.feature_weight * losses.feature_loss_per_example(
                    s_feat, t_feat, dc.feature_loss
                )
            return per.sum(), jnp.asarray(per.shape[0], jnp.float32)

        new_state, metrics = common.optimizer_step(
            loss_terms, tx, schedule, state, {'x': x, 'targets': y}, drop_key, cfg.grad_accum_steps
        )
        metrics['mixup_lam'] = info['lam']
        return new_state, metrics

    return train_step


def train(cfg: ml_collections.ConfigDict, workdir: str) -> dict:
    """Runs (or resumes) distillation in `workdir`; evaluation as in fine-tuning.

    Returns:
      The last logged training scalars plus the student's final test metrics.
    """
    workdir = os.path.abspath(workdir)
    spec = common.model_spec(cfg)
    dtype = common.compute_dtype(cfg.dtype)
    common.save_config(workdir, cfg)
    data = finetune.load_data(cfg)
    mesh = common.make_mesh(cfg)
    t_spec = teacher_spec(cfg, spec)
    teacher_def, teacher_params, teacher_sh = load_teacher(cfg, t_spec, data.num_classes, mesh)
    proj_dim = 0
    if cfg.distill.feature_weight > 0 and t_spec.arch.width != spec.arch.width:
        proj_dim = t_spec.arch.width

    steps_per_epoch = len(data.train) // cfg.batch_size
    schedule, total_steps, peak = common.make_schedule(cfg, steps_per_epoch)
    m = cfg.model

    def build(rngs):
        return Student(
            spec,
            data.num_classes,
            proj_dim=proj_dim,
            drop_path_rate=m.drop_path_rate,
            head_drop_rate=m.head_drop_rate,
            init_scale=m.init_scale,
            attention_impl=m.attention_impl,
            remat_policy=m.remat_policy,
            scan_layers=m.get('scan_layers', True),
            rngs=rngs,
        )

    tx_factory = common.make_tx_factory(cfg, schedule, spec.arch.depth)
    state, shardings, graphdef, tx = common.create_state(
        build, tx_factory, mesh, dict(cfg.sharding_rules), cfg.seed
    )

    def merge(fresh, loaded):
        return {**loaded, PROJ: fresh[PROJ]} if PROJ in fresh else loaded

    state = finetune.initialise_params(
        cfg, workdir, state, shardings, tx, select=classifier_part, merge=merge
    )
    log.info(
        'distillation %s (%.2fM) -> %s (%.2fM): %d classes, T=%g, weights kd %g label %g '
        'feature %g (%s), %d steps, peak lr %.3g',
        t_spec.variant,
        common.count_params(teacher_params) / 1e6,
        cfg.model.variant,
        common.count_params(state['params']) / 1e6,
        data.num_classes,
        cfg.distill.temperature,
        cfg.distill.kd_weight,
        cfg.distill.label_weight,
        cfg.distill.feature_weight,
        cfg.distill.feature_loss,
        total_steps,
        peak,
    )
    step = jax.jit(
        make_train_step(
            graphdef,
            teacher_def,
            tx,
            schedule,
            data.num_classes,
            finetune.mixup_config(cfg),
            cfg,
            dtype=dtype,
            drop=m.drop_path_rate > 0 or m.head_drop_rate > 0,
        ),
        in_shardings=(shardings, teacher_sh, sharding.batch_sharding(mesh)),
        out_shardings=(shardings, sharding.replicated(mesh)),
        donate_argnums=0,
    )

    def step_fn(state, batch):
        return step(state, teacher_params, batch)

    eval_def = nnx.split(
        nnx.eval_shape(
            lambda: finetune.build_model(cfg, spec, data.num_classes, train=False)(nnx.Rngs(0))
        )
    )[0]
    evaluator = finetune.Evaluator(
        cfg, workdir, spec, data, eval_def, mesh, dtype, select=classifier_part
    )
    return finetune.run_with_evaluation(
        cfg,
        workdir,
        evaluator,
        state=state,
        shardings=shardings,
        step_fn=step_fn,
        dataset=finetune.make_train_dataset(cfg, data.train, spec, cfg.seed),
        mesh=mesh,
        total_steps=total_steps,
    )
