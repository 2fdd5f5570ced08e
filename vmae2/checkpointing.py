"""Checkpoints: the only module that imports Orbax.

A checkpoint holds the train state (restored into the given shardings) and the
data iterator position of every process, so a resumed run continues exactly
where it stopped. Orbax writes each step into a temporary directory and renames
it when complete: a run killed mid-save leaves the previous checkpoint intact.
Restores use Orbax's array format (no pickle: a checkpoint never runs code).

Layout of one step: `{step}/state/` (Orbax arrays, written cooperatively by all
processes) and `{step}/data/process_{i}-of-{n}.json` (grain's checkpoint handler:
every process writes its own iterator position; Orbax's JsonSave would write only
on the primary host).
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

import grain.checkpoint as grain_checkpoint
import jax
import orbax.checkpoint as ocp

log = logging.getLogger('vmae2')

DATA_ITEM = 'data'


def _data_file(process_index: int, process_count: int) -> str:
    # grain.checkpoint.CheckpointHandler's file name.
    return f'process_{process_index}-of-{process_count}.json'


class _SerializedIterator:
    """Hands grain's handler an already-serialised iterator state (JSON bytes)."""

    def __init__(self, data: bytes):
        self._data = data

    def get_state(self) -> bytes:
        return self._data


class Checkpointer:
    """CheckpointManager over `{workdir}/checkpoints` keeping the last `keep`."""

    def __init__(self, workdir: str, *, keep: int = 3, async_save: bool = True):
        self.directory = os.path.join(os.path.abspath(workdir), 'checkpoints')
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep,
            create=True,
            enable_async_checkpointing=async_save,
            cleanup_tmp_directories=True,
        )
        self._manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def save(
        self, step: int, state: Any, data_state: bytes | None = None, force: bool = True
    ) -> bool:
        """Saves `state` (a pytree of jax.Arrays) and this process's iterator state.

        Every process must call it with the same step (Orbax synchronises them);
        `data_state` is this process's serialised iterator (JSON bytes).
        """
        items = {'state': ocp.args.StandardSave(state)}
        if data_state is not None:
            items[DATA_ITEM] = grain_checkpoint.CheckpointSave(_SerializedIterator(data_state))
        return self._manager.save(step, args=ocp.args.Composite(**items), force=force)

    def restore(self, step: int, abstract_state: Any) -> tuple[Any, bytes | None]:
        """Restores into the shapes, dtypes and shardings of `abstract_state`
        (jax.ShapeDtypeStruct leaves with .sharding), so a checkpoint written on one
        mesh restores onto another.

        Returns:
          (state, this process's iterator state as JSON bytes, or None when the
          checkpoint has none for this process: written by another process count,
          or saved without one; the iterator then starts afresh, with a warning).
        """
        pid, count = jax.process_index(), jax.process_count()
        step_dir = os.path.join(self.directory, str(step))
        items = {'state': ocp.args.StandardRestore(abstract_state)}
        out = self._manager.restore(step, args=ocp.args.Composite(**items))
        data_dir = os.path.join(step_dir, DATA_ITEM)
        path = os.path.join(data_dir, _data_file(pid, count))
        if os.path.exists(path):
            with open(path, 'rb') as f:
                data = f.read()
            json.loads(data)  # fail here, not deep in grain, on a damaged file
            return out['state'], data
        if os.path.isdir(data_dir):
            log.warning(
                'checkpoint step %d has iterator states %s but not %s (written by another '
                'process count?): the data iterator starts from the beginning',
                step,
                sorted(os.listdir(data_dir)),
                _data_file(pid, count),
            )
        return out['state'], None

    def iterator_files(self, step: int) -> list[str]:
        """The per-process iterator files saved with `step` (sorted names)."""
        data_dir = os.path.join(self.directory, str(step), DATA_ITEM)
        if not os.path.isdir(data_dir):
            return []
        return sorted(f for f in os.listdir(data_dir) if f.startswith('process_'))

    def wait(self) -> None:
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()


def latest_state_dir(workdir: str) -> str:
    """{workdir}/checkpoints/<latest step>/state.

    Raises:
        FileNotFoundError: when the workdir holds no finished checkpoint.
    """
    directory = os.path.join(os.path.abspath(workdir), 'checkpoints')
    steps = (
        [int(d) for d in os.listdir(directory) if d.isdigit()] if os.path.isdir(directory) else []
    )
    if not steps:
        raise FileNotFoundError(f'no finished checkpoint under {directory}')
    return os.path.join(directory, str(max(steps)), 'state')


def load_state(workdir: str) -> Any:
    """The latest saved train state of a workdir as a tree of host arrays, keyed
    as saved (integer block indices come back as strings)."""
    with ocp.StandardCheckpointer() as ckptr:
        return ckptr.restore(latest_state_dir(workdir))
