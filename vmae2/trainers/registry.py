"""Maps config.trainer to the function that runs it."""

from __future__ import annotations

import importlib

import ml_collections

TRAINERS = {
    'pretrain': 'vmae2.trainers.pretrain',
    'finetune': 'vmae2.trainers.finetune',
    'evaluate': 'vmae2.trainers.evaluate',
    'distill': 'vmae2.trainers.distill',
    'extract_features': 'vmae2.trainers.extract_features',
}


def run(cfg: ml_collections.ConfigDict, workdir: str):
    """Runs cfg.trainer in `workdir`.

    Raises:
      ValueError: for an unknown trainer name, listing the known ones.
    """
    name = cfg.get('trainer')
    if name not in TRAINERS:
        raise ValueError(f'config.trainer {name!r}: choose one of {sorted(TRAINERS)}')
    return importlib.import_module(TRAINERS[name]).train(cfg, workdir)
