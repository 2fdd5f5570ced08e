"""Maps config.trainer to the function that runs it."""

from __future__ import annotations

import importlib

import ml_collections

TRAINERS = {
    'pretrain': 'vmae2.trainers.pretrain',
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
