"""Checkpoints and saved parameter trees: the only module that imports Orbax.

A checkpoint holds the train state (restored into the given shardings) and the
data iterator position of every process, so a resumed run continues exactly
where it stopped. Orbax writes each step into a temporary directory and renames
it when complete: a run killed mid-save leaves the previous checkpoint intact.
Restores use Orbax's array format (no pickle: a checkpoint never runs code).

Layout of one step: `{step}/state/` (Orbax arrays, written cooperatively by all
processes), `{step}/data/process_{i}-of-{n}.json` (grain's checkpoint handler:
every process writes its own iterator position and counters; Orbax's JsonSave
would write only on the primary host), and `{step}/commit_success.txt`, written
last: a step without it is incomplete.

Damage: `intact_steps` lists the committed steps; a step that cannot be restored
is moved to `{workdir}/damaged_checkpoints/` by `set_aside` (the caller then tries
the previous one). A failed asynchronous save surfaces in `check_for_errors`.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import sys
import time
from typing import Any

import grain.checkpoint as grain_checkpoint
import jax
import numpy as np
import orbax.checkpoint as ocp
from etils import epath

from vmae2.errors import CheckpointError

log = logging.getLogger('vmae2')

DATA_ITEM = 'data'
COMMIT_MARKER = 'commit_success.txt'


class SaveError(OSError):
    """A checkpoint could not be written (`no_space`: the disk is full)."""

    def __init__(self, step: int, directory: str, cause: BaseException):
        self.step, self.directory, self.cause = step, directory, cause
        self.no_space = _is_no_space(cause)
        super().__init__(f'checkpoint step {step} could not be written to {directory}: {_reason(cause)}')


def _is_no_space(e: BaseException | None) -> bool:
    while e is not None:
        if isinstance(e, OSError) and e.errno == errno.ENOSPC:
            return True
        if 'No space left on device' in str(e):
            return True
        e = e.__cause__ or e.__context__
    return False


def _reason(e: BaseException) -> str:
    if _is_no_space(e):
        return 'No space left on device'
    text = str(e).strip().splitlines()
    return f'{type(e).__name__}: {text[0] if text else ""}'.rstrip(': ')


def _data_file(process_index: int, process_count: int) -> str:
    # grain.checkpoint.CheckpointHandler's file name.
    return f'process_{process_index}-of-{process_count}.json'


def encode_iterator_state(state: Any) -> bytes:
    """A grain iterator state (JSON-able) as the bytes saved with a checkpoint."""
    return json.dumps(state).encode('utf-8')


def decode_iterator_state(data: bytes) -> Any:
    return json.loads(data.decode('utf-8'))


class _SerializedIterator:
    """Hands grain's handler an already-serialised iterator state (JSON bytes)."""

    def __init__(self, data: bytes):
        self._data = data

    def get_state(self) -> bytes:
        return self._data


_checkpoint_dirs: set[str] = set()  # every Checkpointer's directory in this process


def _drop_abandoned_read_log(record: logging.LogRecord) -> bool:
    """asyncio logger filter: False for an abandoned read of one of our checkpoints."""
    message = record.getMessage()
    return not (
        message.startswith('Task exception was never retrieved')
        and any(d in message for d in _checkpoint_dirs)
    )


def _quiet_abandoned_reads(directory: str) -> None:
    """Hides the tracebacks of the reads Orbax abandons when a restore fails.

    Orbax restores with one asyncio task per array on a fresh event loop and ends
    the loop at the first failed read (`run_until_complete`, no cancelling). That
    first failure is what `restore` raises and the caller reports; each abandoned
    sibling would print a traceback saying nothing more, in one of two ways:
    - it completes after the loop closed: its TensorStore callback raises 'Event
      loop is closed', an unraisable exception (about a hundred for one damaged
      step); hidden always;
    - it failed before: the garbage collector deletes it unretrieved and asyncio
      logs 'Task exception was never retrieved' (a race, seen in CI); hidden when
      the message names a checkpoint directory of this process (`directory`).
    Every other unraisable exception and asyncio record still gets through.
    """
    _checkpoint_dirs.add(directory + os.sep)
    asyncio_log = logging.getLogger('asyncio')
    if _drop_abandoned_read_log not in asyncio_log.filters:
        asyncio_log.addFilter(_drop_abandoned_read_log)
    previous = sys.unraisablehook
    if getattr(previous, 'vmae2_filter', False):  # checked on the hook: pytest swaps it
        return

    def hook(unraisable):
        e = unraisable.exc_value
        if isinstance(e, RuntimeError) and str(e) == 'Event loop is closed':
            return
        previous(unraisable)

    hook.vmae2_filter = True
    sys.unraisablehook = hook


