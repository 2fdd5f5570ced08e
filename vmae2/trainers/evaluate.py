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
from vmae2.core import run_config
from vmae2.core.stage import Stage
from vmae2.models.classifier import Classifier
from vmae2.runtime import metrics as metrics_lib
from vmae2.weights import surgery


class Evaluate(Stage):
    """Evaluates cfg.init_from on `{data.data_path}/val.csv` (no training)."""

    trains = False
    needs_init_from = True

    def __init__(self, cfg):
        super().__init__(cfg)
        classes = surgery.source_num_classes(cfg.init_from, cfg.head_label_map)
        self.labelled = data.labelled_data(cfg, need_train=False, checkpoint_classes=classes)

    def build_model(self, rngs):
        return Classifier(self.model_cfg, self.labelled.num_classes, rngs=rngs)

    def run(self, workdir: str, allow_config_change: bool = False) -> dict:
        """Returns {'test_top1', 'test_top5', 'test_videos', 'test_unreadable_videos'}.

        Nothing resumes here: every run records its config as a new start.
        """
        del allow_config_change
        workdir = os.path.abspath(workdir)
        run_config.record(workdir, self.cfg, None)
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
