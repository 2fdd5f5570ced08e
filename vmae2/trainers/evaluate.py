"""trainer='evaluate': the test protocol (spec 5.4) on any classifier checkpoint.

config.init_from: a fine-tuning/distillation workdir, a converted directory or an
official weight file. Writes metrics.jsonl (test_top1, test_top5) and
predictions.csv into the workdir; config.data.test_num_segment / test_num_crop
choose the views.
"""

from __future__ import annotations

import os

from vmae2.core import build
from vmae2.core import data
from vmae2.core import evaluation
from vmae2.core import loop
from vmae2.core.stage import Stage
from vmae2.errors import ConfigError
from vmae2.models.classifier import Classifier
from vmae2.runtime import metrics as metrics_lib
from vmae2.weights import files
from vmae2.weights import surgery


class Evaluate(Stage):
    """Evaluates cfg.init_from on `{data.data_path}/val.csv` (no training)."""

    trains = False

    def __init__(self, cfg):
        if not cfg.init_from:
            raise ConfigError('trainer evaluate needs --config.init_from=CHECKPOINT')
        super().__init__(cfg)
        if cfg.head_label_map:
            classes = len(surgery.load_label_map(cfg.head_label_map))
        else:
            classes = files.read_source(cfg.init_from)[1].get('num_classes')
        self.labelled = data.labelled_data(cfg, need_train=False, checkpoint_classes=classes)

    def build_model(self, rngs):
        return Classifier(self.model_cfg, self.labelled.num_classes, rngs=rngs)

    def run(self, workdir: str) -> dict:
        """Returns {'test_top1', 'test_top5', 'test_videos', 'test_unreadable_videos'}."""
        workdir = os.path.abspath(workdir)
        loop.save_config(workdir, self.cfg)
        exp = build.build(self.cfg, self)
        params = surgery.init_params(
            self.cfg.init_from, exp.factory.abstract.params,
            label_map_path=self.cfg.head_label_map, require_head=True,
        )
        state = exp.factory.from_params(params)
        evaluator = evaluation.ClassificationEvaluator(self.cfg, exp, self.labelled, workdir, 'test')
        writer = metrics_lib.MetricWriter(workdir)
        try:
            results = evaluator.run(state)
            writer.write_scalars(0, results)
        finally:
            writer.close()
        return results