class Checkpointer:
    """CheckpointManager over `{workdir}/checkpoints` keeping the last `keep`."""

    def __init__(self, workdir: str, *, keep: int = 3, async_save: bool = True):
        self.directory = os.path.join(os.path.abspath(workdir), 'checkpoints')
        _quiet_abandoned_reads(self.directory)
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep,
            create=True,
            enable_async_checkpointing=async_save,
            cleanup_tmp_directories=True,
        )
        self._manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_step(self) -> int | None:
        """The newest committed step, or None."""
        steps = self.intact_steps()
        return steps[-1] if steps else None

    def step_dirs(self) -> list[int]:
        """Every step directory on disk, committed or not, ascending."""
        if not os.path.isdir(self.directory):
            return []
        return sorted(int(d) for d in os.listdir(self.directory) if d.isdigit())

    def intact_steps(self) -> list[int]:
        """Steps whose commit marker exists (a step without it was never finished)."""
        return [s for s in self.step_dirs() if os.path.exists(self._marker(s))]

    def _marker(self, step: int) -> str:
        return os.path.join(self.directory, str(step), COMMIT_MARKER)

    def set_aside(self, step: int, reason: str) -> str:
        """Moves a damaged or incomplete step to {workdir}/damaged_checkpoints/ (process 0).

        Returns:
          Where it went.
        """
        dest_root = os.path.join(os.path.dirname(self.directory), 'damaged_checkpoints')
        dest = os.path.join(dest_root, f'{step}-{time.strftime("%Y%m%d-%H%M%S")}')
        log.warning(
            'checkpoint step %d in %s is damaged (%s): moved to %s; trying the one before',
            step, self.directory, reason, dest,
        )
        if jax.process_index() == 0:
            os.makedirs(dest_root, exist_ok=True)
            shutil.move(os.path.join(self.directory, str(step)), dest)
        self._manager.reload()
        return dest

    def check_for_errors(self, step: int) -> None:
        """Raises SaveError if an asynchronous save (the last, `step`) has failed."""
        try:
            self._manager.check_for_errors()
        except Exception as e:  # noqa: BLE001 - Orbax re-raises the writer's error
            raise SaveError(step, self.directory, e) from e

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
        try:
            return self._manager.save(step, args=ocp.args.Composite(**items), force=force)
        except Exception as e:  # noqa: BLE001 - the writer's error, whatever raised it
            raise SaveError(step, self.directory, e) from e

    def state_keys(self, step: int) -> set[str]:
        """Top-level keys of the state saved at `step` (older checkpoints lack some)."""
        return set(_tree_metadata(os.path.join(self.directory, str(step), 'state')))

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

    def close(self) -> None:
        """Waits for pending saves and releases the manager.

        Raises:
          SaveError: a pending save failed.
        """
        try:
            self._manager.wait_until_finished()
            self._manager.check_for_errors()
        except Exception as e:  # noqa: BLE001 - the writer's error, whatever raised it
            raise SaveError(self._manager.latest_step() or -1, self.directory, e) from e
        finally:
            self._manager.close()


def _latest_step_dir(workdir: str) -> str:
    """{workdir}/checkpoints/<latest step>.

    Raises:
        FileNotFoundError: when the workdir holds no finished checkpoint.
    """
    directory = os.path.join(os.path.abspath(workdir), 'checkpoints')
    steps = (
        [int(d) for d in os.listdir(directory) if d.isdigit()] if os.path.isdir(directory) else []
    )
    if not steps:
        raise FileNotFoundError(f'no finished checkpoint under {directory}')
    return os.path.join(directory, str(max(steps)))


def has_checkpoint(workdir: str) -> bool:
    """True when `workdir` holds a finished training checkpoint."""
    try:
        _latest_step_dir(workdir)
        return True
    except FileNotFoundError:
        return False


def latest_step_number(workdir: str) -> int:
    return int(os.path.basename(_latest_step_dir(workdir)))


def _tree_metadata(path: str) -> Any:
    """The saved tree's structure (leaf metadata), read without reading arrays.

    Through the handler: the Checkpointer wrapper would also look for a step-level
    metadata file that an item directory does not have, and warn about it.
    """
    handler = ocp.PyTreeCheckpointHandler()
    try:
        meta = handler.metadata(epath.Path(path))
    finally:
        handler.close()
    if meta is None:
        raise CheckpointError(f'{path}: no readable tree metadata')
    return getattr(meta, 'tree', meta)


def load_params(workdir: str) -> Any:
    """The 'params' of a workdir's latest train state as host numpy arrays, keyed as
    saved (integer block indices come back as strings); the optimiser state is
    not read (Orbax partial restore)."""
    path = os.path.join(_latest_step_dir(workdir), 'state')
    tree = _tree_metadata(path)
    abstract = jax.tree.map(
        lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype), {'params': tree['params']}
    )
    restore_args = jax.tree.map(lambda _: ocp.ArrayRestoreArgs(restore_type=np.ndarray), abstract)
    args = ocp.args.PyTreeRestore(item=abstract, restore_args=restore_args, partial_restore=True)
    handler = ocp.PyTreeCheckpointHandler()
    try:
        return handler.restore(epath.Path(path), args=args)['params']
    finally:
        handler.close()


def save_tree(directory: str, tree: Any) -> None:
    """Writes a tree of arrays to `directory` (Orbax StandardCheckpointer; keys as str).

    Raises:
      FileExistsError: `directory` exists.
    """
    if os.path.exists(directory):
        raise FileExistsError(f'{directory} exists; choose another output')
    with ocp.StandardCheckpointer() as ckptr:
        ckptr.save(os.path.abspath(directory), tree)
        ckptr.wait_until_finished()


def load_tree(directory: str) -> Any:
    """A tree written by `save_tree` (or any Orbax standard checkpoint) as host arrays."""
    with ocp.StandardCheckpointer() as ckptr:
        return ckptr.restore(os.path.abspath(directory))
