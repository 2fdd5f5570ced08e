"""The import contracts of setup.cfg hold: arrows point down, stages are leaves,
data_pipelines imports nothing from vmae2 (import-linter builds the real graph)."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_import_contracts_hold():
    pytest.importorskip('importlinter', reason='needs the [test] extra (import-linter)')
    # In a subprocess: import-linter reconfigures logging (dictConfig) when it runs.
    code = 'import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports())'
    out = subprocess.run(
        [sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stdout[-4000:]
    assert '3 kept, 0 broken' in out.stdout
