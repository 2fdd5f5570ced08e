"""Multi-process (multi-host) start-up: one call before anything touches devices.

Every host runs the same command. `initialize(cfg)` connects the processes with
`jax.distributed.initialize`; afterwards `jax.devices()` lists the devices of all
hosts, `jax.process_index()` / `jax.process_count()` name this host's data shard
(the input pipeline reads only its shard), and only process 0 writes metrics.

Where the settings come from, first match wins:

1. `config.distributed.{coordinator_address, num_processes, process_id}`
   (`--config.distributed.coordinator_address=10.0.0.1:1234` ...).
2. The environment: `JAX_COORDINATOR_ADDRESS` (host:port of process 0, read by
   JAX itself), `JAX_NUM_PROCESSES`, `JAX_PROCESS_ID` (read here), and
   `JAX_LOCAL_DEVICE_IDS` (comma-separated, read by JAX).
3. JAX's own cluster detection, used when nothing above names a multi-process run
   but a scheduler does: SLURM (`srun`, one task per host or per GPU), Open MPI
   (`mpirun`), multi-host Cloud TPU VMs / GKE (`TPU_WORKER_HOSTNAMES`,
   `MEGASCALE_COORDINATOR_ADDRESS`). JAX then fills in every missing value.

Nothing set and no scheduler found (or `num_processes == 1`): a no-op, the run
is a single process over its local devices.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import jax

log = logging.getLogger('vmae2')

MODES = ('auto', 'on', 'off')


def _field(cfg: Any, name: str, default):
    d = getattr(cfg, 'distributed', None) if cfg is not None else None
    if d is None:
        return default
    value = d.get(name, default) if hasattr(d, 'get') else getattr(d, name, default)
    return default if value is None else value


def _env_int(env, name: str, default: int) -> int:
    raw = str(env.get(name, ''))
    try:
        return int(raw) if raw.strip() else default
    except ValueError:
        raise ValueError(f'environment variable {name}={raw!r} is not an integer') from None


def scheduler_detected(environ=None) -> str | None:
    """Name of a multi-process launcher found in the environment, else None.

    Only launchers that start more than one process count: a one-task SLURM job
    is a single-process run.
    """
    env = os.environ if environ is None else environ
    if 'SLURM_JOB_ID' in env and int(env.get('SLURM_NTASKS', '1') or 1) > 1:
        return 'slurm'
    if 'OMPI_MCA_orte_hnp_uri' in env and int(env.get('OMPI_COMM_WORLD_SIZE', '1') or 1) > 1:
        return 'ompi'
    if ',' in env.get('TPU_WORKER_HOSTNAMES', '') or env.get('MEGASCALE_COORDINATOR_ADDRESS'):
        return 'tpu'
    return None


def settings(cfg: Any = None, environ=None) -> dict:
    """The resolved start-up settings (no side effects).

    Returns:
      {'mode', 'coordinator_address' (str or None), 'num_processes' (int or None),
       'process_id' (int or None), 'initialization_timeout' (s), 'launch'}: `launch`
      is 'explicit', a scheduler name, or None (single process).

    Raises:
      ValueError: an unknown mode, a bad integer, or a process_id outside
        [0, num_processes).
    """
    env = os.environ if environ is None else environ
    mode = str(_field(cfg, 'mode', 'auto'))
    if mode not in MODES:
        raise ValueError(f'distributed.mode {mode!r}: choose one of {MODES}')
    addr = str(_field(cfg, 'coordinator_address', '') or env.get('JAX_COORDINATOR_ADDRESS', ''))
    n = int(_field(cfg, 'num_processes', 0)) or _env_int(env, 'JAX_NUM_PROCESSES', 0)
    pid = int(_field(cfg, 'process_id', -1))
    if pid < 0:
        pid = _env_int(env, 'JAX_PROCESS_ID', -1)
    if n > 0 and pid >= n:
        raise ValueError(f'process_id {pid} is not below num_processes {n}')
    timeout = int(_field(cfg, 'initialization_timeout', 300))
    if mode == 'off' or n == 1:
        launch = None
    elif addr or n > 1 or mode == 'on':
        launch = 'explicit'
    else:
        launch = scheduler_detected(env)
    return {
        'mode': mode,
        'coordinator_address': addr or None,
        'num_processes': n or None,
        'process_id': pid if pid >= 0 else None,
        'initialization_timeout': timeout,
        'launch': launch,
    }


def initialize(cfg: Any = None) -> bool:
    """Connects this process to the others of a multi-process run (see module doc).

    Call it once, before any jax call that touches devices (jax.devices(),
    jax.process_index(), creating arrays). Calling it again is a no-op.

    Args:
      cfg: a config with an optional `distributed` section (`mode` auto|on|off,
        `coordinator_address` 'host:port', `num_processes`, `process_id`,
        `initialization_timeout` seconds); None reads only the environment.

    Returns:
      True when jax.distributed was initialised (now or before), False for a
      single-process run.

    Raises:
      ValueError: inconsistent settings (see `settings`).
      RuntimeError / XlaRuntimeError from JAX: the coordinator could not be
        reached within `initialization_timeout`.
    """
    if jax.distributed.is_initialized():
        return True
    s = settings(cfg)
    if s['launch'] is None:
        return False
    log.info(
        'jax.distributed.initialize (%s): coordinator %s, %s processes, process id %s',
        s['launch'],
        s['coordinator_address'] or '<auto>',
        s['num_processes'] or '<auto>',
        '<auto>' if s['process_id'] is None else s['process_id'],
    )
    jax.distributed.initialize(
        coordinator_address=s['coordinator_address'],
        num_processes=s['num_processes'],
        process_id=s['process_id'],
        initialization_timeout=s['initialization_timeout'],
    )
    log.info(
        'process %d of %d: %d local / %d global devices',
        jax.process_index(),
        jax.process_count(),
        jax.local_device_count(),
        jax.device_count(),
    )
    return True
