"""Device mesh, logical-axis rules, and shardings for state and batch.

Parameters carry logical axis names (metadata `logical_axes`, set by the
models); `rules` map a logical name to a mesh axis (or None). A dimension is
sharded only when the mesh axis size divides it; otherwise it stays replicated.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import jax
import numpy as np
from flax import nnx
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P

# Axes the batch dimension is split over (those present in the mesh).
BATCH_AXES = ('data', 'fsdp')


def make_mesh(axes: Mapping[str, int] | Sequence[tuple[str, int]]) -> jax.sharding.Mesh:
    """Builds a mesh over all devices from {axis: size}; one size may be -1.

    Raises:
      ValueError: when the sizes do not multiply to the device count.
    """
    items = list(axes.items()) if isinstance(axes, Mapping) else list(axes)
    names = [n for n, _ in items]
    sizes = [int(s) for _, s in items]
    n_dev = jax.device_count()
    if sizes.count(-1) > 1:
        raise ValueError(f'mesh {dict(items)}: at most one axis may be -1')
    if -1 in sizes:
        known = math.prod(s for s in sizes if s != -1)
        if n_dev % known:
            raise ValueError(f'mesh {dict(items)}: {n_dev} devices are not divisible by {known}')
        sizes[sizes.index(-1)] = n_dev // known
    if math.prod(sizes) != n_dev:
        raise ValueError(
            f'mesh {dict(zip(names, sizes))} needs {math.prod(sizes)} devices, '
            f'found {n_dev}; use -1 for one axis to take the rest'
        )
    return jax.make_mesh(tuple(sizes), tuple(names), axis_types=(AxisType.Auto,) * len(names))


def batch_axes(mesh) -> tuple[str, ...]:
    return tuple(a for a in BATCH_AXES if a in mesh.axis_names)


def batch_sharding(mesh) -> NamedSharding:
    """Leading (batch) dimension split over the data-parallel axes."""
    return NamedSharding(mesh, P(batch_axes(mesh)))


def replicated(mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def logical_to_spec(
    logical: Sequence[str | None] | None,
    shape: Sequence[int],
    mesh,
    rules: Mapping[str, str | None],
) -> P:
    """PartitionSpec for one array from its logical axis names."""
    if not logical:
        return P()
    spec, used = [], set()
    for name, dim in zip(logical, shape):
        axis = rules.get(name) if name else None
        if axis and axis in mesh.axis_names and axis not in used and dim % mesh.shape[axis] == 0:
            spec.append(axis)
            used.add(axis)
        else:
            spec.append(None)
    return P(*spec)


def param_specs(abstract_model: nnx.Module, mesh, rules) -> dict:
    """Pure-dict tree of PartitionSpecs matching nnx.to_pure_dict(params)."""
    state = nnx.state(abstract_model, nnx.Param)
    specs = jax.tree.map(
        lambda v: logical_to_spec(v.get_metadata().get('logical_axes'), v.shape, mesh, rules),
        state,
        is_leaf=lambda x: isinstance(x, nnx.Variable),
    )
    return nnx.to_pure_dict(specs)


def sharded_fraction(params, shardings) -> float:
    """Fraction of parameter bytes that are split over at least one mesh axis."""
    total = sharded = 0
    for x, s in zip(
        jax.tree.leaves(params),
        jax.tree.leaves(shardings, is_leaf=lambda s: isinstance(s, NamedSharding)),
    ):
        nbytes = int(np.prod(x.shape)) * np.dtype(x.dtype).itemsize
        total += nbytes
        if any(a is not None for a in s.spec):
            sharded += nbytes
    return sharded / max(total, 1)
