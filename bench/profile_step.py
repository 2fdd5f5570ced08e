"""Where the vmae2 step time goes on CPU: sub-part timings, or a per-category
breakdown side by side with the same-work PyTorch step.

Usage::

    taskset -c 1 python bench/profile_step.py --model vit_b --batch 2 [--repeats 3]
        [--row dual|v1] [--attention einsum] [--parts enc,loss,grad,opt,step]
    python bench/profile_step.py --against-torch --model vit_b --batch 2 --threads 2
        [--cpus 0,1] [--rows dual,v1,finetune] [--xla-flags '...']

Sub-parts (the first form), each jitted on its own and interleaved round-robin
(median of --repeats): encoder forward, encoder + decoder forward (the loss), loss
value_and_grad, the optimizer update alone, the whole train step.

`--against-torch` profiles bench/train_step.py's two workers of each row (the step
`vmae2.core.build` makes, and the same-work PyTorch step), each in its own pinned
subprocess: XLA:CPU's per-thunk trace (jax.profiler with
`--xla_cpu_enable_xprof_traceme`, each thunk classified from the compiled HLO: its
opcodes and its `jax.named_scope`) against torch.profiler's per-operator self times
(classified by operator name and by the enclosing SDPA / optimizer call). Categories:
dense matmuls (linear layers, patch embedding, fwd + bwd), attention core
(softmax(q k^T) v and its backward), reductions (layer norms, loss), elementwise
(GELU, residuals, casts), data movement (copies, transposes, gathers, concatenations),
optimizer (AdamW), other. Seconds per step, mean of --repeats profiled steps (XLA: one
trace per step, since a longer trace slows the later steps) after three warm-up steps
(the fastest warm-up step is the unprofiled wall time). XLA:CPU runs
independent thunks concurrently; where they overlap, the time is shared equally among
them, so its profiled total is the busy wall time. Tracing slows XLA:CPU's many small
thunks more than torch's operators: compare the two wall-time rows before reading
the categories as shares of the unprofiled step.
"""

from __future__ import annotations

import argparse
import collections
import glob
import json
import os
import re
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


CATEGORIES = ('dense matmuls', 'attention core', 'reductions', 'elementwise',
              'data movement', 'optimizer', 'other')
_MOVEMENT = {'copy', 'transpose', 'gather', 'scatter', 'dynamic-slice', 'dynamic-update-slice',
             'concatenate', 'slice', 'pad', 'reshape', 'bitcast', 'broadcast', 'parameter',
             'constant', 'tuple', 'get-tuple-element', 'iota', 'reverse', 'select', 'compare'}
_CONTAINERS = {'while', 'call', 'conditional'}
_HLO_LINE = re.compile(r'^\s*(?:ROOT )?%?([\w.\-]+) = .*? ([a-z][a-z\-]*)\(')


def _hlo_index(text: str) -> dict:
    """instruction name -> (opcode, opcodes it runs (through fusions), op_name)."""
    comps, insts, current = {}, {}, None
    for line in text.splitlines():
        if line and not line.startswith(' ') and '{' in line and '(' in line:
            current = line.split()[0].lstrip('%')
            if current == 'ENTRY':
                current = line.split()[1].lstrip('%')
            comps[current] = []
            continue
        m = _HLO_LINE.match(line)
        if not m or current is None:
            continue
        name, opcode = m.groups()
        calls = re.findall(r'calls=%?([\w.\-]+)', line)
        op_name = re.search(r'op_name="([^"]*)"', line)
        insts[name] = (opcode, calls, op_name.group(1) if op_name else '')
        comps[current].append(name)

    def opcodes(comp, seen=()):
        out = set()
        for n in comps.get(comp, ()):
            op, calls, _ = insts[n]
            out.add(op)
            for c in calls:
                if c not in seen:
                    out |= opcodes(c, (*seen, c))
        return out

    # A fusion's opcodes are those of what it calls ('fusion' itself says nothing).
    return {n: (op, ({op}.union(*(opcodes(c) for c in calls)) if calls else {op}) - {'fusion'},
                name_)
            for n, (op, calls, name_) in insts.items()}


def _xla_category(opcode: str, ops: set, op_name: str) -> str | None:
    if opcode in _CONTAINERS:
        return None  # its thunks are traced one by one
    if 'optimizer' in op_name:
        return 'optimizer'
    if '/attention' in op_name:
        return 'attention core'
    if ops & {'dot', 'convolution'}:
        return 'dense matmuls'
    if 'reduce' in ops:
        return 'reductions'
    if ops <= _MOVEMENT:
        return 'data movement'
    return 'elementwise'


