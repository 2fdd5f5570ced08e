"""The memory-plan tool compiles ahead of time on fake devices and prints a table."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_memory_plan_runs_on_a_small_config():
    cmd = [
        sys.executable,
        '-m',
        'vmae2.tools.memory_plan',
        '--config',
        'configs/demo.py',
        '--devices',
        '2',
        '--remat',
        'none',
        '--dtypes',
        'float32',
        '--batch-per-device',
        '2',
        '--finetune-batch-per-device',
        '2',
        '--depths',
        'full',
    ]
    env = dict(os.environ, XLA_FLAGS='', JAX_PLATFORMS='cpu')
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [line for line in out.stdout.splitlines() if 'GiB/device' in line]
    assert len(rows) == 2 and rows[0].startswith('pretrain') and rows[1].startswith('finetune')
    total = float(rows[0].split('total')[1].split()[0])
    assert total > 0
