"""Per-device memory of the pre-training and fine-tuning steps, compiled ahead of time.

python -m vmae2.tools.memory_plan --config configs/pretrain/vit_g.py --devices 64
python -m vmae2.tools.memory_plan --config configs/pretrain/vit_b.py --devices 8 \
    --remat none --dtypes bfloat16 --depths full

Nothing is allocated: the tool fakes `--devices` CPU devices (before jax starts),
builds the run exactly as training does (`vmae2.core.build.build(cfg, stage,
abstract=True)`: the same mesh, sharding rules, state and jitted step), lowers
that step on jax.ShapeDtypeStruct inputs that carry their shardings, compiles it
and prints `compiled.memory_analysis()` per device:

  args    parameters + optimizer state + this device's batch shard (bytes);
  out     the new state + metrics;
  alias   output bytes that reuse donated argument buffers;
  temp    everything else XLA keeps live at the peak (activations, gradients);
  total   args + out - alias + temp, the device memory the step needs.

Steps (per-device batch, official recipes; spec 4.2 and 5.5 of
shared/reference/official_repo.md):
  pretrain  the pre-training stage's step, 128 clips/device (32 videos x num_sample 4);
  finetune  the fine-tuning stage's step (erasing, mixup, layer decay) of a
            fine-tuning config with the same model, mesh and dtype and
            `--num-classes` classes, 6 clips/device (ViT-g: 3 videos x num_sample 2).
A fine-tuning config (trainer 'finetune') plans only its own stage.

Depth scaling (`--depths 1,2`, the default): compiling a 40-block ViT-g for 64
devices on a small CPU takes long, so the encoder is compiled at two shallow
depths and every column is extrapolated linearly to the real depth (blocks are
unrolled and identical, so memory is affine in depth). `--verify-depth D`
compiles one more depth and prints the extrapolation error there. `--depths full`
compiles the real model. With depth scaling, remat 'full' is derived from the
compiled 'none' numbers, because XLA's CPU compiler does not realise the memory
savings of jax.checkpoint (see `plan`).

The numbers come from XLA's CPU compiler. GPU/TPU compilers fuse differently
(temps usually smaller, e.g. fused attention), so treat them as an upper-bound
style estimate within ~10-20 %; the argument/output sizes are exact.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time

GIB = 2**30


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--config', required=True, help='a config file with get_config()')
    p.add_argument('--devices', type=int, default=8, help='fake CPU devices (the mesh size)')
    p.add_argument('--remat', default='none,full', help='comma list of remat policies')
    p.add_argument('--dtypes', default='float32,bfloat16', help='comma list of compute dtypes')
    p.add_argument('--stages', default='pretrain,finetune', help='pretrain and/or finetune')
    p.add_argument(
        '--batch-per-device', type=int, default=128, help='pre-training clips per device'
    )
    p.add_argument(
        '--finetune-batch-per-device', type=int, default=6, help='fine-tuning clips per device'
    )
    p.add_argument('--num-classes', type=int, default=710, help='fine-tuning classes (K710)')
    p.add_argument('--depths', default='1,2', help="two encoder depths to extrapolate, or 'full'")
    p.add_argument('--verify-depth', type=int, default=0, help='extra depth to check the fit')
    p.add_argument('--json', default='', help='also write the rows to this JSON file')
    return p.parse_args(argv)


def fake_devices(n: int) -> None:
    """Must run before jax initialises its backend."""
    flags = [f for f in os.environ.get('XLA_FLAGS', '').split() if 'device_count' not in f]
    flags.append(f'--xla_force_host_platform_device_count={n}')
    os.environ['XLA_FLAGS'] = ' '.join(flags)
    os.environ['JAX_PLATFORMS'] = 'cpu'


def load_config(path: str):
    """get_config(arg) of a config file `path[:arg]` (the main.py convention)."""
    file, _, arg = path.partition(':')
    spec = importlib.util.spec_from_file_location('memory_plan_config', file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(arg) if arg else module.get_config()


def _with_depth(cfg, depth: int | None, remat: str, dtype: str):
    cfg = cfg.copy_and_resolve_references()
    if depth is not None:
        overrides = dict(cfg.model.overrides)
        overrides['depth'] = depth
        cfg.model.overrides = overrides
    cfg.model.remat_policy = remat
    # Unrolled blocks: the plan extrapolates a per-block slope from depths 1 and 2, and
    # a lax.scan would change the program between those two depths. (Scan adds one
    # stacked copy of the block parameters and their gradients, sharded like them.)
    cfg.model.scan_layers = False
    cfg.dtype = dtype
    return cfg


def _memory(compiled) -> dict:
    m = compiled.memory_analysis()
    row = {
        'args': m.argument_size_in_bytes,
        'out': m.output_size_in_bytes,
        'alias': m.alias_size_in_bytes,
        'temp': m.temp_size_in_bytes,
    }
    row['total'] = row['args'] + row['out'] - row['alias'] + row['temp']
    return row


def finetune_like(cfg, num_classes: int):
    """A fine-tuning config with `cfg`'s model, mesh, rules and dtype (official defaults)."""
    from configs.finetune import common as finetune_common

    c = finetune_common.finetune_config(cfg.model.variant)
    c.model.update(cfg.model)
    c.num_classes = num_classes
    c.mesh, c.sharding_rules, c.dtype = cfg.mesh, cfg.sharding_rules, cfg.dtype
    return c


