"""trainer='probe': the kNN probe (vmae2/core/probe.py) on any checkpoint, no training."""

from __future__ import annotations

import os

from vmae2.core import build
from vmae2.core import probe
from vmae2.core import run_config
from vmae2.core.stage import Stage
from vmae2.errors import ConfigError
from vmae2.models.classifier import Classifier
from vmae2.models.pretrain import PretrainModel
from vmae2.runtime import metrics as metrics_lib
from vmae2.weights import files
from vmae2.weights import keymaps
from vmae2.weights import surgery


class Probe(Stage):
    """probe_knn_top1 of cfg.init_from on the probe lists."""

    trains = False
    needs_init_from = True

    def __init__(self, cfg):
        super().__init__(cfg)
        probe.check(cfg)
        if not probe.enabled(cfg):
            raise ConfigError('trainer probe needs --config.probe.train_list and probe.val_list')
        _, meta = files.read_source(cfg.init_from)
        self.kind, self.num_classes = meta['kind'], meta.get('num_classes') or 1

    def build_model(self, rngs):
        if self.kind == keymaps.PRETRAIN:
            return PretrainModel(self.model_cfg, rngs=rngs)
        return Classifier(self.model_cfg, self.num_classes, rngs=rngs)

    def run(self, workdir: str, allow_config_change: bool = False) -> dict:
        """Returns {'probe_knn_top1'}; nothing resumes, every run records its config."""
        del allow_config_change
        workdir = os.path.abspath(workdir)
        run_config.record(workdir, self.cfg, None)
        exp = build.build(self.cfg, self)
        params = surgery.init_params(self.cfg.init_from, exp.factory.abstract.params, may_stay_fresh=())
        state = exp.factory.from_params(params)
        features = probe.model_features(exp.factory.graphdef)
        results = probe.KnnProbe(self.cfg, self.model_cfg, exp.mesh, features).run(state)
        writer = metrics_lib.MetricWriter(workdir)
        try:
            writer.write_scalars(0, results)
        finally:
            writer.close()
        return results
