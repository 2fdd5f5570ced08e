"""Host-side settings for training on CPU (docs/benchmarks.md section 9)."""

from __future__ import annotations

import logging
import os

# glibc malloc settings for CPU training. XLA:CPU allocates its multi-GB temporary
# buffer afresh every step; these keep that memory in the process (huge pages, one
# arena, no mmap, no trim) instead of faulting it back in page by page each step.
# They must be in the environment when Python starts.
CPU_GLIBC_TUNABLES = (
    'glibc.malloc.hugetlb=1:glibc.malloc.arena_max=1:glibc.malloc.mmap_max=0:'
    'glibc.malloc.trim_threshold=68719476736'
)


def hint_cpu_malloc() -> None:
    """Logs CPU_GLIBC_TUNABLES when training on CPU without glibc huge pages."""
    import jax  # pylint: disable=g-import-not-at-top

    if jax.default_backend() == 'cpu' and 'hugetlb' not in os.environ.get('GLIBC_TUNABLES', ''):
        logging.getLogger('vmae2').info(
            'Training on CPU: start with GLIBC_TUNABLES=%s for fewer page faults per step '
            '(docs/benchmarks.md section 9).',
            CPU_GLIBC_TUNABLES,
        )
