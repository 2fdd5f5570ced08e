"""How every vmae2 command ends: a user mistake is one message and exit status 2.

`run_cli(main)` runs `main()`; a `vmae2.errors.UserError` (or a missing file)
prints `error: <message>` to stderr and exits 2, without a traceback unless
VMAE2_DEBUG=1 is set (main.py also takes --debug). Other exceptions are bugs or
failures of the machine and keep their traceback.
"""

from __future__ import annotations

import os
import re
import sys
from typing import Callable, Sequence

from vmae2.errors import UserError

DEBUG_ENV = 'VMAE2_DEBUG'


def user_error_message(e: BaseException) -> str | None:
    """The message for a user mistake (or a refusal of the machine), else None."""
    if isinstance(e, UserError):
        return str(e)
    if isinstance(e, FileNotFoundError):
        return f'{e.filename}: no such file or directory' if e.filename else str(e)
    if isinstance(e, PermissionError):
        where = e.filename or 'a file'
        return f'{where}: permission denied; choose a directory you can write to (--workdir)'
    return None


def run_cli(main: Callable[[], int | None], debug: bool = False) -> None:
    """Runs `main` and exits with its status, 2 for a user mistake."""
    try:
        status = main()
    except Exception as e:  # noqa: BLE001 - sorted into user mistakes and the rest
        message = user_error_message(e)
        if message is None or debug or os.environ.get(DEBUG_ENV) == '1':
            raise
        print(f'error: {message}', file=sys.stderr)
        sys.exit(2)
    sys.exit(status or 0)


def _chain(e: BaseException | None):
    while e is not None:
        yield e
        e = e.__cause__ or e.__context__


def flag_error_message(e: BaseException, argv: Sequence[str]) -> str:
    """One line for a command-line mistake.

    A misspelt `--config.a.b=v` names the field and the nearest existing one (from
    ml_collections' suggestion); a config file that fails names the file and its
    error; anything else gives the innermost error's first line.
    """
    text = ' '.join(str(x) for x in _chain(e)).replace('\\n', ' ').replace("\\'", "'")
    unknown = re.search(r"'(\w+)'", text)
    near = re.search(r'Did you mean "(\w+)"', text)
    for arg in argv:
        name = arg.split('=', 1)[0].lstrip('-')
        if unknown and name.startswith('config.') and name.endswith('.' + unknown.group(1)):
            field = name[len('config.') :]
            parent = field.rsplit('.', 1)[0] + '.' if '.' in field else ''
            hint = f' (did you mean {parent}{near.group(1)}?)' if near else ''
            return f'--{name}: the config has no field {field}{hint}'
    innermost = list(_chain(e))[-1]
    first = (str(innermost).strip().splitlines() or [type(innermost).__name__])[0]
    return f'{first} (see --helpshort)'


def parse_flags(argv: Sequence[str]) -> list[str]:
    """absl flag parsing where a mistake is one message and exit status 2 (not a
    traceback); `--debug` shows the traceback."""
    from absl import flags  # pylint: disable=import-outside-toplevel

    try:
        return flags.FLAGS(argv)
    except Exception as e:  # noqa: BLE001 - absl, ml_collections and config-file errors
        if '--debug' in argv or os.environ.get(DEBUG_ENV) == '1':
            raise
        print(f'error: {flag_error_message(e, argv)}', file=sys.stderr)
        sys.exit(2)


def loaded_config(config):
    """The --config flag's value; a config file that failed to load is a UserError
    naming the file (ml_collections defers that error to the first use)."""
    try:
        config.get('trainer')
    except OSError as e:
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]
        raise UserError(f'--config: {lines[-1] if lines else e}') from e
    return config
