"""trainer='evaluate': the test protocol (spec 5.4) on any classifier checkpoint.

config.init_from: a fine-tuning/distillation workdir, a converted directory or an
official weight file (vmae2/init_from.py). Writes metrics.jsonl (test_top1,
test_top5) and predictions.csv into the workdir; config.data.test_num_segment /
test_num_crop choose the views.
"""

from __future__ import annotations

import logging
import os

import ml_collections
from flax import nnx

from vmae2 import evaluation
from vmae2 import init_from as init_lib
from vmae2 import metrics as metrics_lib
from vmae2.trainers import common
from vmae2.trainers import finetune

log = logging.getLogger('vmae2')


def train(cfg: ml_collections.ConfigDict, workdir: str) -> dict:
    """Evaluates cfg.init_from on `{data.data_path}/val.csv`.

    Returns:
      {'test_top1', 'test_top5', 'test_videos', 'test_unreadable_videos'}.

    Raises:
      ValueError: no init_from, or a checkpoint without a usable head.
    """
    if not cfg.init_from:
        raise ValueError('trainer evaluate needs --config.init_from=CHECKPOINT')
    workdir = os.path.abspath(workdir)
    spec = common.model_spec(cfg)
    dtype = common.compute_dtype(cfg.dtype)
    common.save_config(workdir, cfg)
    if cfg.head_label_map:
        ckpt_classes = len(init_lib.load_label_map(cfg.head_label_map))
    else:
        ckpt_classes = init_lib.source_num_classes(cfg.init_from)
    data = finetune.load_data(cfg, need_train=False, checkpoint_classes=ckpt_classes)
    mesh = common.make_mesh(cfg)
    build = finetune.build_model(cfg, spec, data.num_classes, train=False)
    model = nnx.eval_shape(lambda: build(nnx.Rngs(0)))
    graphdef, _ = nnx.split(model)
    state, shardings, _, _ = common.create_state(
        build, lambda p: _no_tx(), mesh, dict(cfg.sharding_rules), cfg.seed
    )
    params = init_lib.load(
        cfg.init_from,
        finetune.host_tree(state['params']),
        label_map_path=cfg.head_label_map,
        require_head=True,
    )
    params = init_lib.place(params, shardings['params'])
    predict = evaluation.make_predict_fn(graphdef, mesh, dtype)
    writer = metrics_lib.MetricWriter(workdir)
    try:
        return finetune.run_test(cfg, workdir, spec, data, predict, params, mesh, writer, 0)
    finally:
        writer.close()


def _no_tx():
    import optax  # noqa: PLC0415

    return optax.identity()
