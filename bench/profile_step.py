"""Where the vmae2 pre-training step time goes on CPU (sub-part timings + XLA op costs).

Usage::

    taskset -c 1 python bench/profile_step.py --model vit_b --batch 2 [--repeats 3]
        [--row dual|v1] [--attention einsum] [--parts enc,loss,grad,opt,step]

Times, each jitted on its own and interleaved round-robin (median of --repeats):
encoder forward, encoder + decoder forward (the loss), loss value_and_grad,
the optimizer update alone, the whole train step.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument('--model', default='vit_b')
    ap.add_argument('--batch', type=int, default=2)
    ap.add_argument('--repeats', type=int, default=3)
    ap.add_argument('--row', default='dual', choices=('dual', 'v1'))
    ap.add_argument('--attention', default='einsum')
    ap.add_argument('--parts', default='enc,loss,grad,opt,step')
    args = ap.parse_args(argv)

    sys.path.insert(0, ROOT)
    import jax
    import jax.numpy as jnp
    import numpy as np
    from flax import nnx

    from bench import train_step as tsb
    from vmae2 import masking
    from vmae2 import optim
    from vmae2 import sharding
    from vmae2 import targets
    from vmae2.models import pretrain as pretrain_model
    from vmae2.trainers import common
    from vmae2.trainers import pretrain

    spec = tsb._spec(args.model)
    mspec = tsb._mask_spec(spec, args.row)
    mesh = sharding.make_mesh([('data', 1)])
    schedule = optim.cosine_schedule(1.5e-4, 1e-6, 1000, 10)

    def make_tx(p):
        return optim.make_optimizer(p, schedule=schedule, weight_decay=0.05, b1=0.9, b2=0.95)

    def build(rngs):
        return pretrain_model.PretrainModel(spec, attention_impl=args.attention, rngs=rngs)

    state, _, graphdef, tx = common.create_state(build, make_tx, mesh, {}, 0)
    rng = np.random.default_rng(0)
    video = jnp.asarray(
        rng.integers(
            0, 256, (args.batch, spec.num_frames, spec.input_size, spec.input_size, 3), np.uint8
        )
    )
    visible, decode, weight = masking.sample_masks(jax.random.key(0), mspec, args.batch)
    batch = {'video': video, 'visible': visible, 'decode': decode, 'weight': weight}
    loss_terms = pretrain.make_loss_fn(
        graphdef, spec, mspec, dtype=jnp.float32, normalize_target=True, drop_path=False
    )

    @jax.jit
    def enc(params, batch):
        model = nnx.merge(graphdef, nnx.State(params))
        return model.encoder(targets.normalize(batch['video']), batch['visible'])

    @jax.jit
    def loss(params, batch):
        return loss_terms(params, batch, None)

    @jax.jit
    def grad(params, batch):
        return jax.value_and_grad(loss_terms, has_aux=True)(params, batch, None)

    grads = grad(state['params'], batch)[1]

    @jax.jit
    def opt(params, opt_state, grads):
        updates, opt_state = tx.update(grads, opt_state, params)
        return optim_apply(params, updates), opt_state

    def optim_apply(params, updates):
        import optax

        return optax.apply_updates(params, updates)

    step = jax.jit(pretrain.make_train_step(loss_terms, tx, schedule, mspec, 0))
    p, o = state['params'], state['opt_state']
    fns = {
        'enc': lambda: enc(p, batch),
        'loss': lambda: loss(p, batch),
        'grad': lambda: grad(p, batch),
        'opt': lambda: opt(p, o, grads),
        'step': lambda: step(state, {'video': video}),
    }
    parts = args.parts.split(',')
    for k in parts:  # compile + warm up
        jax.block_until_ready(fns[k]())
    times = {k: [] for k in parts}
    for _ in range(args.repeats):
        for k in parts:
            t0 = time.perf_counter()
            jax.block_until_ready(fns[k]())
            times[k].append(time.perf_counter() - t0)
    for k in parts:
        t = times[k]
        print(f'{k:5s} median {statistics.median(t):.3f} s  (min {min(t):.3f} max {max(t):.3f})')


if __name__ == '__main__':
    main()