def _torch_category(name: str, ancestors: list[str]) -> str:
    if any(a.startswith('Optimizer.step') for a in ancestors):
        return 'optimizer'
    if any('scaled_dot_product' in a for a in [name, *ancestors]):
        return 'attention core'
    short = name.removeprefix('aten::')
    if short in ('mm', 'addmm', 'bmm', 'matmul', 'linear', 'convolution', '_convolution',
                 'mkldnn_convolution', 'convolution_backward', 'addmm_', 'baddbmm'):
        return 'dense matmuls'
    if 'layer_norm' in short or short in ('sum', 'mean', 'mse_loss', 'log_softmax',
                                          '_log_softmax', '_log_softmax_backward_data',
                                          'nll_loss', 'nll_loss_backward', 'nll_loss_forward',
                                          'var_mean', 'norm', 'softmax', '_softmax'):
        return 'reductions'
    if short in ('copy_', 'clone', 'contiguous', 'cat', 'index', 'index_put_', 'gather',
                 'scatter', 'masked_select', 'stack', '_index_put_impl_', 'index_select',
                 'masked_scatter', 'nonzero', 'fill_', 'zero_', 'zeros', 'empty', 'repeat'):
        return 'data movement'
    if short in ('gelu', 'gelu_backward', 'add', 'add_', 'mul', 'mul_', 'sub', 'div', 'div_',
                 'pow', 'neg', 'sqrt', 'rsqrt', 'exp', 'to', '_to_copy', 'where', 'expand',
                 'threshold_backward', 'addcmul_', 'addcdiv_', 'lerp_', 'fill', 'sub_',
                 'clamp', 'clamp_min', 'ones_like', 'zeros_like'):
        return 'elementwise'
    return 'other'


def _profile_jax(args) -> dict:
    import tempfile

    import jax
    from jax.profiler import ProfileData

    from bench import train_step as tsb

    w = tsb.JaxWorker(args)
    index = _hlo_index(w.compiled.as_text())
    plain = min(w.step() for _ in range(3))  # warm-up; the fastest is the unprofiled time
    walls, out, largest = [], dict.fromkeys(CATEGORIES, 0.0), collections.Counter()
    for _ in range(args.repeats):  # one trace per step: a longer trace slows later steps
        with tempfile.TemporaryDirectory() as d:
            with jax.profiler.trace(d):
                walls.append(w.step())
            (pb,) = glob.glob(os.path.join(d, '**', '*.xplane.pb'), recursive=True)
            data = ProfileData.from_file(pb)
        spans = []
        for plane in data.planes:
            for line in plane.lines:
                for e in line.events:
                    name = dict(e.stats).get('hlo_op')
                    cat = _xla_category(*index[name]) if name in index else None
                    if cat:
                        spans.append((e.start_ns, e.start_ns + e.duration_ns, cat, name))
        for (cat, name), ns in _share_overlaps(spans).items():
            out[cat] += ns * 1e-9 / args.repeats
            if cat in ('elementwise', 'data movement'):
                largest[name] += ns * 1e-9 / args.repeats
    top = [(f'{n} {index[n][2].rsplit("/", 1)[-1]}', v) for n, v in largest.most_common(6)]
    return {'wall': statistics.mean(walls), 'plain': plain, 'categories': out, 'top': top}


def _share_overlaps(spans) -> collections.Counter:
    """Wall time per (category, thunk), time where thunks overlap shared equally.

    XLA:CPU runs independent thunks concurrently on its thread pool, and a thunk
    that splits its work waits for the pool: summed durations exceed the wall time.
    Sharing each instant among the thunks open then makes the total the busy wall
    time.
    """
    edges = sorted([(s, 1, i) for i, (s, _, _, _) in enumerate(spans)]
                   + [(e, -1, i) for i, (_, e, _, _) in enumerate(spans)])
    out, open_, last = collections.Counter(), set(), None
    for t, kind, i in edges:
        if open_ and last is not None and t > last:
            share = (t - last) / len(open_)
            for j in open_:
                out[spans[j][2], spans[j][3]] += share
        (open_.add if kind == 1 else open_.discard)(i)
        last = t
    return out


