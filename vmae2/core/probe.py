"""The kNN probe: how good frozen encoder features are for a labelled task, measured
during pre-training (config block `probe`) or alone on any checkpoint (trainer
'probe', configs/probe.py).

Every clip of `probe.train_list` and `probe.val_list` (fine-tuning list format,
`path label`) gives one deterministic centre view (short side to the input size,
centre crop, the validation sampler); the features are the model's frozen
mean-pooled tokens; each validation clip is classified by the weighted vote of its
k nearest training clips (cosine similarity, weights exp(sim / T): the
InstDisc/DINO protocol, vmae2.ops.knn). The result is `probe_knn_top1` (percent).
"""

from __future__ import annotations

import logging

import jax
import numpy as np
from flax import nnx

from data_pipelines import readers
from data_pipelines import sources
from data_pipelines import transforms
from vmae2.core import data
from vmae2.core import evaluation
from vmae2.errors import ConfigError
from vmae2.errors import DataError
from vmae2.ops import knn
from vmae2.ops import targets
from vmae2.runtime import sharding

log = logging.getLogger('vmae2')


def model_features(graphdef):
    """(params, uint8 [B, T, S, S, 3]) -> float32 [B, D]: the model's `features` of
    the normalised clips (PretrainModel: mean-pooled encoder tokens; Classifier:
    fc_norm of them)."""

    def features(params, video):
        return nnx.merge(graphdef, nnx.State(params)).features(targets.normalize(video))

    return features


def enabled(cfg) -> bool:
    p = cfg.get('probe')
    return bool(p and p.train_list and p.val_list)


class KnnProbe(evaluation.Evaluator):
    """probe_knn_top1 of `feature_fn(params, video uint8 [B, T, S, S, 3]) -> [B, D]`
    (`model_features`)."""

    def __init__(self, cfg, model, mesh, feature_fn, *, every=0, at_end=True, at_start=False):
        p = cfg.probe
        self.cfg, self.model, self.mesh = cfg, model, mesh
        self.every, self.at_end, self.at_start = every, at_end, at_start
        self.k, self.temperature, self.batch_size = p.k, p.temperature, p.batch_size
        self.train = self._read(p.train_list, p.data_root)
        self.val = self._read(p.val_list, p.data_root)
        self.num_classes = sources.num_classes(self.train + self.val)
        self.transform = transforms.EvalTransform(
            num_frames=model.num_frames, sampling_rate=p.sampling_rate,
            input_size=model.input_size, mode='val', sampler=p.sampler, reader=readers.VIDEO_READER,
        )
        self.feature_fn = feature_fn
        self.features = jax.jit(feature_fn, out_shardings=sharding.batch_sharding(mesh))

    @staticmethod
    def _read(path: str, root: str) -> list:
        records = sources.read_finetune_list(path, root)
        if not records:
            raise DataError(f'probe list {path} lists no videos')
        return records

    def _embed(self, params, records):
        """(features float32 [n, D], labels int [n]) of the readable records, in order."""
        m = self.model
        clip = jax.ShapeDtypeStruct((1, m.num_frames, m.input_size, m.input_size, 3), np.uint8)
        width = jax.eval_shape(self.feature_fn, params, clip).shape[-1]
        ds = data.eval_dataset(self.cfg, records, self.transform, self.batch_size)
        res = evaluation.run_views(self.features, params, ds, self.mesh, len(records), width)
        return res.probs, res.labels

    def run(self, state) -> dict:
        bank, bank_labels = self._embed(state.params, self.train)
        query, query_labels = self._embed(state.params, self.val)
        if not len(bank) or not len(query):
            raise DataError('no readable video in the probe lists')
        top1 = knn.knn_top1(
            query, query_labels, bank, bank_labels, self.num_classes, self.k, self.temperature
        )
        top1 = float(top1)
        log.info(
            'kNN probe (k=%d, T=%g): top-1 %.2f %% of %d val clips against %d train clips',
            self.k, self.temperature, top1, len(query), len(bank),
        )
        return {'probe_knn_top1': top1}


def check(cfg) -> None:
    """A half-set probe block is a mistake, not a silently skipped probe."""
    p = cfg.get('probe')
    if p and bool(p.train_list) != bool(p.val_list):
        raise ConfigError('probe: set both probe.train_list and probe.val_list (or neither)')
