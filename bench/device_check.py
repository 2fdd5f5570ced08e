"""One-shot accelerator check: what vmae2 does on one GPU, in at most ~8 minutes.

Prepared in advance because a device is lent only now and then and briefly. On the
device (its own jax/flax/optax/orbax; `bash bench/device_wheels.sh` first, here, to
fetch what its image lacks), the whole check is one command::

    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && \\
    PYTHONPATH=/tmp/site:. python3 bench/device_check.py --out $OUT --budget-s 460

(with `.whl` carried). On CPU, `--tiny` runs every section on a tiny model in a
minute (tests/bench_test.py). It writes `device_check.json` and `device_check.md`
into --out, after every section, so a run stopped by its time limit still reports.

Sections, most important first; each is skipped when the time budget is spent:

1. `matmul`: the measured bf16 matmul ceiling (TFLOP/s), the peak used for MFU
   (the nominal peak of the device kind is shown beside it where known).
2. `vit_b`: ViT-B dual-masking pre-training and ViT-B fine-tuning steps in
   bfloat16, exactly the steps training runs (vmae2.core.build), for each attention
   implementation (recompute, xla, cudnn), at the largest batch of a candidate list
   that fits (compiled memory against the device's memory); clips/s, MFU, compile
   time, the compiled memory.
3. `depth`: ViT-g (and ViT-L) pre-training at reduced depth, extrapolated per block
   to the full depth (as vmae2/tools/memory_plan.py does): step time, MFU, and the
   measured peak memory against the memory plan's compile-time prediction.
4. `remat`: the remat policies worth trying (dots_saveable, full) for the best
   attention implementation.
5. `data`: the host data pipeline (bench/data.py) with several worker counts.
6. `augment`: the device side of data.augment_on='device' (bench/device_augment.py):
   the jitted pre-training crops and fine-tuning views, ms per clip, on noise frames
   of 320x568 with real draws.

MFU = 6 x forward MACs (vmae2/models/flops.py, the paper's convention) x clips /
step time / peak; remat recomputation is not counted. Step time is the fastest of
several individually timed steps, after two warm-up steps. A depth pair whose deeper
step is not slower (noise above the blocks' cost) is reported as an error row, never
extrapolated.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOMINAL_BF16_TFLOPS = {'H100': 989.0, 'H200': 989.0, 'A100': 312.0}
ATTENTIONS = ('recompute', 'xla', 'cudnn')


class Budget:
    def __init__(self, seconds: float):
        self.end = time.time() + seconds

    def left(self) -> float:
        return self.end - time.time()


class Report:
    """Rows per section, written to JSON and markdown after every row."""

    def __init__(self, out: str, meta: dict):
        self.out, self.meta, self.sections = out, meta, {}
        os.makedirs(out, exist_ok=True)

    def add(self, section: str, row: dict) -> None:
        self.sections.setdefault(section, []).append(row)
        print(f'[{section}] ' + json.dumps(row), flush=True)
        self.write()

    def write(self) -> None:
        with open(os.path.join(self.out, 'device_check.json'), 'w') as f:
            json.dump({'meta': self.meta, 'sections': self.sections}, f, indent=1)
        with open(os.path.join(self.out, 'device_check.md'), 'w') as f:
            f.write(self.markdown())

    def markdown(self) -> str:
        lines = [f'device check: {self.meta.get("machine", "")}', '']
        for name, rows in self.sections.items():
            keys = list(dict.fromkeys(k for r in rows for k in r))
            lines += [f'### {name}', '', '| ' + ' | '.join(keys) + ' |', '|' + '---|' * len(keys)]
            for r in rows:
                lines.append('| ' + ' | '.join(_cell(r.get(k, '')) for k in keys) + ' |')
            lines.append('')
        return '\n'.join(lines)


def _cell(v) -> str:
    if isinstance(v, float):
        return f'{v:.4g}'
    return str(v).replace('|', '/').replace('\n', ' ')[:120]


# ----------------------------------------------------------------------------- sections


def matmul_ceiling(n: int, repeats: int = 10) -> dict:
    """TFLOP/s of an n x n x n bf16 matmul (float32 accumulation)."""
    import jax
    import jax.numpy as jnp

    a = jax.random.normal(jax.random.key(0), (n, n), jnp.bfloat16)
    b = jax.random.normal(jax.random.key(1), (n, n), jnp.bfloat16)
    f = jax.jit(lambda x, y: jnp.dot(x, y, preferred_element_type=jnp.float32).astype(x.dtype))
    f(a, b).block_until_ready()
    t0 = time.perf_counter()
    for _ in range(repeats):
        out = f(a, b)
    out.block_until_ready()
    seconds = (time.perf_counter() - t0) / repeats
    return {'n': n, 'ms': 1e3 * seconds, 'tflops': 2 * n**3 / seconds / 1e12}


def _config(kind: str, variant: str, tiny: bool, **model):
    from configs import common as pretrain_configs
    from configs.finetune import common as finetune_configs

    if kind == 'pretrain':
        c = pretrain_configs.pretrain_config(variant)
    else:
        c = finetune_configs.finetune_config(variant)
        c.num_classes = 400
    c.dtype = 'bfloat16'
    c.mesh = {'data': -1}
    c.optim.update(total_steps=1000, warmup_steps=10)
    if tiny:
        c.model.update(num_frames=4, input_size=32)
        c.model.overrides = dict(width=64, depth=2, num_heads=2, mlp_dim=128, patch_size=8,
                                 decoder_width=32, decoder_num_heads=2, decoder_mlp_dim=64)
        c.model.decoder_depth = 1
    c.model.update(model)
    return c


def _macs(stage) -> float:
    from vmae2.models import flops

    m = stage.model_cfg
    masks = getattr(stage, 'masks', None)
    if masks is not None:
        return flops.pretrain_macs(m, masks.num_visible, masks.num_decode).total
    return flops.classifier_macs(m, stage.cfg.num_classes).total


def _device_bytes() -> int | None:
    import jax

    stats = jax.devices()[0].memory_stats() or {}
    return stats.get('bytes_limit')


def _peak_bytes() -> int | None:
    import jax

    stats = jax.devices()[0].memory_stats() or {}
    return stats.get('peak_bytes_in_use')


def time_step(cfg, clips: int, steps: int, peak_tflops: float) -> dict:
    """Compiles the stage's own step at `clips` clips and times `steps` of it."""
    import jax
    import numpy as np

    from vmae2.core import build
    from vmae2.trainers import registry

    stage = registry.stage_for(cfg)
    cfg.batch_size = max(1, clips // stage.clips_per_video)
    exp = build.build(cfg, stage, abstract=True)
    t0 = time.perf_counter()
    compiled = exp.lower().compile()
    compile_s = time.perf_counter() - t0
    mem = compiled.memory_analysis()
    planned = None
    if mem is not None:
        planned = mem.argument_size_in_bytes + mem.output_size_in_bytes - mem.alias_size_in_bytes
        planned += mem.temp_size_in_bytes
    limit = _device_bytes()
    if planned and limit and planned > 0.95 * limit:
        return {'clips': exp.clips_per_step, 'fits': False, 'planned_gib': planned / 2**30}
    state = exp.factory.create()
    rng = np.random.default_rng(0)
    batch = {k: rng.integers(0, 255 if v.dtype == np.uint8 else 4, v.shape).astype(v.dtype)
             for k, v in exp.stage.batch_spec(exp.clips_per_step).items()}
    batch = jax.device_put(batch, exp.batch_spec()['video'].sharding)
    for _ in range(2):
        state, m = compiled(state, batch, exp.frozen)
    jax.block_until_ready(m)
    times = []
    for _ in range(steps):  # each step timed alone: the fastest is the least disturbed
        t0 = time.perf_counter()
        state, m = compiled(state, batch, exp.frozen)
        jax.block_until_ready((state, m))
        times.append(time.perf_counter() - t0)
    step_s = min(times)
    flops = 6.0 * _macs(stage) * exp.clips_per_step
    return {
        'clips': exp.clips_per_step, 'fits': True, 'step_s': step_s,
        'clips_per_s': exp.clips_per_step / step_s, 'mfu': flops / step_s / (peak_tflops * 1e12),
        'compile_s': compile_s, 'planned_gib': (planned or 0) / 2**30,
        'peak_gib': (_peak_bytes() or 0) / 2**30, 'loss': float(m['loss']),
    }


def largest_that_fits(cfg_fn, candidates, steps, peak, budget) -> dict:
    """time_step at the largest candidate clip count whose compiled memory fits."""
    last = None
    for clips in candidates:
        if budget.left() < 20:
            return {**(last or {}), 'note': 'budget spent'}
        last = time_step(cfg_fn(), clips, steps, peak)
        if last.get('fits'):
            return last
    return last or {}


def section_vit_b(args, report, peak, budget) -> list[dict]:
    rows = []
    for kind, cands in (('pretrain', args.pretrain_clips), ('finetune', args.finetune_clips)):
        for attention in args.attentions:
            if budget.left() < 30:
                report.add('vit_b', {'stage': kind, 'attention': attention, 'note': 'budget spent'})
                continue
            try:
                r = largest_that_fits(
                    lambda: _config(kind, 'vit_b', args.tiny, attention_impl=attention),
                    cands, args.steps, peak, budget,
                )
            except Exception as e:  # noqa: BLE001 - an implementation a backend lacks
                r = {'error': f'{type(e).__name__}: {str(e).splitlines()[0][:100]}'}
            row = {'stage': kind, 'attention': attention, 'remat': 'none', **r}
            report.add('vit_b', row)
            rows.append(row)
    return rows


def section_remat(args, report, peak, budget, best: dict) -> None:
    for kind, attention in best.items():
        cands = args.pretrain_clips if kind == 'pretrain' else args.finetune_clips
        for policy in ('dots_saveable', 'full'):
            if budget.left() < 30:
                return
            try:
                r = largest_that_fits(
                    lambda: _config(kind, 'vit_b', args.tiny, attention_impl=attention,
                                    remat_policy=policy),
                    cands, args.steps, peak, budget,
                )
            except Exception as e:  # noqa: BLE001
                r = {'error': f'{type(e).__name__}: {str(e).splitlines()[0][:100]}'}
            report.add('remat', {'stage': kind, 'attention': attention, 'remat': policy, **r})


def section_depth(args, report, peak, budget, attention: str) -> None:
    """Reduced-depth ViT-g / ViT-L pre-training, extrapolated per block to full depth."""
    from vmae2.models.config import variant_sizes

    for variant in args.depth_models:
        full = variant_sizes(variant)['depth']
        points = {}
        for depth in args.depths:
            if budget.left() < 45:
                break
            def cfg_fn(depth=depth):
                c = _config('pretrain', variant, args.tiny, attention_impl=attention,
                            remat_policy='full', scan_layers=False)
                c.model.overrides = dict(c.model.overrides, depth=depth)
                return c
            try:
                points[depth] = time_step(cfg_fn(), args.depth_clips, args.steps, peak)
            except Exception as e:  # noqa: BLE001
                report.add('depth', {'model': variant, 'depth': depth, 'error': str(e)[:100]})
        if len(points) < 2 or not all(p.get('fits') for p in points.values()):
            report.add('depth', {'model': variant, 'note': 'not enough depths measured', **{
                f'd{d}': p.get('step_s') for d, p in points.items()}})
            continue
        (d1, p1), (d2, p2) = sorted(points.items())[:2]
        if p2['step_s'] <= p1['step_s']:  # noise larger than the blocks' cost: no slope
            report.add('depth', {'model': variant, 'error': (
                f'per-block time not resolved: depth {d2} step {p2["step_s"]:.4f} s is no '
                f'slower than depth {d1} {p1["step_s"]:.4f} s'), 'clips': p1['clips']})
            continue
        def at_full(key):
            return p1[key] + (p2[key] - p1[key]) * (full - d1) / (d2 - d1)
        stage_cfg = _config('pretrain', variant, args.tiny)
        from vmae2.trainers import registry

        stage = registry.stage_for(stage_cfg)
        step_s = at_full('step_s')
        flops = 6.0 * _macs(stage) * p1['clips']
        report.add('depth', {
            'model': variant, 'depths': f'{d1},{d2} -> {full}', 'clips': p1['clips'],
            'step_s_full': step_s, 'clips_per_s_full': p1['clips'] / step_s,
            'mfu_full': flops / step_s / (peak * 1e12),
            'planned_gib_full': at_full('planned_gib'), 'peak_gib_measured_d2': p2['peak_gib'],
            'planned_gib_d2': p2['planned_gib'], 'compile_s_d2': p2['compile_s'],
        })


def section_data(args, report, budget) -> None:
    for workers in args.data_workers:
        if budget.left() < 40:
            return
        cmd = [sys.executable, os.path.join(ROOT, 'bench', 'data.py'), '--videos', 'test',
               '--workers', str(workers), '--clips', str(args.data_clips), '--repeats', '1',
               '--formats', 'jpeg-arrayrecord', '--pipelines', 'pretrain,finetune']
        out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT,
                             timeout=max(30, budget.left() - 10))
        rows = [line for line in out.stdout.splitlines() if line.startswith('| ') and 'clips' not in line]
        report.add('data', {'workers': workers, 'status': out.returncode,
                            'rows': ' ; '.join(rows)[:400] or out.stderr[-200:]})


