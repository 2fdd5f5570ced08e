"""Every config a run was started or resumed with, and the check that a resumed run
is the run that was started.

`{workdir}/configs/NNN_start.json`, `NNN_resume_stepK.json`: one file per start,
never overwritten; `{workdir}/config.json`: the latest. On resume the new config is
compared with the last recorded one: a change to anything that alters the run
(model, input, masking, data, batch, schedule, seed, ...) is refused with a short
diff unless the user passes `--allow_config_change`; the fields of HARMLESS
(logging and checkpoint cadence, evaluation, workers, ...) may change, with a notice.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any, Mapping

import jax

from vmae2.errors import ConfigError

log = logging.getLogger('vmae2')

# Fields that do not change what a run computes (dotted; a trailing '.' is a prefix).
HARMLESS = (
    'log_every',
    'checkpoint_every',
    'keep_checkpoints',
    'vis_every',
    'eval_every',
    'eval_batch_size',
    'final_test',
    'init_from',  # only read by a fresh start
    'output_dir',
    'data.worker_count',
    'data.read_threads',
    'distributed.',
    'probe.every',
    'probe.batch_size',
)


def _flat(tree: Mapping, prefix: str = '') -> dict[str, Any]:
    out = {}
    for k, v in tree.items():
        key = f'{prefix}{k}'
        if isinstance(v, Mapping) and v:
            out.update(_flat(v, key + '.'))
        else:
            out[key] = v
    return out


def _harmless(key: str) -> bool:
    return any(key == h or (h.endswith('.') and key.startswith(h)) for h in HARMLESS)


def diff(old: Mapping, new: Mapping) -> list[tuple[str, Any, Any]]:
    """(dotted key, old, new) for every field that differs (missing = None)."""
    a, b = _flat(old), _flat(new)
    return [(k, a.get(k), b.get(k)) for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)]


def _history(workdir: str) -> list[str]:
    folder = os.path.join(workdir, 'configs')
    names = sorted(n for n in os.listdir(folder) if n.endswith('.json')) if os.path.isdir(folder) else []
    return [os.path.join(folder, n) for n in names]


def _last_recorded(workdir: str) -> dict | None:
    history = _history(workdir)
    path = history[-1] if history else os.path.join(workdir, 'config.json')
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def record(workdir: str, cfg, resume_step: int | None, allow_change: bool = False) -> None:
    """Checks a resumed run's config against the recorded one, then records `cfg`.

    Args:
      resume_step: the checkpoint step the run resumes from, or None (a fresh start).
      allow_change: accept changes that alter the run (they are recorded).

    Raises:
      ConfigError: a change that alters the run, listed, when not `allow_change`.
    """
    current = json.loads(cfg.to_json_best_effort())
    previous = _last_recorded(workdir) if resume_step is not None else None
    if previous is not None:
        changes = diff(previous, current)
        altering = [c for c in changes if not _harmless(c[0])]
        harmless = [c for c in changes if _harmless(c[0])]
        if altering and not allow_change:
            lines = '\n'.join(f'  {k}: {a!r} -> {b!r}' for k, a, b in altering[:12])
            more = f'\n  ... (+{len(altering) - 12})' if len(altering) > 12 else ''
            raise ConfigError(
                f'{workdir} resumes at step {resume_step} with a config that changes the run:\n'
                f'{lines}{more}\nRun with the recorded config (see {workdir}/config.json), use '
                'another --workdir, or add --allow_config_change to continue with the new values.'
            )
        for k, a, b in harmless + (altering if allow_change else []):
            log.info('config change on resume (step %d): %s %r -> %r', resume_step, k, a, b)
    if jax.process_index() != 0:
        return
    folder = os.path.join(workdir, 'configs')
    os.makedirs(folder, exist_ok=True)
    tag = 'start' if resume_step is None else f'resume_step{resume_step}'
    path = os.path.join(folder, f'{len(_history(workdir)):03d}_{tag}.json')
    text = cfg.to_json_best_effort(indent=2)
    for p in (path, os.path.join(workdir, 'config.json')):
        with open(p + '.tmp', 'w') as f:
            f.write(text)
        os.replace(p + '.tmp', p)
