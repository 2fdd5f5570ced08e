"""The interface between the training core and a stage (vmae2/trainers/*).

A stage is a leaf: it names its model, its records and per-clip data transform,
its device-side batch preparation and loss, its evaluators and how it starts
from `init_from`; the core (build, step, loop) does everything else the same
way for every stage. No stage imports another stage.
"""

from __future__ import annotations

import abc
from typing import Any

import jax
import numpy as np
from flax import nnx

from vmae2.core import build
from vmae2.core import loop
from vmae2.errors import ConfigError
from vmae2.models.config import ModelConfig
from vmae2.weights import surgery


class Stage(abc.ABC):
    """What one stage adds to the core. Subclasses live in vmae2/trainers.

    Attributes:
      cfg: the run config (ml_collections).
      model_cfg: its ModelConfig.
      trains: False for stages that only evaluate or extract (no optimiser, no loop).
      needs_init_from: the stage reads weights (cfg.init_from must be set).
    """

    trains: bool = True
    needs_init_from: bool = False

    def __init__(self, cfg):
        if self.needs_init_from and not cfg.get('init_from'):
            raise ConfigError(f'trainer {cfg.trainer} needs --config.init_from=CHECKPOINT')
        self.cfg = cfg
        self.model_cfg = ModelConfig.from_config(cfg)

    # ---- model
    @abc.abstractmethod
    def build_model(self, rngs: nnx.Rngs) -> nnx.Module:
        """The module whose parameters the run trains (or evaluates)."""

    def init_from(self, target: dict) -> dict:
        """Params for a fresh run from cfg.init_from (surgery onto `target`, host arrays)."""
        return surgery.init_params(self.cfg.init_from, target)

    # ---- data
    def train_records(self) -> list:
        raise NotImplementedError(f'{type(self).__name__} does not train')

    def train_transform(self, records: list):
        """The grain transform record -> per-video arrays (data_pipelines.transforms)."""
        raise NotImplementedError(f'{type(self).__name__} does not train')

    def batch_spec(self, clips: int) -> dict[str, jax.ShapeDtypeStruct]:
        """Shapes and dtypes of one step's batch of `clips` clips (ahead-of-time compiles)."""
        m = self.model_cfg
        return {
            'video': jax.ShapeDtypeStruct(
                (clips, m.num_frames, m.input_size, m.input_size, 3), np.uint8
            )
        }

    @property
    def clips_per_video(self) -> int:
        return int(self.cfg.data.get('num_sample', 1))

    # ---- the step
    def prepare(self, rng: jax.Array, batch: dict) -> tuple[dict, dict]:
        """Device-side preparation of the whole batch inside the step (masks, mixing)."""
        del rng
        return batch, {}

    def loss(self, model: nnx.Module, batch: dict, rng: jax.Array, frozen: Any):
        """(summed loss, count, {name: summed quantity}) over a (micro-)batch."""
        raise NotImplementedError(f'{type(self).__name__} does not train')

    def frozen(self, mesh) -> tuple[Any, Any]:
        """(values, shardings) of parameters the step reads but does not train."""
        del mesh
        return {}, {}

    def frozen_abstract(self, mesh) -> tuple[Any, Any]:
        """`frozen` as ShapeDtypeStructs (ahead-of-time compiles), without reading weights."""
        return self.frozen(mesh)

    # ---- reporting
    def loss_baseline(self, batch: dict) -> float | None:
        """The loss of a model that predicts nothing useful, for reading the loss (or None).

        `batch` is the first training batch (host arrays), for baselines that depend
        on the data.
        """
        del batch
        return None

    def evaluators(self, exp, workdir: str) -> list:
        """Evaluators (vmae2.core.evaluation) the loop runs; see Evaluator."""
        del exp, workdir
        return []

    def describe(self, exp) -> str:
        """One log line about the run that starts."""
        del exp
        return self.model_cfg.describe()

    def run(self, workdir: str, allow_config_change: bool = False) -> dict:
        """Runs (or resumes) the stage in `workdir`; returns its last metrics.

        allow_config_change: resume even if the config changes the run (run_config).
        """
        return loop.train(build.build(self.cfg, self), workdir, allow_config_change)
