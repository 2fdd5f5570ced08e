"""Training-step benchmark: vmae2 (JAX) against the PyTorch reference, on CPU.

Usage::

    python bench/train_step.py --model vit_b --batch 2 [--threads N] [--repeats R]
        [--rows dual,v1,finetune] [--jax 'recompute' --jax 'einsum --xla_flag=...']
        [--malloc default|thp|thp-keep] [--sequential]

Rows (one optimisation step each: forward + backward + AdamW update):

* ``dual``: pre-training with dual masking (tube 0.9 + run_cell 0.5). vmae2 against
  (a) transformers ``VideoMAEForPreTraining`` (its decoder is the V1 decoder over
  all encoder-masked tokens: it has no decoder masking) and (b) ``torch-dual``, a
  minimal re-statement of the official dual-masking forward
  (models/modeling_pretrain.py::PretrainVisionTransformer.forward) built from the
  same transformers modules: decoder sequence = visible + run_cell-kept tokens,
  loss on the encoder-masked ones among them.
* ``v1``: encoder-only masking (V1 decoder over all masked tokens), vmae2 against
  ``VideoMAEForPreTraining``.
* ``finetune``: Classifier with 400 classes, vmae2 against
  ``VideoMAEForVideoClassification``.

The vmae2 worker times the step `vmae2.core.build` makes for the row's stage (the
step training runs), with what the torch rows lack switched off: fine-tuning
without mixup, cutmix, label smoothing or erasing (its loss is then plain softmax
cross-entropy). `--baseline-tree DIR` times DIR's own copy of this script's worker
as a further implementation, so an older tree is measured side by side.

Every implementation runs in its own subprocess pinned with ``taskset`` to the
same ``--threads`` cores (XLA uses every visible core; torch gets
``set_num_threads``). The subprocesses of one row stay alive together and the
timed steps alternate between them (A B C A B C ...), so machine noise hits all
of them alike; the reported time is the median of ``--repeats`` steps after
``--warmup`` untimed steps. Each timed step starts ``--gap`` seconds after the
previous one ended, so that no worker's thread pool is still spinning on the
cores (torch's OpenMP threads busy-wait for a while after a parallel region).

Each ``--jax 'ATTN[+loop][:DTYPE] [XLA flags]'`` adds one vmae2 implementation
(attention implementation ATTN; ``+loop`` runs the blocks as an unrolled Python loop
instead of the default ``lax.scan``; DTYPE the compute dtype, e.g. ``:bfloat16``;
extra XLA flags for that worker only), so attention
implementations and compiler flags are compared in the same run. The ratio
column divides each time by the same-work PyTorch time (``torch-dual`` for
dual, ``torch-hf-v1`` for v1, ``torch-hf`` for finetune).

``--malloc`` (default ``thp-keep``) starts every worker, torch included, with the
same ``GLIBC_TUNABLES``: ``thp`` backs large allocations with transparent huge
pages; ``thp-keep`` also keeps freed memory in the process (one arena, no mmap,
no trim), as main.py recommends for CPU training. XLA:CPU allocates its multi-GB
temporary buffer afresh every step; with glibc's defaults the kernel takes millions
of page faults per step (docs/benchmarks.md section 9). ``--sequential`` runs one worker at a
time (start, warm up, one timed step, quit; round robin ``--repeats`` times)
for variants whose memory would not fit side by side.

Memory: ``rss`` is the growth of the process's peak RSS (``ru_maxrss``) from
after imports to the end; vmae2 also gets XLA's ``memory_analysis()`` of the
compiled step (arguments + temporaries). FLOPs: the analytic model FLOPs (6 x forward
MACs, vmae2/models/flops.py) per second, the same work for every implementation of a
row. (XLA's ``cost_analysis()`` counts a ``lax.scan`` body once, so it no longer
measures the whole step; ``--json`` still records it.)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROTO = '@@bench '

# name -> (variant, overrides, num_frames, input_size)
SIZES = {
    'vit_s': ('vit_s', (), 16, 224),
    'vit_b': ('vit_b', (), 16, 224),
    'tiny': (
        'vit_s',
        (
            ('width', 64),
            ('depth', 2),
            ('num_heads', 2),
            ('mlp_dim', 256),
            ('decoder_width', 32),
            ('decoder_num_heads', 2),
            ('decoder_mlp_dim', 128),
        ),
        4,
        64,
    ),
}
ROWS = {
    'dual': ('torch-hf-v1', 'torch-dual'),
    'v1': ('torch-hf-v1',),
    'finetune': ('torch-hf',),
}
MALLOC_CHOICES = ('default', 'thp', 'thp-keep')


def _malloc_tunables(name: str) -> list[str]:
    """GLIBC_TUNABLES entries given to every worker (docs/benchmarks.md section 9)."""
    from vmae2.runtime import host_env  # the driver's tree (the baseline worker has its own)

    return {
        'default': [],
        'thp': ['glibc.malloc.hugetlb=1'],
        'thp-keep': host_env.CPU_GLIBC_TUNABLES.split(':'),
    }[name]


SAME_WORK = {'dual': 'torch-dual', 'v1': 'torch-hf-v1', 'finetune': 'torch-hf'}
ROW_TITLES = {
    'dual': 'pre-train, dual masking (tube 0.9 + run_cell 0.5)',
    'v1': 'pre-train, encoder-only masking (V1 decoder)',
    'finetune': 'fine-tune, Classifier 400 classes',
}
NUM_CLASSES = 400


def _maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _send(obj: dict) -> None:
    sys.stdout.write(PROTO + json.dumps(obj) + '\n')
    sys.stdout.flush()


def _spec(model: str):
    from vmae2.models.config import ModelConfig

    variant, overrides, frames, size = SIZES[model]
    return ModelConfig.create(variant, **dict(overrides), num_frames=frames, input_size=size)


def _mask_spec(spec, row: str):
    from vmae2.ops import masking

    if row == 'dual':
        return masking.MaskSpec(spec.grid, 'tube', 0.9, 'run_cell', 0.5)
    return masking.MaskSpec(spec.grid, 'tube', 0.9, 'none', 0.0)


def _model_flops(spec, row: str, batch: int) -> float:
    """Analytic training FLOPs of one step: 6 x forward MACs x batch (perf_anchors.md)."""
    from vmae2.models import flops

    if row == 'finetune':
        macs = flops.classifier_macs(spec, NUM_CLASSES).total
    else:
        m = _mask_spec(spec, row)
        macs = flops.pretrain_macs(spec, m.num_visible, m.num_decode).total
    return 6.0 * macs * batch


# ----------------------------------------------------------------------------- JAX worker


def _row_config(args):
    """The run config of a row: the model of --model, the row's masking or augmentation
    off (the torch rows have none), one step per batch of --batch clips."""
    from configs import common as pretrain_configs
    from configs.finetune import common as finetune_configs

    variant, overrides, frames, size = SIZES[args.model]
    if args.row == 'finetune':
        c = finetune_configs.finetune_config(variant)
        c.num_classes = NUM_CLASSES
        c.augment.update(mixup=0.0, cutmix=0.0, smoothing=0.0)
        c.data.reprob = 0.0
        c.model.drop_path_rate = 0.0
    else:
        c = pretrain_configs.pretrain_config(variant)
        if args.row == 'v1':
            c.masking.decoder_mask_type, c.masking.decoder_mask_ratio = 'none', 0.0
    # 'ATTENTION[+loop][:DTYPE]': +loop runs the blocks as a Python loop instead of
    # lax.scan; DTYPE is the compute dtype (float32 by default).
    spec, _, dtype = args.attention.partition(':')
    attention, _, layout = spec.partition('+')
    c.dtype = dtype or 'float32'
    c.model.update(
        overrides=dict(overrides), num_frames=frames, input_size=size, attention_impl=attention,
        scan_layers=layout != 'loop',
    )
    c.data.num_sample = 1
    c.batch_size = args.batch
    c.optim.update(total_steps=1000, warmup_steps=10)
    return c


class JaxWorker:
    """The step `vmae2.core.build` makes for the row's stage: what training runs."""

    def __init__(self, args):
        import jax
        import numpy as np

        from vmae2.core import build
        from vmae2.trainers import registry

        self.jax = jax
        cfg = _row_config(args)
        stage = registry.stage_for(cfg)
        exp = build.build(cfg, stage, abstract=True)
        state = exp.factory.create()
        rng = np.random.default_rng(0)
        m = exp.model
        video = rng.integers(0, 256, (args.batch, m.num_frames, m.input_size, m.input_size, 3))
        batch = {'video': video.astype(np.uint8)}
        if args.row == 'finetune':
            batch['label'] = rng.integers(0, NUM_CLASSES, (args.batch,)).astype(np.int32)
            batch['erase_box'] = np.zeros((args.batch, 4), np.int32)
        batch = jax.device_put(batch)
        self.frozen = exp.frozen
        t0 = time.perf_counter()
        compiled = exp.step_fn.lower(state, batch, self.frozen).compile()
        self.compile_s = time.perf_counter() - t0
        cost = compiled.cost_analysis()
        if isinstance(cost, (list, tuple)):
            cost = cost[0] if cost else {}
        self.xla_flops = float((cost or {}).get('flops', 0.0))
        self.xla_bytes = float((cost or {}).get('bytes accessed', 0.0))
        try:
            mem = compiled.memory_analysis()
            self.xla_mem_mib = (
                mem.argument_size_in_bytes + mem.temp_size_in_bytes + mem.output_size_in_bytes
            ) / 2**20
            self.xla_temp_mib = mem.temp_size_in_bytes / 2**20
        except Exception:  # noqa: BLE001 - backend without memory analysis
            self.xla_mem_mib = self.xla_temp_mib = float('nan')
        self.compiled, self.state, self.batch = compiled, state, batch

    def step(self) -> float:
        t0 = time.perf_counter()
        self.state, metrics = self.compiled(self.state, self.batch, self.frozen)
        self.jax.block_until_ready((self.state, metrics))
        return time.perf_counter() - t0

    def info(self) -> dict:
        return {
            'compile_s': self.compile_s,
            'xla_flops': self.xla_flops,
            'xla_bytes': self.xla_bytes,
            'xla_mem_mib': self.xla_mem_mib,
            'xla_temp_mib': self.xla_temp_mib,
        }


