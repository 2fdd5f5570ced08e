"""Where a figure was measured: CPU model and vendor, the ISA extensions that decide
matmul speed, the BLAS / oneDNN libraries in use, library versions, accelerators.

Every benchmark prints `describe()` above its table and stores `info()` in its JSON:
the same code can lead on one CPU and trail on another (an Intel Xeon with AMX runs
PyTorch's bf16 matmuls through oneDNN about 8x faster than XLA:CPU does; an AMD EPYC
has no AMX), so a ratio means nothing without its machine.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re

# CPU flags that change which matmul kernels can run.
ISA_FLAGS = (
    'avx2', 'fma', 'avx512f', 'avx512bw', 'avx512vl', 'avx512_vnni', 'avx512_bf16', 'avx512_fp16',
    'amx_tile', 'amx_bf16', 'amx_int8',
)
PACKAGES = ('jax', 'jaxlib', 'flax', 'optax', 'orbax-checkpoint', 'grain', 'numpy', 'torch', 'av')


def _cpuinfo() -> dict[str, str]:
    out: dict[str, str] = {}
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                key, _, value = line.partition(':')
                out.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return out


def _versions() -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def _blas() -> dict[str, str]:
    """numpy's BLAS (threadpoolctl when installed) and torch's MKL / oneDNN build."""
    out = {}
    try:
        from threadpoolctl import threadpool_info  # pylint: disable=import-outside-toplevel

        for pool in threadpool_info():
            out[f'numpy {pool.get("internal_api")}'] = (
                f'{pool.get("version")} ({pool.get("architecture") or "?"})'
            )
    except ImportError:
        pass
    try:
        import torch  # pylint: disable=import-outside-toplevel

        cfg = torch.__config__.show()
        for name, pattern in (
            ('MKL', r'Math Kernel Library Version ([\d.]+)'),
            ('oneDNN', r'MKL-DNN v([\d.]+)'),
            ('CPU capability', r'CPU capability usage: (\w+)'),
        ):
            m = re.search(pattern, cfg)
            if m:
                out[f'torch {name}'] = m.group(1)
    except ImportError:
        pass
    return out


def _devices() -> list[str]:
    if 'jax' not in {m.split('.')[0] for m in list(__import__('sys').modules)}:
        return []
    import jax  # pylint: disable=import-outside-toplevel

    return sorted({f'{d.platform}:{d.device_kind}' for d in jax.devices()})


def info() -> dict:
    """A JSON-able record of the machine (see module docstring)."""
    cpu = _cpuinfo()
    flags = set(cpu.get('flags', '').split())
    return {
        'cpu_model': cpu.get('model name', platform.processor() or '?'),
        'cpu_vendor': cpu.get('vendor_id', '?'),
        'cpus_visible': len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count(),
        'isa': [f for f in ISA_FLAGS if f in flags],
        'blas': _blas(),
        'versions': _versions(),
        'devices': _devices(),
        'xla_flags': os.environ.get('XLA_FLAGS', ''),
        'python': platform.python_version(),
    }


def describe(record: dict | None = None) -> str:
    """One paragraph for the top of a benchmark table."""
    r = record or info()
    lines = [
        f'machine: {r["cpu_model"]} ({r["cpu_vendor"]}), {r["cpus_visible"]} CPUs visible; '
        f'ISA: {" ".join(r["isa"]) or "none of interest"}',
        'libraries: ' + ', '.join(f'{k} {v}' for k, v in r['versions'].items()),
    ]
    if r['blas']:
        lines.append('BLAS/oneDNN: ' + ', '.join(f'{k} {v}' for k, v in r['blas'].items()))
    if r['devices']:
        lines.append('devices: ' + ', '.join(r['devices']))
    return '\n'.join(lines)


if __name__ == '__main__':
    print(describe())
