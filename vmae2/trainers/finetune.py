"""Supervised fine-tuning and post-pre-training (official run_class_finetuning.py +
engine_for_finetuning.py; spec 5, 9.3).

Per step, on the device: uint8 clips -> ImageNet normalisation -> random-erasing
fill of the pipeline's boxes (fresh N(0, 1) per frame) -> batch mixup/cutmix with
label smoothing -> Classifier -> soft-target cross-entropy. AdamW (0.9, 0.999),
eps 1e-8, layer-wise lr decay, the no-decay set, per-step warmup-from-0 + cosine,
lr scaled by videos per step / 256. `eval_every` steps: 1-view validation; at the
end: the full multi-view test protocol (spec 5.4) -> metrics.jsonl
(test_top1/test_top5) and predictions.csv in the workdir.

"Post-pre-training" is fine-tuning on K710 (configs/finetune/k710.py); the
intermediate-tuned K400/K600 runs start from that workdir with a label map.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx
from jax.experimental import multihost_utils

from data_pipelines import finetune_pipeline
from data_pipelines import labels as labels_lib
from vmae2 import checkpointing
from vmae2 import evaluation
from vmae2 import init_from as init_lib
from vmae2 import losses
from vmae2 import mixup
from vmae2 import sharding
from vmae2 import targets
from vmae2.models import classifier as classifier_model
from vmae2.trainers import common
from vmae2.trainers import loop

log = logging.getLogger('vmae2')


@dataclasses.dataclass
class Data:
    train: list
    val: list
    label_names: list[str] | None
    num_classes: int


def load_data(cfg, *, need_train: bool = True, checkpoint_classes: int | None = None) -> Data:
    """Reads `{data.data_path}/train.csv` and `val.csv` (spec 8.1) and the class count.

    num_classes: cfg.num_classes if > 0, else the label-name count, else (for
    evaluation) the checkpoint head's, else max label + 1.

    data.reader='fast': the same lists are read with data.data_root set to the
    output of `make_fast_dataset --input ROOT`; the video paths are mapped to
    their fast-format files (finetune_pipeline.fast_format_records).

    Raises:
      ValueError: no data_path, an unknown data.reader, or labels out of range.
      FileNotFoundError: a missing list.
    """
    d = cfg.data
    reader = finetune_pipeline.get_frame_reader(d.get('reader', 'video'))
    if not d.data_path:
        raise ValueError(
            'no data: set --config.data.data_path=DIR (a folder with train.csv and val.csv, '
            'lines `video_path label`) and --config.data.data_root=ROOT'
        )
    train = (
        labels_lib.read_finetune_list(
            labels_lib.finetune_list_path(d.data_path, 'train'), d.data_root
        )
        if need_train
        else []
    )
    val = labels_lib.read_finetune_list(
        labels_lib.finetune_list_path(d.data_path, 'val'), d.data_root
    )
    if reader is finetune_pipeline.FAST_READER:
        train = finetune_pipeline.fast_format_records(train, d.data_root)
        val = finetune_pipeline.fast_format_records(val, d.data_root)
    names = labels_lib.read_label_names(d.label_names) if d.label_names else None
    n = cfg.num_classes
    if not n:
        if names:
            n = len(names)
        elif checkpoint_classes:
            n = checkpoint_classes
        else:
            n = labels_lib.num_classes(train + val)
    if names is not None and len(names) != n:
        raise ValueError(f'{len(names)} label names for num_classes={n}')
    bad = [r for r in train + val if r.label >= n]
    if bad:
        raise ValueError(f'label {bad[0].label} of {bad[0].path!r} is out of range for {n} classes')
    return Data(train, val, names, n)


def build_model(cfg, spec, num_classes: int, *, train: bool = True):
    m = cfg.model

    def build(rngs):
        return classifier_model.Classifier(
            spec,
            num_classes,
            drop_path_rate=m.drop_path_rate if train else 0.0,
            head_drop_rate=m.head_drop_rate if train else 0.0,
            init_scale=m.init_scale,
            attention_impl=m.attention_impl,
            remat_policy=m.remat_policy if train else 'none',
            scan_layers=m.get('scan_layers', True),
            rngs=rngs,
        )

    return build


def mixup_config(cfg) -> mixup.MixupConfig:
    a = cfg.augment
    return mixup.MixupConfig(
        mixup_alpha=a.mixup,
        cutmix_alpha=a.cutmix,
        prob=a.mixup_prob,
        switch_prob=a.mixup_switch_prob,
        label_smoothing=a.smoothing,
    )


def host_tree(tree) -> Any:
    """Device tree -> numpy tree with full arrays on every process."""
    if all(getattr(x, 'is_fully_addressable', True) for x in jax.tree.leaves(tree)):
        return jax.tree.map(np.asarray, jax.device_get(tree))
    return jax.tree.map(np.asarray, multihost_utils.process_allgather(tree, tiled=True))


def has_checkpoint(workdir: str) -> bool:
    try:
        checkpointing.latest_state_dir(workdir)
        return True
    except FileNotFoundError:
        return False


def initialise_params(
    cfg, workdir, state, shardings, tx, *, select: Callable | None = None, merge=None
):
    """Loads cfg.init_from into a fresh state (skipped when the workdir resumes).

    `select(params) -> classifier params` and `merge(params, loaded) -> params`
    let the distillation trainer keep its extra projection parameters.
    """
    if not cfg.init_from or has_checkpoint(workdir):
        return state
    fresh = host_tree(state['params'])
    target = select(fresh) if select else fresh
    loaded = init_lib.load(cfg.init_from, target, label_map_path=cfg.head_label_map)
    params = merge(fresh, loaded) if merge else loaded
    params = init_lib.place(params, shardings['params'])

    def reset(p):
        return {'step': jnp.zeros((), jnp.int32), 'params': p, 'opt_state': tx.init(p)}

    return jax.jit(reset, out_shardings=shardings)(params)


def make_loss_fn(graphdef, *, dtype, drop: bool):
    """loss_terms(params, batch, rng) -> (summed soft-target CE, rows).

    batch: 'x' float [B, T, H, W, 3] (normalised, erased, mixed), 'targets' float
    [B, classes]. Sum and count are kept apart so gradient accumulation is exact.
    """

    def loss_terms(params, batch, rng):
        model = nnx.merge(graphdef, nnx.State(params))
        logits = model(batch['x'], rng=rng if drop else None, dtype=dtype)
        ce = losses.soft_target_cross_entropy_per_example(logits, batch['targets'])
        return ce.sum(), jnp.asarray(ce.shape[0], jnp.float32)

    return loss_terms


def augment_on_device(key, batch, num_classes: int, mix_cfg: mixup.MixupConfig):
    """normalise -> random-erasing fill -> mixup/cutmix (the official order, spec 5.2).

    Returns:
      (x float32 [B, T, H, W, 3], soft targets [B, classes], mixup info).
    """
    k_erase, k_mix = jax.random.split(key)
    x = targets.normalize(batch['video'])
    x = mixup.erase_boxes(k_erase, x, batch['erase_box'])
    return mixup.mix_batch(k_mix, x, batch['label'], num_classes, mix_cfg)


def make_train_step(
    loss_terms, tx, schedule, num_classes: int, mix_cfg, seed: int, grad_accum_steps: int = 1
):
    """One optimisation step. Randomness: fold_in(PRNGKey(seed), step); augmentation
    is applied to the whole batch before it is split into micro-batches."""
    base_key = jax.random.key(seed)

    def train_step(state, batch):
        aug_key, drop_key = jax.random.split(jax.random.fold_in(base_key, state['step']))
        x, y, info = augment_on_device(aug_key, batch, num_classes, mix_cfg)
        new_state, metrics = common.optimizer_step(
            loss_terms, tx, schedule, state, {'x': x, 'targets': y}, drop_key, grad_accum_steps
        )
        metrics['mixup_lam'] = info['lam']
        return new_state, metrics

    return train_step


def make_train_dataset(cfg, records, spec, seed: int):
    d = cfg.data
    n_proc = jax.process_count()
    if cfg.batch_size % n_proc:
        raise ValueError(f'batch_size {cfg.batch_size} is not divisible by the {n_proc} processes')
    return finetune_pipeline.make_finetune_train_dataset(
        records,
        batch_size=cfg.batch_size // n_proc,
        num_frames=spec.num_frames,
        sampling_rate=d.sampling_rate,
        input_size=spec.input_size,
        num_sample=d.num_sample,
        rand_augment=d.rand_augment,
        flip=d.flip,
        reprob=d.reprob,
        seed=seed,
        shard_index=jax.process_index(),
        shard_count=n_proc,
        worker_count=d.worker_count,
        sampler=d.sampler,
        read_threads=d.read_threads,
        frame_reader=finetune_pipeline.get_frame_reader(d.get('reader', 'video')),
    )


class Evaluator:
    """1-view validation hook and the final test protocol of a classifier run."""

    def __init__(self, cfg, workdir, spec, data: Data, graphdef, mesh, dtype, select=None):
        self.cfg, self.workdir, self.spec, self.data = cfg, workdir, spec, data
        self.mesh = mesh
        self.select = select or (lambda p: p)
        self.predict = evaluation.make_predict_fn(graphdef, mesh, dtype)
        self.final_done = False

    def val(self, step, state, batch, writer):
        del batch
        if step == self.total_steps and self.cfg.final_test:
            return self.test(step, state['params'], writer)
        res = evaluation.evaluate(
            self.cfg,
            self.data.val,
            self.spec,
            self.predict,
            self.select(state['params']),
            self.mesh,
            self.data.num_classes,
            'val',
        )
        m = res.metrics('val_')
        writer.write_scalars(step, m)
        log.info('step %d: 1-view val top-1 %.2f top-5 %.2f', step, m['val_top1'], m['val_top5'])

    def test(self, step, params, writer) -> dict:
        m = run_test(
            self.cfg,
            self.workdir,
            self.spec,
            self.data,
            self.predict,
            self.select(params),
            self.mesh,
            writer,
            step,
        )
        self.final_done = True
        self.final_metrics = m
        return m


def run_test(cfg, workdir, spec, data: Data, predict, params, mesh, writer, step) -> dict:
    """The full test protocol on val.csv; writes metrics and predictions.csv."""
    d = cfg.data
    res = evaluation.evaluate(cfg, data.val, spec, predict, params, mesh, data.num_classes, 'test')
    m = res.metrics('test_')
    writer.write_scalars(step, m)
    path = evaluation.write_predictions(
        os.path.join(workdir, 'predictions.csv'), res, data.val, data.label_names
    )
    log.info(
        'test %dx%d views, %d videos (%d unreadable): top-1 %.2f top-5 %.2f; %s',
        d.test_num_segment,
        d.test_num_crop,
        len(res.labels),
        res.unreadable,
        m['test_top1'],
        m['test_top5'],
        path,
    )
    return m


def train(cfg: ml_collections.ConfigDict, workdir: str) -> dict:
    """Runs (or resumes) fine-tuning in `workdir`.

    Returns:
      The last logged training scalars plus the final test metrics.
    """
    workdir = os.path.abspath(workdir)
    spec = common.model_spec(cfg)
    dtype = common.compute_dtype(cfg.dtype)
    common.save_config(workdir, cfg)
    ckpt_classes = None
    if not cfg.num_classes and not cfg.data.label_names and cfg.init_from and cfg.head_label_map:
        ckpt_classes = len(init_lib.load_label_map(cfg.head_label_map))
    data = load_data(cfg, checkpoint_classes=ckpt_classes)
    steps_per_epoch = len(data.train) // cfg.batch_size
    schedule, total_steps, peak = common.make_schedule(cfg, steps_per_epoch)
    mesh = common.make_mesh(cfg)
    make_tx = common.make_tx_factory(cfg, schedule, spec.arch.depth)
    state, shardings, graphdef, tx = common.create_state(
        build_model(cfg, spec, data.num_classes), make_tx, mesh, dict(cfg.sharding_rules), cfg.seed
    )
    state = initialise_params(cfg, workdir, state, shardings, tx)
    log.info(
        '%s fine-tuning: %.2fM parameters, %d classes, %d train / %d val videos, %d steps, '
        'peak lr %.3g, layer decay %.3g',
        cfg.model.variant,
        common.count_params(state['params']) / 1e6,
        data.num_classes,
        len(data.train),
        len(data.val),
        total_steps,
        peak,
        cfg.optim.layer_decay,
    )
    loss_fn = make_loss_fn(
        graphdef,
        dtype=dtype,
        drop=cfg.model.drop_path_rate > 0 or cfg.model.head_drop_rate > 0,
    )
    step_fn = jax.jit(
        make_train_step(
            loss_fn,
            tx,
            schedule,
            data.num_classes,
            mixup_config(cfg),
            cfg.seed,
            cfg.grad_accum_steps,
        ),
        in_shardings=(shardings, sharding.batch_sharding(mesh)),
        out_shardings=(shardings, sharding.replicated(mesh)),
        donate_argnums=0,
    )
    eval_graphdef = nnx.split(
        nnx.eval_shape(lambda: build_model(cfg, spec, data.num_classes, train=False)(nnx.Rngs(0)))
    )[0]
    evaluator = Evaluator(cfg, workdir, spec, data, eval_graphdef, mesh, dtype)
    return run_with_evaluation(
        cfg,
        workdir,
        evaluator,
        state=state,
        shardings=shardings,
        step_fn=step_fn,
        dataset=make_train_dataset(cfg, data.train, spec, cfg.seed),
        mesh=mesh,
        total_steps=total_steps,
    )


def run_with_evaluation(cfg, workdir, evaluator: Evaluator, *, state, shardings, total_steps, **kw):
    """loop.run with the validation hook; runs the test protocol on the final
    checkpoint if the loop had nothing left to do (a finished workdir)."""
    evaluator.total_steps = total_steps
    hooks = (
        [loop.Hooks(cfg.eval_every, evaluator.val)] if (cfg.eval_every or cfg.final_test) else []
    )
    last = loop.run(
        cfg,
        workdir,
        state=state,
        shardings=shardings,
        total_steps=total_steps,
        clips_per_step=cfg.batch_size * cfg.data.num_sample,
        batch_keys=('video', 'label', 'erase_box'),
        hooks=hooks,
        **kw,
    )
    if cfg.final_test and not evaluator.final_done:
        from vmae2 import metrics as metrics_lib  # noqa: PLC0415

        ckpt = checkpointing.Checkpointer(workdir)
        try:
            step = ckpt.latest_step()
            restored, _ = ckpt.restore(step, common.abstract_like(state, shardings))
        finally:
            ckpt.close()
        writer = metrics_lib.MetricWriter(workdir)
        try:
            evaluator.test(step, restored['params'], writer)
        finally:
            writer.close()
    return {**last, **getattr(evaluator, 'final_metrics', {})}