# --------------------------------------------------------------------------- torch workers


def _hf_config(spec, *, classification: bool):
    from transformers import VideoMAEConfig

    a = spec
    return VideoMAEConfig(
        image_size=spec.input_size,
        patch_size=a.patch_size,
        num_channels=3,
        num_frames=spec.num_frames,
        tubelet_size=spec.tubelet_size,
        hidden_size=a.width,
        num_hidden_layers=a.depth,
        num_attention_heads=a.num_heads,
        intermediate_size=a.mlp_dim,
        hidden_act='gelu',
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        layer_norm_eps=1e-6,
        qkv_bias=True,
        use_mean_pooling=classification,
        decoder_num_attention_heads=a.decoder_num_heads,
        decoder_hidden_size=a.decoder_width,
        decoder_num_hidden_layers=spec.decoder_depth,
        decoder_intermediate_size=a.decoder_mlp_dim,
        norm_pix_loss=True,
        num_labels=NUM_CLASSES,
    )


def _tube_mask_np(spec, batch: int, rng):
    """bool [batch, N], True = encoder-masked (official TubeMaskingGenerator)."""
    import numpy as np

    t, h, w = spec.grid
    n_mask = int(0.9 * h * w)
    out = np.zeros((batch, t, h * w), bool)
    for b in range(batch):
        out[b, :, rng.permutation(h * w)[:n_mask]] = True
    return out.reshape(batch, -1)


