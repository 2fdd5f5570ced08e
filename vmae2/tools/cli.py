"""How every vmae2 command ends: a user mistake is one message and exit status 2.

`run_cli(main)` runs `main()`; a `vmae2.errors.UserError` (or a missing file)
prints `error: <message>` to stderr and exits 2, without a traceback unless
VMAE2_DEBUG=1 is set (main.py also takes --debug). Other exceptions are bugs or
failures of the machine and keep their traceback.
"""

from __future__ import annotations

import os
import sys
from typing import Callable

from vmae2.errors import UserError

DEBUG_ENV = 'VMAE2_DEBUG'


def user_error_message(e: BaseException) -> str | None:
    """The one-line message for a user mistake, else None."""
    if isinstance(e, UserError):
        return str(e)
    if isinstance(e, FileNotFoundError):
        return f'{e.filename or e}: no such file or directory' if e.filename else str(e)
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
