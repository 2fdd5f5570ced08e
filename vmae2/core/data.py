"""From a run config to data: the records of each stage and the one grain graph.

`train_dataset(cfg, mesh, records, transform)` is the only way a stage gets its
training iterator (per-process batch, shard, seed, workers); `eval_dataset` the
only way an evaluator gets its views. Stages choose the records and the
per-clip transform (data_pipelines.transforms).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
from collections.abc import Callable

import grain
import jax

from data_pipelines import pipeline
from data_pipelines import readers
from data_pipelines import sources
from data_pipelines import transforms
from data_pipelines.records import VideoRecord
from vmae2.errors import ConfigError
from vmae2.errors import DataError
from vmae2.runtime import sharding

log = logging.getLogger('vmae2')


def per_process(count: int, what: str) -> int:
    """`count` split evenly over the processes.

    Raises:
      ConfigError: not divisible.
    """
    n = jax.process_count()
    if count % n:
        raise ConfigError(f'{what} {count} is not divisible by the {n} processes')
    return count // n


def augment_on(cfg) -> str:
    """Where training augmentation runs: config.data.augment_on, 'host' (the default,
    the official pixels) or 'device' (vmae2/ops/augment.py inside the train step;
    README "Augmentation on the device").

    Raises:
      ConfigError: another value, or a canvas that is not two positive sizes.
    """
    d = cfg.data
    where = d.get('augment_on', 'host')
    if where not in transforms.AUGMENT_ON:
        raise ConfigError(
            f"data.augment_on={where!r}: choose 'host' (faithful, the default) or 'device'"
        )
    if where == 'device':
        canvas(cfg)
    return where


def canvas(cfg) -> tuple[int, int]:
    """config.data.canvas, the (height, width) frames travel on with augment_on='device'.

    Raises:
      ConfigError: not two positive sizes.
    """
    value = tuple(cfg.data.get('canvas', transforms.DEFAULT_CANVAS))
    if len(value) != 2 or min(value) < 1:
        raise ConfigError(f'data.canvas={value!r}: give (height, width) in pixels, e.g. (320, 576)')
    return value


def device_batch_spec(
    cfg, clips: int, num_frames: int, labelled: bool
) -> dict[str, jax.ShapeDtypeStruct]:
    """The step's batch with augment_on='device' (data_pipelines.transforms.device_layout)."""
    k = int(cfg.data.get('num_sample', 1))
    layout = transforms.device_layout(clips // k, k, num_frames, canvas(cfg), labelled)
    return {key: jax.ShapeDtypeStruct(shape, dtype) for key, (shape, dtype) in layout.items()}


def device_views(cfg, views, keys) -> Callable[[dict], jax.Array]:
    """batch -> uint8 clips: `views(batch)` (vmae2/ops/augment.py) on each device's
    videos, reading `keys` of the batch."""
    run = sharding.per_shard(views, sharding.mesh_from_config(cfg.mesh))
    return lambda batch: run({k: batch[k] for k in keys})


def check_batch_fits(cfg, mesh, clips_per_step: int) -> None:
    """A step's clips must split over the batch devices and the micro-batches; with
    augment_on='device' its videos must split over the devices too (the frames travel
    once per video).

    Raises:
      ConfigError: naming batch_size, num_sample, grad_accum_steps and the mesh.
    """
    axes = sharding.batch_axes(mesh)
    devices = 1
    for a in axes:
        devices *= mesh.shape[a]
    micro = cfg.get('grad_accum_steps', 1)
    if augment_on(cfg) == 'device' and cfg.batch_size % devices:
        raise ConfigError(
            f'data.augment_on=device sends each video once: batch_size {cfg.batch_size} videos '
            f'must split over the {devices} batch devices (mesh {dict(mesh.shape)}); choose a '
            f'multiple of {devices}'
        )
    if clips_per_step % (devices * micro):
        raise ConfigError(
            f'a step has batch_size x num_sample = {clips_per_step} clips, which does not split '
            f'over {devices} batch devices (mesh {dict(mesh.shape)}) x grad_accum_steps {micro}: '
            f'choose batch_size so that batch_size x num_sample is a multiple of {devices * micro}'
        )


def train_dataset(cfg, records: list[VideoRecord], transform) -> grain.IterDataset:
    """The training iterator of this process: shuffled, repeated, sharded, batched."""
    d = cfg.data
    return pipeline.make_train_dataset(
        records,
        transform,
        batch_size=per_process(cfg.batch_size, 'batch_size'),
        seed=cfg.seed,
        shard_index=jax.process_index(),
        shard_count=jax.process_count(),
        worker_count=d.get('worker_count', 0),
        read_threads=d.get('read_threads', 1),
    )


def eval_dataset(cfg, records: list[VideoRecord], transform, batch_size: int):
    """This process's share of an evaluation (every process yields as many batches)."""
    return pipeline.make_eval_dataset(
        records,
        transform,
        batch_size=per_process(batch_size, 'eval_batch_size'),
        shard_index=jax.process_index(),
        shard_count=jax.process_count(),
        read_threads=cfg.data.get('read_threads', 1),
    )


@functools.lru_cache(maxsize=8)
def _stored(name: str, data_dir: str, split: str):
    from data_pipelines.datasets import stored

    try:
        return stored.StoredSplit(name, data_dir, split)
    except FileNotFoundError as e:
        raise DataError(e.strerror or str(e)) from None
    except ValueError as e:
        raise DataError(str(e)) from None


def stored_split(cfg, split: str = 'train'):
    """The TFDS split a stage reads when data.tfds_name is set, else None.

    `split` 'train' is data.tfds_split, 'val' data.tfds_eval_split (evaluation and the
    test protocol read it, as officially val.csv).

    Raises:
      ConfigError: tfds_name without tfds_data_dir.
      DataError: the dataset or split is not built there.
    """
    d = cfg.data
    if not d.get('tfds_name'):
        return None
    if not d.get('tfds_data_dir'):
        raise ConfigError(
            f'data.tfds_name={d.tfds_name!r} needs --config.data.tfds_data_dir=D (the --data_dir '
            'of python -m vmae2.tools.build_dataset)'
        )
    name = d.tfds_split if split == 'train' else d.get('tfds_eval_split', 'val')
    return _stored(d.tfds_name, os.path.abspath(d.tfds_data_dir), name)


def reader(cfg, split: str = 'train') -> readers.FrameReader:
    """How the stage's videos are read: the TFDS split's reader, else PyAV on files."""
    stored = stored_split(cfg, split)
    return stored.reader if stored is not None else readers.VIDEO_READER


@dataclasses.dataclass
class LabelledData:
    """The labelled lists of a classification run.

    Attributes:
      train, val: records (val also serves the test protocol, as officially).
      label_names: class names by index, or None.
      num_classes: the head size.
    """

    train: list[VideoRecord]
    val: list[VideoRecord]
    label_names: list[str] | None
    num_classes: int


def _read_list(d, split: str) -> list[VideoRecord]:
    path = sources.finetune_list_path(d.data_path, split)
    if not os.path.isfile(path):
        raise DataError(
            f'{path} does not exist: data.data_path must be a folder with train.csv and val.csv '
            '(lines `video_path label`, or `frame_folder total_frames label`)'
        )
    records = sources.read_finetune_list(path, d.data_root)
    if not records:
        raise DataError(f'{path} lists no videos')
    return records


def class_balanced_subset(records: list[VideoRecord], n: int) -> list[VideoRecord]:
    """The first `n` records taken in turn from each class (classes by label, videos in
    list order), returned in list order; all of them if `n` <= 0 or exceeds their number."""
    if n <= 0 or n >= len(records):
        return records
    by_class: dict[int, list[int]] = {}
    for i, r in enumerate(records):
        by_class.setdefault(r.label, []).append(i)
    queues = [by_class[label] for label in sorted(by_class)]
    chosen: list[int] = []
    for rank in range(max(map(len, queues))):
        chosen += [q[rank] for q in queues if rank < len(q)]
    return [records[i] for i in sorted(chosen[:n])]


def labelled_data(cfg, *, need_train: bool = True, checkpoint_classes: int | None = None):
    """The labelled videos: a TFDS dataset (data.tfds_name: its tfds_split and
    tfds_eval_split, class names from its metadata), else `{data.data_path}/train.csv`
    and `val.csv` (spec 8.1); and the class count.

    data.train_subset > 0 keeps that many training videos (`class_balanced_subset`).

    num_classes: cfg.num_classes if > 0, else the label-name count, else the
    checkpoint head's (evaluation, a label map), else max label + 1 over both
    lists; the choice and its source are logged.

    Raises:
      ConfigError: no data, names that do not fit.
      DataError: a missing or empty list or split, a label out of range.
    """
    d = cfg.data
    stored_val = stored_split(cfg, 'val')
    names = sources.read_label_names(d.label_names) if d.label_names else None
    if stored_val is not None:
        train = stored_split(cfg, 'train').records if need_train else []
        val = stored_val.records
        names = names or stored_val.label_names
    elif not d.data_path:
        raise ConfigError(
            'no data: set --config.data.tfds_name=NAME and --config.data.tfds_data_dir=D (a '
            'dataset of python -m vmae2.tools.build_dataset), or --config.data.data_path=DIR (a '
            'folder with train.csv and val.csv, lines `video_path label`) and '
            '--config.data.data_root=ROOT'
        )
    else:
        train = _read_list(d, 'train') if need_train else []
        val = _read_list(d, 'val')
    if d.get('train_subset', 0) > 0 and train:
        train = class_balanced_subset(train, d.train_subset)
        log.info('training on %d videos of the train split (data.train_subset)', len(train))
    names_from = d.label_names or f'the metadata of {d.get("tfds_name")}'
    n, source = cfg.num_classes, 'config num_classes'
    if not n and names:
        n, source = len(names), f'the {len(names)} names in {names_from}'
    elif not n and checkpoint_classes:
        n, source = checkpoint_classes, "the checkpoint's head"
    elif not n:
        n = sources.num_classes(train + val)
        seen = len({r.label for r in train + val})
        where = d.tfds_name if stored_val is not None else ' and '.join(
            sources.finetune_list_path(d.data_path, s) for s in ('train', 'val'))
        source = f'the largest label + 1 in {where} ({seen} distinct labels seen)'
        if seen != n:
            log.warning(
                '%d classes inferred but only %d labels occur: some classes have no video; '
                'set --config.num_classes to be sure', n, seen,
            )
    log.info('%d classes, from %s', n, source)
    if names is not None and len(names) != n:
        raise ConfigError(f'{len(names)} label names in {names_from} for num_classes={n}')
    bad = [r for r in train + val if r.label >= n]
    if bad:
        raise DataError(f'label {bad[0].label} of {bad[0].path!r} is out of range for {n} classes')
    return LabelledData(train, val, names, n)