def _run_cell_keep_np(spec, batch: int, rng):
    """bool [batch, N], True = gets a mask token in the dual-masking decoder."""
    import numpy as np

    from vmae2.ops import masking

    table = masking.running_cell_table(spec.grid, 0.5)
    keep = np.zeros((batch, spec.num_tokens), bool)
    for b in range(batch):
        keep[b, table[rng.integers(4)]] = True
    return keep


def _norm_pix_targets(pixel_values, spec):
    """Per-patch normalised pixel targets [B, N, kt*p*p*3] (HF/official norm_pix_loss)."""
    import torch

    mean = torch.tensor([0.485, 0.456, 0.406])[None, None, :, None, None]
    std = torch.tensor([0.229, 0.224, 0.225])[None, None, :, None, None]
    frames = pixel_values * std + mean
    b, t, c, h, w = frames.shape
    kt, p = spec.tubelet_size, spec.patch_size
    frames = frames.view(b, t // kt, kt, c, h // p, p, w // p, p)
    frames = frames.permute(0, 1, 4, 6, 2, 5, 7, 3).contiguous()
    frames = frames.view(b, -1, kt * p * p, c)
    frames = (frames - frames.mean(-2, keepdim=True)) / (
        frames.var(-2, unbiased=True, keepdim=True).sqrt() + 1e-6
    )
    return frames.view(b, frames.shape[1], -1)


class TorchWorker:
    """transformers VideoMAE models (and the dual-masking re-statement) with AdamW."""

    def __init__(self, args):
        import numpy as np
        import torch
        from transformers import VideoMAEForPreTraining, VideoMAEForVideoClassification

        torch.set_num_threads(args.threads)
        torch.manual_seed(0)
        self.torch = torch
        spec = _spec(args.model)
        rng = np.random.default_rng(0)
        b = args.batch
        pixels = torch.from_numpy(
            rng.standard_normal(
                (b, spec.num_frames, 3, spec.input_size, spec.input_size), np.float32
            )
        )
        if args.row == 'finetune':
            model = VideoMAEForVideoClassification(_hf_config(spec, classification=True))
            labels = torch.from_numpy(rng.integers(0, NUM_CLASSES, (b,)))

            def loss_fn():
                return model(pixel_values=pixels, labels=labels).loss

        else:
            model = VideoMAEForPreTraining(_hf_config(spec, classification=False))
            enc_mask = torch.from_numpy(_tube_mask_np(spec, b, rng))
            if args.impl == 'torch-hf-v1':

                def loss_fn():
                    return model(pixel_values=pixels, bool_masked_pos=enc_mask).loss

            else:  # torch-dual: official dual-masking forward on HF modules
                dec_keep = torch.from_numpy(_run_cell_keep_np(spec, b, rng))
                weight = enc_mask[dec_keep].view(b, -1).float()
                n_dec = int(dec_keep[0].sum())
                d_dec = spec.decoder_width

                def loss_fn():
                    with torch.no_grad():
                        target = _norm_pix_targets(pixels, spec)[dec_keep].view(b, n_dec, -1)
                    x = model.videomae(pixels, bool_masked_pos=enc_mask).last_hidden_state
                    x_vis = model.encoder_to_decoder(x)
                    pe = model.position_embeddings.expand(b, -1, -1).to(x_vis.dtype)
                    pe_vis = pe[~enc_mask].view(b, -1, d_dec)
                    pe_dec = pe[dec_keep].view(b, n_dec, d_dec)
                    full = torch.cat([x_vis + pe_vis, model.mask_token + pe_dec], dim=1)
                    pred = model.decoder(full, n_dec).logits
                    per_token = ((pred - target) ** 2).mean(-1)
                    return (per_token * weight).sum() / weight.sum().clamp(min=1)

        model.train()
        self.attn_impl = getattr(model.config, '_attn_implementation', '?')
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.05)

        def step():
            opt.zero_grad(set_to_none=True)
            loss = loss_fn()
            loss.backward()
            opt.step()
            return loss

        self._step = step

    def step(self) -> float:
        t0 = time.perf_counter()
        self._step()
        return time.perf_counter() - t0

    def info(self) -> dict:
        return {'attn_impl': self.attn_impl}


