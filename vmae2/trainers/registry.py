"""config.trainer -> the stage that runs it; the only module that knows every stage."""

from __future__ import annotations

import importlib

from vmae2.errors import ConfigError

STAGES = {
    'pretrain': ('vmae2.trainers.pretrain', 'Pretrain'),
    'finetune': ('vmae2.trainers.finetune', 'Finetune'),
    'evaluate': ('vmae2.trainers.evaluate', 'Evaluate'),
    'distill': ('vmae2.trainers.distill', 'Distill'),
    'extract_features': ('vmae2.trainers.extract_features', 'ExtractFeatures'),
    'probe': ('vmae2.trainers.probe', 'Probe'),
}


def stage_for(cfg):
    """The Stage object of cfg.trainer.

    Raises:
      ConfigError: an unknown trainer name, listing the known ones.
    """
    name = cfg.get('trainer')
    if name not in STAGES:
        raise ConfigError(f'config.trainer {name!r}: choose one of {sorted(STAGES)}')
    module, cls = STAGES[name]
    return getattr(importlib.import_module(module), cls)(cfg)


def run(cfg, workdir: str, allow_config_change: bool = False) -> dict:
    """Runs cfg.trainer in `workdir`; returns the stage's last metrics."""
    return stage_for(cfg).run(workdir, allow_config_change)
