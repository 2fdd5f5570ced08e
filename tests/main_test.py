"""The command line: `python main.py --config configs/demo.py --workdir W` runs."""

import json
import os
import subprocess
import sys

import data_helpers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_demo_command_runs_a_few_steps_and_resumes(tmp_path):
    work = str(tmp_path / 'demo')

    def run(total_steps, *extra):
        cmd = [
            sys.executable,
            'main.py',
            '--config',
            'configs/demo.py',
            '--workdir',
            work,
            f'--config.optim.total_steps={total_steps}',
            '--config.log_every=1',
            '--config.checkpoint_every=2',
            '--config.batch_size=2',
            *extra,
        ]
        # The made videos go to this test's own cache.
        env = dict(os.environ, JAX_PLATFORMS='cpu', XLA_FLAGS='', XDG_CACHE_HOME=str(tmp_path))
        subprocess.run(cmd, cwd=ROOT, env=env, check=True, timeout=600)
        return [r for r in map(json.loads, open(os.path.join(work, 'metrics.jsonl'))) if 'loss' in r]

    rows = run(3)
    assert [r['step'] for r in rows] == [1, 2, 3]
    assert all(r['loss'] > 0 for r in rows)
    assert any(f.startswith('reconstruction_') for f in os.listdir(work))
    # A longer schedule changes the run: with the explicit flag it resumes at 3.
    rows = run(4, '--allow_config_change')
    assert [r['step'] for r in rows] == [1, 2, 3, 4]
    assert os.path.exists(os.path.join(work, 'config.json'))


@data_helpers.NO_DEV_SHM
def test_worker_processes_leave_no_shared_memory(tmp_path):
    """Training with grain worker processes ends with every batch's shared memory
    freed: no segment left in /dev/shm, no resource-tracker leak warning."""
    before = data_helpers.shared_memory_segments()
    cmd = [
        sys.executable, 'main.py', '--config', 'configs/smoke.py', '--workdir', str(tmp_path / 'w'),
        '--config.data.worker_count=2', '--config.optim.total_steps=3',
    ]
    env = dict(os.environ, JAX_PLATFORMS='cpu')
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert 'leaked shared_memory' not in out.stderr, out.stderr[-3000:]
    assert not data_helpers.shared_memory_segments() - before