def _init_framework(impl: str) -> None:
    """Imports and starts the framework runtime so that the RSS baseline excludes it."""
    if impl == 'jax':
        import jax
        import jax.numpy as jnp

        jax.block_until_ready(jnp.zeros(8) + 1)
    else:
        import torch
        import transformers.models.videomae.modeling_videomae  # noqa: F401

        torch.zeros(8).add_(1)


def worker_main(args) -> None:
    _init_framework('jax' if args.impl.startswith('jax') else 'torch')
    base = _maxrss_mib()
    is_jax = args.impl.startswith('jax')
    worker = JaxWorker(args) if is_jax else TorchWorker(args)
    for _ in range(args.warmup):
        worker.step()
    _send({'ready': True, **worker.info()})
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == 'step':
            r0 = resource.getrusage(resource.RUSAGE_SELF)
            t = worker.step()
            r1 = resource.getrusage(resource.RUSAGE_SELF)
            _send(
                {
                    't': t,
                    'minflt': r1.ru_minflt - r0.ru_minflt,
                    'cpu_s': r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime,
                    'sys_s': r1.ru_stime - r0.ru_stime,
                }
            )
        elif cmd == 'stats':
            _send({'rss_mib': _maxrss_mib() - base, 'base_rss_mib': base})
        elif cmd == 'quit':
            break


