"""The benchmark scripts run end to end on a tiny size and print their tables."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(args, timeout=300):
    env = dict(os.environ)
    env['XLA_FLAGS'] = ''  # the bench workers pick their own devices/threads
    out = subprocess.run(
        [sys.executable] + args, capture_output=True, text=True, cwd=ROOT, env=env, timeout=timeout
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_train_step_bench_tiny():
    out = _run(
        [
            'bench/train_step.py',
            '--model',
            'tiny',
            '--batch',
            '2',
            '--repeats',
            '1',
            '--warmup',
            '0',
            '--rows',
            'finetune',
        ]
    )
    # One row (two worker processes) keeps this near 30 s on an idle 2-core machine.
    assert '| workload | implementation |' in out
    for impl in ('vmae2 [recompute]', 'torch-hf'):
        assert impl in out, out


def test_data_bench_tiny():
    out = _run(
        [
            'bench/data.py',
            '--videos',
            'test',
            '--workers',
            '0',
            '--clips',
            '2',
            '--repeats',
            '1',
            '--pipelines',
            'pretrain',
            '--formats',
            'raw,jpeg-arrayrecord',
        ]
    )
    assert '| pipeline | format |' in out
    assert '| pretrain | jpeg-arrayrecord | 0 |' in out, out