def compile_stage(cfg, clips_per_device: int) -> tuple[dict, float, object]:
    """Memory of the jitted step that training with `cfg` runs, at `clips_per_device`.

    Returns:
      (memory row, compile seconds, the stage).
    """
    import jax

    from vmae2.core import build
    from vmae2.trainers import registry

    stage = registry.stage_for(cfg)
    clips = clips_per_device * jax.device_count()
    if clips % stage.clips_per_video:
        raise ValueError(f'{clips} clips do not split into videos of {stage.clips_per_video}')
    cfg.batch_size = clips // stage.clips_per_video
    exp = build.build(cfg, stage, abstract=True)
    t0 = time.time()
    compiled = exp.lower().compile()
    return _memory(compiled), time.time() - t0, stage


def extrapolate(d1: int, m1: dict, d2: int, m2: dict, depth: int) -> dict:
    """Linear in depth through (d1, m1) and (d2, m2), evaluated at `depth`."""
    return {k: m1[k] + (m2[k] - m1[k]) * (depth - d1) / (d2 - d1) for k in m1}


def _saved_per_block(stage, clips: int) -> tuple[int, int]:
    """Bytes one block keeps for the backward pass under full remat (its input),
    per device: (encoder block, decoder block)."""
    a = stage.model_cfg
    nbytes = 2 if a.dtype == 'bfloat16' else 4
    masks = getattr(stage, 'masks', None)
    if masks is None:
        return clips * a.num_tokens * a.width * nbytes, 0
    enc = clips * masks.num_visible * a.width * nbytes
    dec = clips * (masks.num_visible + masks.num_decode) * a.decoder_width * nbytes
    return enc, dec


