"""build(cfg, stage): the mesh, state factory, schedule, jitted step and dataset of a run.

Every stage's run, the memory plan and the benchmarks go through this one
function, so they compile the very step training runs. Nothing is allocated
here: the loop creates (or restores) the state, and `abstract=True` skips the
data and frozen weights for ahead-of-time compiles.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import grain
import jax
import optax

from vmae2.core import data
from vmae2.core import optim
from vmae2.core import step as step_lib
from vmae2.core.state import StateFactory
from vmae2.errors import ConfigError
from vmae2.models.config import ModelConfig
from vmae2.runtime import sharding

log = logging.getLogger('vmae2')


@dataclasses.dataclass
class Experiment:
    """One run's machinery (see `build`).

    Attributes:
      cfg, stage, model: the run config, its stage and ModelConfig.
      mesh: the device mesh.
      factory: abstract state, shardings, graphdef and optimiser (StateFactory).
      schedule: the lr schedule with total and warm-up steps (None: no training).
      step_fn: jitted (state, batch, frozen) -> (state, metrics), state donated.
      frozen: values the step reads but does not train (e.g. a teacher), or {}.
      records: the training records (None when abstract).
      dataset: the training grain IterDataset (None when abstract).
      clips_per_step: clips in one step's batch over all processes.
    """

    cfg: Any
    stage: Any
    model: ModelConfig
    mesh: jax.sharding.Mesh
    factory: StateFactory
    schedule: optim.Schedule | None
    step_fn: Any
    frozen: Any
    records: list | None
    dataset: grain.IterDataset | None
    clips_per_step: int

    def batch_spec(self) -> dict[str, jax.ShapeDtypeStruct]:
        """The step's batch as ShapeDtypeStructs with the batch sharding."""
        sh = sharding.batch_sharding(self.mesh)
        return {
            k: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh)
            for k, s in self.stage.batch_spec(self.clips_per_step).items()
        }

    def lower(self):
        """The step lowered on abstract inputs (memory_analysis, cost_analysis, compile)."""
        return self.step_fn.lower(self.factory.abstract, self.batch_spec(), self.frozen)


def build(cfg, stage, *, abstract: bool = False) -> Experiment:
    """Builds a run of `stage` from `cfg` (see module docstring).

    Args:
      abstract: no records, dataset or frozen values; the schedule assumes one
        step per epoch (memory plans and compile checks need only the shapes).

    Raises:
      ConfigError / DataError: settings that cannot work, named.
    """
    mesh = sharding.mesh_from_config(cfg.mesh)
    model = stage.model_cfg
    rules = dict(cfg.get('sharding_rules', {}))
    clips = cfg.batch_size * stage.clips_per_video if stage.trains else 0
    records = dataset = schedule = step_fn = None
    frozen = {}
    if not stage.trains:
        factory = StateFactory(stage.build_model, lambda p: optax.identity(), mesh, rules, cfg.seed)
        return Experiment(cfg, stage, model, mesh, factory, None, None, {}, None, None, 0)
    data.check_batch_fits(cfg, mesh, clips)
    if not abstract:
        records = stage.train_records()
    steps_per_epoch = len(records) // cfg.batch_size if records is not None else 1
    schedule = optim.schedule_from_config(cfg, steps_per_epoch)
    factory = StateFactory(
        stage.build_model,
        lambda params: optim.optimizer_from_config(cfg, schedule, params, model.depth),
        mesh,
        rules,
        cfg.seed,
    )
    frozen, frozen_sh = stage.frozen(mesh) if not abstract else stage.frozen_abstract(mesh)
    train_step = step_lib.make_train_step(
        stage.loss, stage.prepare, factory.graphdef, factory.tx, schedule.fn, cfg.grad_accum_steps
    )
    step_fn = jax.jit(
        train_step,
        in_shardings=(factory.shardings, sharding.batch_sharding(mesh), frozen_sh),
        out_shardings=(factory.shardings, sharding.replicated(mesh)),
        donate_argnums=0,
    )
    if not abstract:
        dataset = data.train_dataset(cfg, records, _train_transform(stage, records))
    return Experiment(
        cfg, stage, model, mesh, factory, schedule, step_fn, frozen, records, dataset, clips
    )


def _train_transform(stage, records):
    """The stage's clip transform. Its argument checks raise ValueError (data_pipelines
    knows no config); here every such value came from the config, so it is a ConfigError."""
    try:
        return stage.train_transform(records)
    except ConfigError:
        raise
    except ValueError as e:
        raise ConfigError(f'data settings: {e}') from None
