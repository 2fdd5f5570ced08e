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
    ap.add_argument('--attention', default='recompute')
    ap.add_argument('--parts', default='enc,loss,grad,opt,step')
    args = ap.parse_args(argv)

    sys.path.insert(0, ROOT)
    import jax
    import numpy as np
    import optax
    from flax import nnx

    from bench import train_step as tsb
    from vmae2.core import build
    from vmae2.ops import targets
    from vmae2.trainers import registry

    # The pre-training stage's step, as training builds it (bench/train_step.py's rows).
    cfg = tsb._row_config(args)
    stage = registry.stage_for(cfg)
    exp = build.build(cfg, stage, abstract=True)
    state = exp.factory.create()
    graphdef, tx = exp.factory.graphdef, exp.factory.tx
    m = exp.model
    rng = np.random.default_rng(0)
    video = rng.integers(0, 256, (args.batch, m.num_frames, m.input_size, m.input_size, 3))
    video = jax.device_put(video.astype(np.uint8))
    batch, _ = jax.jit(stage.prepare)(jax.random.key(0), {'video': video})

    def loss_terms(params, batch):
        total, count, _ = stage.loss(nnx.merge(graphdef, nnx.State(params)), batch, None, {})
        return total / count

    @jax.jit
    def enc(params, batch):
        model = nnx.merge(graphdef, nnx.State(params))
        return model.encoder(targets.normalize(batch['video']), batch['visible'])

    loss = jax.jit(loss_terms)
    grad = jax.jit(jax.value_and_grad(loss_terms))
    grads = grad(state.params, batch)[1]

    @jax.jit
    def opt(params, opt_state, grads):
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    step = exp.step_fn
    p, o = state.params, state.opt_state
    fns = {
        'enc': lambda: enc(p, batch),
        'loss': lambda: loss(p, batch),
        'grad': lambda: grad(p, batch),
        'opt': lambda: opt(p, o, grads),
        'step': lambda: step(jax.tree.map(jax.numpy.copy, state), {'video': video}, {}),
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