def plan(args) -> list[dict]:
    """Rows of per-device memory, one per (stage, dtype, remat).

    remat 'none' is compiled (at two encoder depths, extrapolated). XLA's CPU
    compiler does not realise the savings of jax.checkpoint (its schedule keeps
    the recomputed activations live as long as the saved ones: measured temps
    with remat='full' were >= those without), so with depth scaling the 'full'
    rows are derived: every block but one keeps only its input,
        full = none - (depth - 1) * (slope_enc - saved_enc)
                    - (decoder_depth - 1) * (slope_dec - saved_dec),
    with the per-block slopes measured by the compiles (decoder slope from one
    more compile at half the decoder depth).
    """
    from vmae2.models.config import variant_sizes

    base = load_config(args.config)
    full_depth = dict(base.model.overrides).get('depth', variant_sizes(base.model.variant)['depth'])
    dec_depth = base.model.decoder_depth
    depths = None if args.depths == 'full' else [int(d) for d in args.depths.split(',')]
    if depths is not None and len(depths) != 2:
        raise ValueError(f"--depths takes two depths or 'full', got {args.depths!r}")
    remats = args.remat.split(',')
    rows = []
    stages = args.stages.split(',') if base.trainer == 'pretrain' else [base.trainer]
    for stage in stages:
        if stage not in ('pretrain', 'finetune'):
            raise ValueError(f'stage {stage!r}: choose pretrain or finetune')
        clips = args.batch_per_device if stage == 'pretrain' else args.finetune_batch_per_device
        stage_cfg = base if stage == base.trainer else finetune_like(base, args.num_classes)
        for dtype in args.dtypes.split(','):

            def measure(depth, remat, decoder_depth=None, sc=stage_cfg, dtype=dtype, clips=clips):
                cfg = _with_depth(sc, depth, remat, dtype)
                if decoder_depth is not None:
                    cfg.model.decoder_depth = decoder_depth
                return compile_stage(cfg, clips)

            head = {'stage': stage, 'dtype': dtype, 'clips_per_device': clips, 'depth': full_depth}
            if depths is None:
                for remat in remats:
                    mem, secs, _ = measure(None, remat)
                    rows.append(
                        dict(head, remat=remat, **mem, compile_s=round(secs, 1), method='compiled')
                    )
                    print(format_row(rows[-1]), flush=True)
                continue
            d1, d2 = depths
            (m1, s1, st), (m2, s2, _) = measure(d1, 'none'), measure(d2, 'none')
            none = extrapolate(d1, m1, d2, m2, full_depth)
            secs = s1 + s2
            row = dict(head, remat='none', **none, method=f'depths {d1},{d2}')
            if args.verify_depth:
                mv, sv, _ = measure(args.verify_depth, 'none')
                secs += sv
                pred = extrapolate(d1, m1, d2, m2, args.verify_depth)
                row['verify'] = {
                    'depth': args.verify_depth,
                    'measured_total': mv['total'],
                    'predicted_total': pred['total'],
                    'rel_error': abs(pred['total'] - mv['total']) / max(mv['total'], 1),
                }
            row['compile_s'] = round(secs, 1)
            if 'none' in remats:
                rows.append(row)
                print(format_row(row), flush=True)
            if 'full' in remats:
                saved_enc, saved_dec = _saved_per_block(st, clips)
                slope_enc = (m2['temp'] - m1['temp']) / (d2 - d1)
                cut = (full_depth - 1) * max(slope_enc - saved_enc, 0)
                extra = 0.0
                if stage == 'pretrain' and dec_depth > 1:
                    half = max(dec_depth // 2, 1)
                    mh, sh, _ = measure(d1, 'none', decoder_depth=half)
                    extra = sh
                    slope_dec = (m1['temp'] - mh['temp']) / (dec_depth - half)
                    cut += (dec_depth - 1) * max(slope_dec - saved_dec, 0)
                full = dict(none)
                full['temp'] = none['temp'] - cut
                full['total'] = none['total'] - cut
                rows.append(
                    dict(
                        head,
                        remat='full',
                        **full,
                        compile_s=round(extra, 1),
                        method='derived from none (see plan())',
                    )
                )
                print(format_row(rows[-1]), flush=True)
    return rows


def format_row(r: dict) -> str:
    cols = ' '.join(f'{k} {r[k] / GIB:7.2f}' for k in ('args', 'out', 'alias', 'temp', 'total'))
    line = (
        f'{r["stage"]:9s} {r["dtype"]:8s} remat={r["remat"]:5s} {r["clips_per_device"]:4d} '
        f'clips/dev  GiB/device: {cols}  ({r["method"]}, compile {r["compile_s"]} s)'
    )
    if 'verify' in r:
        v = r['verify']
        line += (
            f'\n    check at depth {v["depth"]}: measured {v["measured_total"] / GIB:.3f} GiB, '
            f'extrapolated {v["predicted_total"] / GIB:.3f} GiB ({100 * v["rel_error"]:.2f} %)'
        )
    return line


def main(argv=None) -> int:
    args = parse_args(argv)
    fake_devices(args.devices)
    import jax

    if jax.device_count() != args.devices:
        raise SystemExit(
            f'jax started with {jax.device_count()} devices, not {args.devices}: run the tool '
            'in a fresh process (jax must not be initialised before it sets the device count)'
        )
    print(f'{args.config} on {args.devices} fake devices', flush=True)
    rows = plan(args)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
