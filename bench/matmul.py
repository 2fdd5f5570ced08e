"""One ViT-B-sized matmul (3136 x 768 x 3072, an MLP of a 2-clip fine-tuning step)
in float32 and bfloat16: XLA:CPU under each option worth trying, and PyTorch.

    python bench/matmul.py [--threads 2] [--cpus 0,1] [--repeats 20]

Every variant runs in its own subprocess pinned with taskset (XLA flags only take
effect at start-up); GFLOP/s = 2 M N K / median time. Answers: how far XLA:CPU's
kernel is from PyTorch's (MKL / oneDNN) on this CPU, and whether oneDNN, XNNPACK or
YNNPACK fusion flags change bfloat16 (on Intel CPUs with AMX, oneDNN's bf16 path is
where PyTorch's speed comes from).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
M, K, N = 3136, 768, 3072
XLA_VARIANTS = {
    'xla default': '',
    'xla onednn': '--xla_cpu_use_onednn=true',
    'xla xnnpack': '--xla_cpu_use_xnnpack=true',
    'xla ynn dot fusion': '--xla_cpu_experimental_ynn_fusion_type=dot',
    'xla xnn dot fusion': '--xla_cpu_experimental_xnn_fusion_type=dot',
    'xla onednn dot fusion': '--xla_cpu_use_onednn=true --xla_cpu_experimental_onednn_fusion_type=dot',
    'xla onednn custom call': '--xla_cpu_use_onednn=true --xla_cpu_experimental_onednn_custom_call=true',
    'xla 512-bit vectors': '--xla_cpu_prefer_vector_width=512',
}


def worker(impl: str, dtype: str, repeats: int, threads: int) -> float:
    """Median seconds of one matmul."""
    import numpy as np

    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((M, K), np.float32), rng.standard_normal((K, N), np.float32)
    if impl == 'torch':
        import torch

        torch.set_num_threads(threads)
        dt = torch.bfloat16 if dtype == 'bfloat16' else torch.float32
        x, y = torch.from_numpy(a).to(dt), torch.from_numpy(b).to(dt)
        run = lambda: torch.mm(x, y)  # noqa: E731
    else:
        import jax
        import jax.numpy as jnp

        x, y = jnp.asarray(a, dtype), jnp.asarray(b, dtype)
        f = jax.jit(lambda p, q: p @ q)
        run = lambda: f(x, y).block_until_ready()  # noqa: E731
    for _ in range(3):
        run()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--cpus', default='')
    ap.add_argument('--repeats', type=int, default=20)
    ap.add_argument('--json', default='')
    ap.add_argument('--worker', default='', help=argparse.SUPPRESS)
    ap.add_argument('--dtype', default='float32', help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps({'s': worker(args.worker, args.dtype, args.repeats, args.threads)}))
        return
    sys.path.insert(0, ROOT)
    from bench import machine

    cpus = args.cpus or ','.join(map(str, range(args.threads)))
    rows = []
    for dtype in ('float32', 'bfloat16'):
        for name, flags in [*XLA_VARIANTS.items(), ('torch', None)]:
            env = dict(os.environ, JAX_PLATFORMS='cpu', OMP_NUM_THREADS=str(args.threads))
            env['XLA_FLAGS'] = flags or ''
            cmd = ['taskset', '-c', cpus, sys.executable, os.path.abspath(__file__), '--worker',
                   'torch' if flags is None else 'jax', '--dtype', dtype, '--repeats',
                   str(args.repeats), '--threads', str(args.threads)]
            out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
            if out.returncode:
                rows.append({'impl': name, 'dtype': dtype, 'error': out.stderr.strip().splitlines()[-1]})
                continue
            s = json.loads(out.stdout.strip().splitlines()[-1])['s']
            rows.append({'impl': name, 'dtype': dtype, 'ms': 1e3 * s, 'gflops': 2 * M * N * K / s / 1e9})
    print(machine.describe())
    print(f'\n{M} x {K} x {N} matmul, {args.threads} threads (taskset {cpus}), median of {args.repeats}\n')
    print('| dtype | implementation | ms | GFLOP/s |\n|---|---|---|---|')
    for r in rows:
        if 'error' in r:
            print(f'| {r["dtype"]} | {r["impl"]} | error: {r["error"][:60]} | |')
        else:
            print(f'| {r["dtype"]} | {r["impl"]} | {r["ms"]:.1f} | {r["gflops"]:.0f} |')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump({'machine': machine.info(), 'rows': rows}, f, indent=1)


if __name__ == '__main__':
    main()
