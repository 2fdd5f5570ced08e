"""Checkpoints: the only module that imports Orbax.

A checkpoint holds the train state (restored into the given shardings) and the
data iterator position of every process, so a resumed run continues exactly
where it stopped. Orbax writes each step into a temporary directory and renames
it when complete: a run killed mid-save leaves the previous checkpoint intact.
Restores use Orbax's array format (no pickle: a checkpoint never runs code).
"""

from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp


def _data_item(process_index: int) -> str:
    return f'data_{process_index}'


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
        """Saves `state` (a pytree of jax.Arrays) and this process's iterator state."""
        items = {'state': ocp.args.StandardSave(state)}
        if data_state is not None:
            items[_data_item(jax.process_index())] = ocp.args.JsonSave(
                {'iterator': data_state.decode('utf-8')}
            )
        return self._manager.save(step, args=ocp.args.Composite(**items), force=force)

    def restore(self, step: int, abstract_state: Any) -> tuple[Any, bytes | None]:
        """Restores into the shapes, dtypes and shardings of `abstract_state`
        (jax.ShapeDtypeStruct leaves with .sharding), so a checkpoint written on one
        mesh restores onto another."""
        item = _data_item(jax.process_index())
        names = (
            set(self._manager.item_metadata(step).keys())
            if hasattr(self._manager.item_metadata(step), 'keys')
            else set()
        )
        items = {'state': ocp.args.StandardRestore(abstract_state)}
        if item in names:
            items[item] = ocp.args.JsonRestore()
        out = self._manager.restore(step, args=ocp.args.Composite(**items))
        data = out.get(item) if item in names else None
        return out['state'], (data['iterator'].encode('utf-8') if data else None)

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
