"""The import contracts of setup.cfg hold: arrows point down, stages are leaves,
data_pipelines imports nothing from vmae2 (import-linter builds the real graph)."""

import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_import_contracts_hold(monkeypatch):
    cli = pytest.importorskip('importlinter.cli', reason='needs the [test] extra (import-linter)')
    monkeypatch.chdir(ROOT)
    assert cli.lint_imports(config_filename='setup.cfg') == 0
