"""Device mesh, logical-axis rules, and shardings for state and batch.

Parameters carry logical axis names (metadata `logical_axes`, set by the
models); `rules` map a logical name to a mesh axis, a tuple of axes, or None.
A dimension is sharded only when the mesh axis size divides it; otherwise it
stays replicated, except that an FSDP axis then moves to another dimension of
the same parameter that divides (see `logical_to_spec`). docs/scaling.md lists
the rules, the mesh shapes and the memory they need.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import jax
import numpy as np
from flax import nnx
from jax.experimental import multihost_utils
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P

from vmae2.errors import ConfigError

# Axes the batch dimension is split over (those present in the mesh).
BATCH_AXES = ('data', 'fsdp')


def make_mesh(axes: Mapping[str, int] | Sequence[tuple[str, int]]) -> jax.sharding.Mesh:
    """Builds a mesh over all devices from {axis: size}; one size may be -1.

    Raises:
      ConfigError: when the sizes do not multiply to the device count.
    """
    items = list(axes.items()) if isinstance(axes, Mapping) else list(axes)
    names = [n for n, _ in items]
    sizes = [int(s) for _, s in items]
    n_dev = jax.device_count()
    if sizes.count(-1) > 1:
        raise ConfigError(f'mesh {dict(items)}: at most one axis may be -1')
    if -1 in sizes:
        known = math.prod(s for s in sizes if s != -1)
        if n_dev % known:
            raise ConfigError(f'mesh {dict(items)}: {n_dev} devices are not divisible by {known}')
        sizes[sizes.index(-1)] = n_dev // known
    if math.prod(sizes) != n_dev:
        raise ConfigError(
            f'mesh {dict(zip(names, sizes))} needs {math.prod(sizes)} devices, '
            f'found {n_dev}; use -1 for one axis to take the rest'
        )
    return jax.make_mesh(tuple(sizes), tuple(names), axis_types=(AxisType.Auto,) * len(names))


MESH_AXES = ('data', 'fsdp', 'tensor')


def mesh_from_config(mesh_cfg: Mapping[str, int]) -> jax.sharding.Mesh:
    """The mesh of `config.mesh` ({axis: size}, axes among MESH_AXES, one size may be -1).

    Raises:
      ConfigError: an unknown axis, or sizes that do not fit the devices.
    """
    axes = dict(mesh_cfg)
    unknown = set(axes) - set(MESH_AXES)
    if unknown:
        raise ConfigError(f'mesh axes {sorted(unknown)} unknown; use {MESH_AXES}')
    return make_mesh([(a, axes[a]) for a in MESH_AXES if a in axes])


def batch_axes(mesh) -> tuple[str, ...]:
    return tuple(a for a in BATCH_AXES if a in mesh.axis_names)


def batch_sharding(mesh) -> NamedSharding:
    """Leading (batch) dimension split over the data-parallel axes."""
    return NamedSharding(mesh, P(batch_axes(mesh)))


def per_shard(fn, mesh):
    """`fn` on each device's rows of batch-sharded arrays (shard_map over the batch axes).

    For per-row work that loops (lax.map): under plain jit the partitioner cannot
    split a loop over the sharded batch axis and would gather the batch on every
    device. Every input and output is split along its leading axis.
    """
    spec = P(batch_axes(mesh))
    return jax.shard_map(fn, mesh=mesh, in_specs=spec, out_specs=spec, check_vma=False)


def replicated(mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


# Mesh axes that may move to another dimension of a parameter when the one its
# logical name asks for does not divide (FSDP only needs *some* split).
FALLBACK_AXES = ('fsdp',)

# Default rules. Pure data parallelism needs none; FSDP shards the model width
# (present in every large kernel), tensor parallelism splits heads and the MLP
# hidden dimension Megatron-style. Rules naming an axis the mesh lacks are inert,
# so TENSOR_RULES can stay in place for a data-only mesh.
DATA_PARALLEL_RULES: dict[str, str | None] = {}
FSDP_RULES: dict[str, str | None] = {'embed': 'fsdp'}
TENSOR_RULES: dict[str, str | None] = {
    'embed': 'fsdp',
    'qkv': 'tensor',
    'heads': 'tensor',
    'mlp': 'tensor',
}


def _axes(rule) -> tuple[str, ...]:
    if not rule:
        return ()
    return (rule,) if isinstance(rule, str) else tuple(rule)


def rules_shard(rules: Mapping, mesh) -> bool:
    """True when some rule names a mesh axis of size > 1 (the rules split something)."""
    return any(
        a in mesh.axis_names and mesh.shape[a] > 1 for rule in rules.values() for a in _axes(rule)
    )


def logical_to_spec(
    logical: Sequence[str | None] | None,
    shape: Sequence[int],
    mesh,
    rules: Mapping[str, str | Sequence[str] | None],
    fallback_axes: Sequence[str] = FALLBACK_AXES,
) -> P:
    """PartitionSpec for one array from its logical axis names.

    Args:
      logical: one logical name (or None) per dimension, e.g. ('embed', 'mlp').
      shape: the array shape.
      mesh: a jax Mesh (only `axis_names` and `shape` are read).
      rules: logical name -> mesh axis name, a tuple of axis names (the dimension
        is split over their product), or None (replicated).
      fallback_axes: mesh axes that, when the dimension their rule names does not
        divide by the axis size, go to the largest other dimension that divides
        and is not split yet (ViT-g's 1408 = 2^7 * 11 on 256 devices: the kernel
        is split along its 6144/4224 dimension instead).

    Returns:
      A PartitionSpec of len(shape) entries. Each mesh axis is used at most once;
      axes missing from the mesh or of size 1 are left out (replicated).
    """
    if not logical:
        return P()
    spec: list = [None] * len(shape)
    used: set[str] = set()
    missed: list[str] = []
    for i, (name, dim) in enumerate(zip(logical, shape)):
        axes = tuple(
            a
            for a in _axes(rules.get(name) if name else None)
            if a in mesh.axis_names and mesh.shape[a] > 1
        )
        if not axes:
            continue
        size = math.prod(mesh.shape[a] for a in axes)
        if used.isdisjoint(axes) and dim % size == 0:
            spec[i] = axes[0] if len(axes) == 1 else axes
            used.update(axes)
        else:
            missed.extend(a for a in axes if a not in used)
    for axis in missed:
        if axis not in fallback_axes or axis in used or mesh.shape[axis] == 1:
            continue
        free = [i for i in range(len(shape)) if spec[i] is None and shape[i] > 1]
        for i in sorted(free, key=lambda i: -shape[i]):
            if shape[i] % mesh.shape[axis] == 0:
                spec[i] = axis
                used.add(axis)
                break
    return P(*spec)


def param_specs(
    abstract_model: nnx.Module, mesh, rules, fallback_axes: Sequence[str] = FALLBACK_AXES
) -> dict:
    """Pure-dict tree of PartitionSpecs matching nnx.to_pure_dict(params).

    Reads each nnx.Param's `logical_axes` metadata (a Param without it is
    replicated); see `logical_to_spec`.
    """
    state = nnx.state(abstract_model, nnx.Param)
    specs = jax.tree.map(
        lambda v: logical_to_spec(
            v.get_metadata().get('logical_axes'), v.shape, mesh, rules, fallback_axes
        ),
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


def bytes_per_device(params, shardings) -> int:
    """Parameter bytes one device holds under `shardings` (largest shard per leaf)."""
    total = 0
    for x, s in zip(
        jax.tree.leaves(params),
        jax.tree.leaves(shardings, is_leaf=lambda s: isinstance(s, NamedSharding)),
    ):
        shard = s.shard_shape(tuple(x.shape)) if x.shape else ()
        total += int(np.prod(shard)) * np.dtype(x.dtype).itemsize
    return total


def describe(params, shardings, min_bytes: int = 0) -> list[tuple[str, tuple, P]]:
    """(path, shape, spec) of every parameter of at least `min_bytes`, for logs/docs."""
    rows = []
    flat, _ = jax.tree_util.tree_flatten_with_path(params)
    specs = jax.tree.leaves(shardings, is_leaf=lambda s: isinstance(s, NamedSharding))
    for (path, x), s in zip(flat, specs):
        if int(np.prod(x.shape)) * np.dtype(x.dtype).itemsize >= min_bytes:
            rows.append(('/'.join(str(getattr(k, 'key', k)) for k in path), tuple(x.shape), s.spec))
    return rows


def global_batch(local: Mapping[str, np.ndarray], mesh) -> dict[str, jax.Array]:
    """Per-process numpy arrays -> global jax.Arrays split over the batch axes."""
    sh = batch_sharding(mesh)
    return {k: jax.make_array_from_process_local_data(sh, v) for k, v in local.items()}


def host_local_rows(x: jax.Array, mesh) -> np.ndarray:
    """This process's rows of a batch-sharded global array, as numpy."""
    spec = batch_sharding(mesh).spec
    return np.asarray(multihost_utils.global_array_to_host_local_array(x, mesh, spec))


def to_host(tree):
    """Device tree -> numpy tree with the full arrays on every process."""
    if all(getattr(x, 'is_fully_addressable', True) for x in jax.tree.leaves(tree)):
        return jax.tree.map(np.asarray, jax.device_get(tree))
    return jax.tree.map(np.asarray, multihost_utils.process_allgather(tree, tiled=True))


def place(tree, shardings):
    """Host numpy tree -> jax.Arrays with `shardings` (each process fills its shards)."""
    return jax.tree.map(
        lambda x, s: jax.make_array_from_callback(x.shape, s, lambda idx: x[idx]), tree, shardings
    )