# ----------------------------------------------------------------------------- driver


def _jax_variant(impl: str, args) -> tuple[str, str]:
    """'jax<i>' -> (attention impl, extra XLA flags) of the i-th --jax option."""
    spec = args.jax[0] if impl == 'jax-base' else args.jax[int(impl[3:])]
    attention, _, flags = spec.strip().partition(' ')
    return attention, flags.strip()


def _impl_name(impl: str, args) -> str:
    if impl == 'jax-base':
        return 'vmae2 baseline tree'
    if impl.startswith('jax'):
        attention, flags = _jax_variant(impl, args)
        return f'vmae2 [{attention}]' + (f' {flags}' if flags else '')
    return impl


class Proc:
    def __init__(self, impl: str, args, row: str):
        attention, variant_flags = _jax_variant(impl, args) if impl.startswith('jax') else ('', '')
        # The baseline tree runs its own copy of this script (its own worker code).
        script = (
            os.path.join(os.path.abspath(args.baseline_tree), 'bench', 'train_step.py')
            if impl == 'jax-base'
            else os.path.abspath(__file__)
        )
        cmd = [
            sys.executable,
            script,
            '--worker',
            impl,
            '--row',
            row,
            '--model',
            args.model,
            '--batch',
            str(args.batch),
            '--threads',
            str(args.threads),
            '--warmup',
            str(args.warmup),
            '--attention',
            attention or 'einsum',
        ]
        cpus = args.cpus or ','.join(str(i) for i in range(args.threads))
        cmd = ['taskset', '-c', cpus] + cmd
        env = dict(os.environ)
        flags = [f for f in env.get('XLA_FLAGS', '').split() if 'device_count' not in f]
        flags += [f for f in (args.xla_flags, variant_flags) if f]
        env['XLA_FLAGS'] = ' '.join(flags)
        if _malloc_tunables(args.malloc):
            tunables = [t for t in env.get('GLIBC_TUNABLES', '').split(':') if t]
            env['GLIBC_TUNABLES'] = ':'.join(tunables + _malloc_tunables(args.malloc))
        env['JAX_PLATFORMS'] = 'cpu'
        tree = args.baseline_tree if impl == 'jax-base' else ROOT
        env['BENCH_VMAE2_TREE'] = tree
        env['PYTHONPATH'] = tree + os.pathsep + env.get('PYTHONPATH', '')
        env.setdefault('OMP_NUM_THREADS', str(args.threads))
        env['TF_CPP_MIN_LOG_LEVEL'] = '2'
        self.impl = impl
        self.p = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT
        )

    def recv(self) -> dict:
        for line in self.p.stdout:
            if line.startswith(PROTO):
                return json.loads(line[len(PROTO) :])
        raise RuntimeError(f'{self.impl} worker died (exit {self.p.wait()})')

    def ask(self, cmd: str) -> dict:
        self.p.stdin.write(cmd + '\n')
        self.p.stdin.flush()
        return self.recv()

    def close(self) -> None:
        try:
            self.p.stdin.write('quit\n')
            self.p.stdin.flush()
        except BrokenPipeError:
            pass
        self.p.wait(timeout=60)