def _profile_torch(args) -> dict:
    import torch

    from bench import train_step as tsb

    w = tsb.TorchWorker(args)
    plain = min(w.step() for _ in range(3))  # warm-up; the fastest is the unprofiled time
    walls, out, other = [], dict.fromkeys(CATEGORIES, 0.0), collections.Counter()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(args.repeats):
            walls.append(w.step())
    for e in prof.events():
        if e.name.startswith(('Optimizer.', 'ProfilerStep', 'autograd::engine')) or '#' in e.name:
            continue  # annotations: their operators are counted themselves
        ancestors, p = [], e.cpu_parent
        while p is not None:
            ancestors.append(p.name)
            p = p.cpu_parent
        if any('scaled_dot_product' in a for a in ancestors):
            continue  # counted in the SDPA operator's own total below
        seconds = (e.cpu_time_total if 'scaled_dot_product' in e.name else e.self_cpu_time_total)
        cat = _torch_category(e.name, ancestors)
        out[cat] += seconds * 1e-6 / args.repeats
        if cat == 'other':
            other[e.name] += seconds * 1e-6 / args.repeats
    return {'wall': statistics.mean(walls), 'plain': plain, 'categories': out,
            'top': other.most_common(4)}


def _against_torch(args) -> None:
    from bench import machine
    from bench import train_step as tsb

    cpus = args.cpus or ','.join(map(str, range(args.threads)))
    print(machine.describe())
    print(f'\nmodel {args.model}, batch {args.batch}, {args.threads} threads (taskset {cpus}), '
          f'mean of {args.repeats} profiled steps; XLA flags: {args.xla_flags or "none"}\n')
    for row in args.rows.split(','):
        res = {}
        for impl in ('jax', tsb.SAME_WORK[row]):
            env = dict(os.environ, JAX_PLATFORMS='cpu', OMP_NUM_THREADS=str(args.threads),
                       TF_CPP_MIN_LOG_LEVEL='2')
            env['XLA_FLAGS'] = f'--xla_cpu_enable_xprof_traceme=true {args.xla_flags}'.strip()
            env['GLIBC_TUNABLES'] = ':'.join(tsb._malloc_tunables('thp-keep'))
            cmd = ['taskset', '-c', cpus, sys.executable, os.path.abspath(__file__),
                   '--profile-worker', impl, '--row', row, '--model', args.model, '--batch',
                   str(args.batch), '--threads', str(args.threads), '--repeats',
                   str(args.repeats), '--attention', args.attention]
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
            if done.returncode:
                raise SystemExit(f'{impl} worker failed: {done.stderr[-600:]}')
            res[impl] = json.loads(done.stdout.strip().splitlines()[-1])
        j, t = res['jax'], res[tsb.SAME_WORK[row]]
        print(f'{tsb.ROW_TITLES[row]}: vmae2 [{args.attention}] against '
              f'{tsb.SAME_WORK[row]}, seconds per step\n')
        print('| category | vmae2 s | torch s | vmae2 / torch | vmae2 - torch s |')
        print('|---|---|---|---|---|')
        for c in CATEGORIES:
            a, b = j['categories'][c], t['categories'][c]
            ratio = f'{a / b:.2f}' if b > 1e-4 else '-'
            print(f'| {c} | {a:.3f} | {b:.3f} | {ratio} | {a - b:+.3f} |')
        sj, st = sum(j['categories'].values()), sum(t['categories'].values())
        print(f'| profiled total | {sj:.3f} | {st:.3f} | {sj / st:.2f} | {sj - st:+.3f} |')
        for key, what in (('wall', 'wall time, profiled'), ('plain', 'wall time, not profiled')):
            print(f'| {what} | {j[key]:.3f} | {t[key]:.3f} | {j[key] / t[key]:.2f} '
                  f'| {j[key] - t[key]:+.3f} |')
        print()
        top = lambda r: ', '.join(f'{n} {v:.3f}' for n, v in r['top'])  # noqa: E731
        print(f'largest vmae2 elementwise / data-movement thunks: {top(j)}; largest torch "other" '
              f'operators: {top(t)}\n')


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument('--model', default='vit_b')
    ap.add_argument('--batch', type=int, default=2)
    ap.add_argument('--repeats', type=int, default=3)
    ap.add_argument('--row', default='dual', choices=('dual', 'v1', 'finetune'))
    ap.add_argument('--attention', default='recompute')
    ap.add_argument('--parts', default='enc,loss,grad,opt,step')
    ap.add_argument('--against-torch', action='store_true')
    ap.add_argument('--rows', default='dual,v1,finetune')
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--cpus', default='')
    ap.add_argument('--xla-flags', default='')
    ap.add_argument('--profile-worker', default='', help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    sys.path.insert(0, ROOT)
    if args.profile_worker:
        args.impl = args.profile_worker
        fn = _profile_jax if args.impl == 'jax' else _profile_torch
        print(json.dumps(fn(args)))
        return
    if args.against_torch:
        _against_torch(args)
        return
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