def section_augment(args, report, budget) -> None:
    from bench import device_augment

    if budget.left() < 60:
        return
    records, reader = device_augment.noise_records()
    for row in device_augment.cost(records, reader, args.augment_batches, args.augment_videos):
        report.add('augment', row)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--out', required=True)
    ap.add_argument('--tiny', action='store_true', help='tiny models: a CPU smoke run')
    ap.add_argument('--budget-s', type=float, default=460)
    ap.add_argument('--sections', default='matmul,vit_b,depth,remat,data,augment')
    ap.add_argument('--attentions', default=','.join(ATTENTIONS))
    args = ap.parse_args(argv)
    tiny = args.tiny
    args.steps = 3 if tiny else 10
    args.pretrain_clips = [8] if tiny else [512, 384, 256, 128, 64]
    args.finetune_clips = [8] if tiny else [64, 48, 32, 16, 8]
    args.depth_clips = 8 if tiny else 64
    args.depths = [1, 4] if tiny else [2, 4]
    args.depth_models = ['vit_g'] if tiny else ['vit_g', 'vit_l']
    args.attentions = args.attentions.split(',')
    args.data_workers = [0] if tiny else [0, 4, 8, 15]
    args.data_clips = 2 if tiny else 48
    args.augment_videos = 1 if tiny else 32  # 128 pre-training / 64 fine-tuning clips
    args.augment_batches = 1 if tiny else 5
    budget = Budget(args.budget_s)
    sys.path.insert(0, ROOT)
    from bench import machine

    import jax

    info = machine.info()
    kind = jax.devices()[0].device_kind
    report = Report(args.out, {'machine': machine.describe(info).replace('\n', '; '), 'info': info})
    sections = args.sections.split(',')
    nominal = next((v for k, v in NOMINAL_BF16_TFLOPS.items() if k in kind), None)
    peak = nominal or 1.0
    if 'matmul' in sections:
        m = matmul_ceiling(256 if tiny else 8192)
        peak = m['tflops']
        report.add('matmul', {**m, 'device': kind, 'nominal_tflops': nominal or ''})
    best = {}
    for name, fn in (
        ('vit_b', lambda: section_vit_b(args, report, peak, budget)),
        ('depth', lambda: section_depth(args, report, peak, budget, best.get('pretrain', 'recompute'))),
        ('remat', lambda: section_remat(args, report, peak, budget, best)),
        ('data', lambda: section_data(args, report, budget)),
        ('augment', lambda: section_augment(args, report, budget)),
    ):
        if name not in sections:
            continue
        try:
            rows = fn()
        except Exception:  # noqa: BLE001 - one broken section must not hide the others
            report.add(name, {'error': traceback.format_exc()[-300:]})
            continue
        if name == 'vit_b':
            for stage in ('pretrain', 'finetune'):
                ok = [r for r in rows if r['stage'] == stage and r.get('fits')]
                if ok:
                    best[stage] = max(ok, key=lambda r: r['clips_per_s'])['attention']
    report.add('summary', {'seconds': round(args.budget_s - budget.left(), 1), 'best_attention': best})
    return 0


if __name__ == '__main__':
    sys.exit(main())