def _timed_step(p: 'Proc', r: dict, gap: float) -> None:
    """One timed step of worker p, recorded in r (time, page faults, CPU seconds)."""
    # Let the previous worker's thread pools stop spinning (torch's OpenMP threads
    # busy-wait after a step and would steal the cores).
    time.sleep(gap)
    reply = p.ask('step')
    r['times'].append(reply['t'])
    for key in ('minflt', 'cpu_s', 'sys_s'):
        r.setdefault(key, []).append(reply[key])


def _row_impls(row: str, args) -> list[str]:
    jax_impls = [f'jax{i}' for i in range(len(args.jax))]
    return jax_impls + list(ROWS[row]) + (['jax-base'] if args.baseline_tree else [])


def run_row_sequential(row: str, args) -> list[dict]:
    """One worker alive at a time: start, warm up, one timed step, quit; round robin."""
    results = {
        impl: {'row': row, 'impl': impl, 'times': [], 'rss_mib': 0.0}
        for impl in _row_impls(row, args)
    }
    for _ in range(args.repeats):
        for impl, r in results.items():
            p = Proc(impl, args, row)
            try:
                r.update(p.recv())
                _timed_step(p, r, args.gap)
                r['rss_mib'] = max(r['rss_mib'], p.ask('stats')['rss_mib'])
            finally:
                p.close()
    return list(results.values())


def run_row(row: str, args) -> list[dict]:
    if args.sequential:
        return run_row_sequential(row, args)
    results = []
    procs = []
    try:
        # Start one at a time so set-up / compilation does not overlap.
        for impl in _row_impls(row, args):
            p = Proc(impl, args, row)
            procs.append(p)
            info = p.recv()
            results.append({'row': row, 'impl': impl, **info, 'times': []})
        for _ in range(args.repeats):
            for p, r in zip(procs, results):
                _timed_step(p, r, args.gap)
        for p, r in zip(procs, results):
            r.update(p.ask('stats'))
    finally:
        for p in procs:
            p.close()
    return results


