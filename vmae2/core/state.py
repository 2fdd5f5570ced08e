"""The train state and its sharded creation.

`TrainState` holds what a step changes (params, opt_state, step) and the run's
base random key; every step's randomness is `fold_in(rng, step)`, so a run is
reproducible from its seed and a resumed run draws the same masks, crops of
the device augmentation and drop-path keys as an uninterrupted one.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from vmae2.runtime import sharding

log = logging.getLogger('vmae2')


@flax.struct.dataclass
class TrainState:
    """Attributes:
    step: int32 [] optimisation steps taken.
    params: the model's parameters (nnx pure dict).
    opt_state: optax state for `params`.
    rng: uint32 [2] base key data (jax.random.key_data of key(seed)).
    """

    step: jax.Array
    params: Any
    opt_state: Any
    rng: jax.Array

    def step_key(self) -> jax.Array:
        """The key of this step: fold_in(key(seed), step)."""
        return jax.random.fold_in(jax.random.wrap_key_data(self.rng), self.step)

    def as_dict(self) -> dict:
        """The checkpointed form (checkpoints before `rng` existed hold the first three)."""
        return {'step': self.step, 'params': self.params, 'opt_state': self.opt_state, 'rng': self.rng}


def seed_key_data(seed: int) -> jax.Array:
    return jax.random.key_data(jax.random.key(seed))


def param_tree(model: nnx.Module) -> dict:
    return nnx.to_pure_dict(nnx.state(model, nnx.Param))


def count_params(params) -> int:
    return int(sum(np.prod(x.shape) for x in jax.tree.leaves(params)))


def abstract_with(tree, shardings):
    """ShapeDtypeStructs carrying `shardings`: the target of restores and AOT compiles."""
    return jax.tree.map(
        lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), tree, shardings
    )


class StateFactory:
    """Everything about a train state except its values (nothing is allocated).

    Attributes:
      graphdef: the model's nnx graph (merge it with params to call the model).
      tx: the optax transformation.
      abstract: TrainState of ShapeDtypeStructs with their shardings.
      shardings: TrainState of NamedShardings (params from the logical-axis rules,
        optimiser moments like their params, scalars replicated).
    """

    def __init__(
        self,
        build_model: Callable[[nnx.Rngs], nnx.Module],
        make_tx: Callable[[Any], optax.GradientTransformation],
        mesh,
        rules,
        seed: int,
    ):
        self._build, self._seed, self.mesh = build_model, seed, mesh
        model = nnx.eval_shape(lambda: build_model(nnx.Rngs(seed)))
        self.graphdef, _ = nnx.split(model)
        pspecs = sharding.param_specs(model, mesh, rules)
        self.tx = make_tx(param_tree(model))
        abstract = jax.eval_shape(self._init)
        rep = sharding.replicated(mesh)
        param_sh = jax.tree.map(lambda s: jax.sharding.NamedSharding(mesh, s), pspecs)
        opt_sh = optax.tree_map_params(
            self.tx, lambda _, s: s, abstract.opt_state, param_sh, transform_non_params=lambda _: rep
        )
        self.shardings = TrainState(step=rep, params=param_sh, opt_state=opt_sh, rng=rep)
        self.abstract = abstract_with(abstract, self.shardings)
        self.rules = rules

    def _init(self) -> TrainState:
        return self.with_params(param_tree(self._build(nnx.Rngs(self._seed))))

    def with_params(self, params) -> TrainState:
        """A state at step 0 around `params` (fresh optimiser state)."""
        return TrainState(
            step=jnp.zeros((), jnp.int32), params=params, opt_state=self.tx.init(params),
            rng=seed_key_data(self._seed),
        )

    def create(self) -> TrainState:
        """The freshly initialised state, created sharded: nothing is built on one device."""
        state = jax.jit(self._init, out_shardings=self.shardings)()
        frac = sharding.sharded_fraction(self.abstract.params, self.shardings.params)
        if sharding.rules_shard(self.rules, self.mesh):
            level = logging.WARNING if frac < 0.98 else logging.INFO
            log.log(
                level,
                'parameters sharded: %.1f %% of bytes; %.1f MiB of parameters per device',
                100 * frac,
                sharding.bytes_per_device(self.abstract.params, self.shardings.params) / 2**20,
            )
        return state

    def from_params(self, params) -> TrainState:
        """A step-0 state (sharded) around host `params`, e.g. after init_from surgery."""
        placed = sharding.place(params, self.shardings.params)
        return jax.jit(self.with_params, out_shardings=self.shardings)(placed)