def format_table(results: list[dict], args) -> str:
    spec = _spec(args.model)
    from bench import machine

    lines = [
        machine.describe(),
        f'model {args.model}, batch {args.batch}, threads {args.threads} '
        f'(taskset cpus {args.cpus or ",".join(map(str, range(args.threads)))}), '
        f'repeats {args.repeats} (median), warmup {args.warmup}, '
        f'{"sequential" if args.sequential else "interleaved"}, '
        f'malloc {args.malloc}' + (f', XLA_FLAGS+={args.xla_flags!r}' if args.xla_flags else ''),
        '',
        '| workload | implementation | step s (median) | min-max s | this / same-work torch |'
        ' peak RSS delta MiB | XLA args+temp MiB | model GFLOP/s |',
        '|---|---|---|---|---|---|---|---|',
    ]
    by_row: dict[str, list[dict]] = {}
    for r in results:
        by_row.setdefault(r['row'], []).append(r)
    for row, rs in by_row.items():
        ref_r = next(r for r in rs if r['impl'] == SAME_WORK[row])
        t_ref = statistics.median(ref_r['times'])
        model_flops = _model_flops(spec, row, args.batch)
        for r in rs:
            t = statistics.median(r['times'])
            name = _impl_name(r['impl'], args)
            if not r['impl'].startswith('jax'):
                name += f' [{r.get("attn_impl", "?")}]'
            mem = r.get('xla_mem_mib')
            lines.append(
                f'| {ROW_TITLES[row]} | {name} | {t:.3f} | {min(r["times"]):.3f}-'
                f'{max(r["times"]):.3f} | {t / t_ref:.2f} | {r["rss_mib"]:.0f} | '
                + (f'{mem:.0f}' if mem is not None else '-')
                + f' | {model_flops / t / 1e9:.1f} |'
            )
    lines.append('')
    lines.append(
        'model GFLOP/s = 6 x analytic forward MACs '
        '(vmae2/models/flops.py) x batch / time. torch-hf-v1 in the dual row is transformers '
        'VideoMAEForPreTraining, whose decoder is the V1 decoder (no decoder masking).'
    )
    return '\n'.join(lines)


def _machine_info() -> dict:
    from bench import machine

    return machine.info()


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--model', default='vit_b', choices=sorted(SIZES))
    ap.add_argument('--batch', type=int, default=2)
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--cpus', default='', help='taskset cpu list (default 0..threads-1)')
    ap.add_argument('--repeats', type=int, default=3)
    ap.add_argument('--warmup', type=int, default=1)
    ap.add_argument('--rows', default='dual,v1,finetune')
    ap.add_argument(
        '--jax',
        action='append',
        default=None,
        help="one vmae2 implementation: 'ATTENTION[+loop] [XLA flags]' (repeatable;"
        " +loop: blocks unrolled instead of lax.scan; default 'recompute')",
    )
    ap.add_argument('--attention', default='einsum', help=argparse.SUPPRESS)  # worker side
    ap.add_argument('--xla-flags', default='', help='appended to XLA_FLAGS of every JAX worker')
    ap.add_argument(
        '--malloc',
        default='thp-keep',
        choices=MALLOC_CHOICES,
        help='glibc malloc tunables of every worker, torch included (default thp-keep,'
        " vmae2.runtime.host_env.CPU_GLIBC_TUNABLES)",
    )
    ap.add_argument(
        '--gap', type=float, default=1.0, help='idle seconds before each timed step (default 1)'
    )
    ap.add_argument('--sequential', action='store_true', help='one worker alive at a time (memory)')
    ap.add_argument(
        '--baseline-tree',
        default='',
        help='a copy of the repo (e.g. the models before a change) timed as an extra'
        ' "jax-base" implementation in every row, interleaved with the others',
    )
    ap.add_argument('--json', default='', help='also write the raw results here')
    ap.add_argument('--worker', default='', help=argparse.SUPPRESS)
    ap.add_argument('--row', default='', help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    if not args.jax:
        args.jax = ['recompute']
    if args.worker:
        args.impl = args.worker
        worker_main(args)
        return
    rows = [r for r in args.rows.split(',') if r]
    for r in rows:
        if r not in ROWS:
            raise SystemExit(f'unknown row {r!r}: choose from {sorted(ROWS)}')
    results = []
    for row in rows:
        try:
            row_results = run_row(row, args)
        except RuntimeError as e:  # a worker died (e.g. out of memory): report, go on
            print(f'row {row} failed: {e}', flush=True)
            continue
        results += row_results
        if args.json:
            with open(args.json, 'w') as f:
                json.dump({'args': vars(args), 'machine': _machine_info(), 'results': results}, f, indent=1)
        if len(rows) > 1:  # partial table as each row completes
            print(format_table(row_results, args), flush=True)
    print(format_table(results, args))


if __name__ == '__main__':
    sys.path.insert(0, os.environ.get('BENCH_VMAE2_TREE', ROOT))
    main()
