"""Fine-tuning / evaluation pipelines on the fast data format (config.data.reader='fast')."""

import os
import types

import numpy as np
import pytest

from data_pipelines import finetune_pipeline as fp
from data_pipelines import testing
from data_pipelines.fast_format import ARRAY_RECORD_SUFFIX
from data_pipelines.finetune_sampling import dense_clip_indices
from data_pipelines.labels import ClsRecord, read_finetune_list
from vmae2.tools import make_fast_dataset

FRAMES = 20  # video v shows colour codes 20v .. 20v+19 and has label v
SMALL = dict(num_frames=4, sampling_rate=2, input_size=32)
PLAIN = dict(rand_augment=False, reprob=0.0)
SUFFIX = {'video': '.mp4', 'jpeg-arrayrecord': ARRAY_RECORD_SUFFIX}
MAX_MEAN_ABS_DIFF = 6  # tests/data_fast_format_test.py: codec/JPEG tolerance vs the source


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    """Raw videos ROOT/{cls0,cls1}/v{0,1}.avi, their lists, and both fast formats of ROOT."""
    base = tmp_path_factory.mktemp('ftfast')
    root = base / 'raw'
    lines = []
    for v in range(2):
        (root / f'cls{v}').mkdir(parents=True)
        rel = f'cls{v}/v{v}.avi'
        testing.write_test_video(str(root / rel), FRAMES, 64, 48, first_code=FRAMES * v)
        lines.append(f'{rel} {v}\n')
    lists = base / 'lists'
    lists.mkdir()
    for name in ('train.csv', 'val.csv'):
        (lists / name).write_text(''.join(lines))
    fast = {}
    for fmt in make_fast_dataset.FORMATS:
        out = str(base / fmt)
        entries = make_fast_dataset.convert(str(root), out, fmt=fmt)
        assert [e.get('error') for e in entries] == [None, None]
        fast[fmt] = out
    return types.SimpleNamespace(root=str(root), lists=str(lists), fast=fast)


def raw_records(ds):
    return read_finetune_list(os.path.join(ds.lists, 'train.csv'), ds.root)


def fast_records(ds, fmt):
    root = ds.fast[fmt]
    return fp.fast_format_records(
        read_finetune_list(os.path.join(ds.lists, 'train.csv'), root), root
    )


def mean_abs_diff(a, b):
    return float(np.abs(a.astype(np.int32) - b.astype(np.int32)).mean())


@pytest.mark.parametrize('fmt', make_fast_dataset.FORMATS)
def test_list_paths_map_to_the_fast_files(dataset, fmt):
    recs = fast_records(dataset, fmt)
    root = dataset.fast[fmt]
    assert [r.path for r in recs] == [
        os.path.join(root, f'cls{v}', f'v{v}' + SUFFIX[fmt]) for v in range(2)
    ]
    assert [r.label for r in recs] == [0, 1] and all(os.path.isfile(r.path) for r in recs)
    # No manifest in data_root: paths as listed; raw-frame folders are never remapped.
    kept = [ClsRecord('/x/a.avi', 0), ClsRecord('/x/frames', 1, 12)]
    assert fp.fast_format_records(kept, '/x') == kept
    assert fp.fast_format_records([kept[1]], root) == [kept[1]]


@pytest.mark.parametrize('fmt', make_fast_dataset.FORMATS)
def test_frames_agree_with_the_pyav_reader(dataset, fmt):
    raw, fast = raw_records(dataset), fast_records(dataset, fmt)
    for r, f in zip(raw, fast):
        rng_a, rng_b = np.random.default_rng(7), np.random.default_rng(7)
        a = fp.load_record_frames(
            r, lambda n: dense_clip_indices(n, 8, 2, 'train', rng_a, r.path), fp.VIDEO_READER
        )
        b = fp.load_record_frames(
            f, lambda n: dense_clip_indices(n, 8, 2, 'train', rng_b, f.path), fp.FAST_READER
        )
        assert a.shape == b.shape == (8, 48, 64, 3) and a.dtype == b.dtype == np.uint8
        assert mean_abs_diff(a, b) < MAX_MEAN_ABS_DIFF
        np.testing.assert_array_equal(testing.identify_frames(a), testing.identify_frames(b))


def test_train_dataset_matches_the_pyav_reader(dataset):
    fmt = 'jpeg-arrayrecord'
    kw = dict(batch_size=2, seed=3, num_epochs=1, **SMALL, **PLAIN)
    want = next(iter(fp.make_finetune_train_dataset(raw_records(dataset), **kw)))
    got = next(
        iter(
            fp.make_finetune_train_dataset(
                fast_records(dataset, fmt), frame_reader=fp.FAST_READER, **kw
            )
        )
    )
    for k in want:
        assert got[k].shape == want[k].shape and got[k].dtype == want[k].dtype, k
    assert want['video'].shape == (4, 4, 32, 32, 3)
    np.testing.assert_array_equal(got['label'], want['label'])
    assert int(got['skipped']) == 0
    # Same seed, same frames and crops: equal up to JPEG precision.
    assert mean_abs_diff(got['video'], want['video']) < MAX_MEAN_ABS_DIFF
    for g, w in zip(got['video'], want['video']):
        np.testing.assert_array_equal(testing.identify_frames(g), testing.identify_frames(w))


@pytest.mark.parametrize('fmt', make_fast_dataset.FORMATS)
def test_eval_dataset_matches_the_pyav_reader(dataset, fmt):
    kw = dict(batch_size=6, test_num_segment=2, test_num_crop=3, mode='test', **SMALL)
    want = list(fp.make_eval_dataset(raw_records(dataset), **kw))
    got = list(fp.make_eval_dataset(fast_records(dataset, fmt), frame_reader=fp.FAST_READER, **kw))
    assert len(got) == len(want) == 2
    for g, w in zip(got, want):
        for k in w:
            assert g[k].shape == w[k].shape and g[k].dtype == w[k].dtype, k
        for k in ('label', 'video_index', 'view', 'valid'):
            np.testing.assert_array_equal(g[k], w[k])
        assert g['valid'].all()
        assert mean_abs_diff(g['video'], w['video']) < MAX_MEAN_ABS_DIFF


def test_corrupt_or_missing_fast_files_are_skipped_and_counted(dataset, tmp_path):
    from array_record.python.array_record_module import ArrayRecordWriter

    good = fast_records(dataset, 'jpeg-arrayrecord')
    garbage = tmp_path / 'garbage.array_record'  # not an ArrayRecord file: 0 records
    garbage.write_bytes(b'garbage' * 100)
    damaged = tmp_path / 'damaged.array_record'  # 20 records that are not JPEGs
    writer = ArrayRecordWriter(str(damaged), 'group_size:1')
    for _ in range(FRAMES):
        writer.write(b'\xff\xd8\xff\xe0 not a jpeg')
    writer.close()
    bad = [
        ClsRecord(str(garbage), 0),
        ClsRecord(str(damaged), 0),
        ClsRecord(str(tmp_path / 'missing.array_record'), 1),
    ]
    for rec in bad:
        with pytest.raises(fp.VideoDecodeError):
            fp.load_record_frames(rec, np.arange, fp.FAST_READER)
    # Training: bad records are replaced by readable ones and counted in "skipped".
    ds = fp.make_finetune_train_dataset(
        bad + good,
        batch_size=5,
        seed=0,
        num_epochs=1,
        frame_reader=fp.FAST_READER,
        **SMALL,
        **PLAIN,
    )
    batch = next(iter(ds))
    assert batch['video'].shape == (10, 4, 32, 32, 3) and int(batch['skipped']) >= 3
    # Evaluation: their rows come back with valid=False.
    rows = list(
        fp.make_eval_dataset(
            bad + good, batch_size=5, mode='val', frame_reader=fp.FAST_READER, **SMALL
        )
    )
    assert len(rows) == 1
    np.testing.assert_array_equal(rows[0]['valid'], [False, False, False, True, True])


def test_reader_from_config(dataset, tmp_path):
    from configs.finetune import common as ft_common
    from vmae2 import evaluation
    from vmae2.trainers import finetune

    assert fp.get_frame_reader('video') is fp.VIDEO_READER
    assert fp.get_frame_reader('fast') is fp.FAST_READER
    with pytest.raises(
        ValueError, match=r"data.reader 'pickle': choose one of \('video', 'fast'\)"
    ):
        fp.get_frame_reader('pickle')

    c = ft_common.finetune_config('vit_s')
    assert c.data.reader == 'video'
    c.data.data_path, c.data.data_root = dataset.lists, dataset.fast['video']
    c.data.reader = 'fast'
    c.batch_size = c.eval_batch_size = 2
    data = finetune.load_data(c)
    assert [r.path for r in data.val] == [
        os.path.join(dataset.fast['video'], f'cls{v}', f'v{v}.mp4') for v in range(2)
    ]
    assert data.num_classes == 2
    spec = types.SimpleNamespace(num_frames=4, input_size=32)
    c.data.update(num_sample=1, rand_augment=False, reprob=0.0)
    batch = next(iter(finetune.make_train_dataset(c, data.train, spec, seed=0)))
    assert batch['video'].shape == (2, 4, 32, 32, 3) and int(batch['skipped']) == 0
    (val,) = list(evaluation.make_dataset(c, data.val, spec, 'val'))
    assert val['valid'].tolist() == [True, True]

    c.data.reader = 'pickle'
    with pytest.raises(ValueError, match="data.reader 'pickle'"):
        finetune.load_data(c)
    with pytest.raises(ValueError, match="data.reader 'pickle'"):
        evaluation.make_dataset(c, data.val, spec, 'val')


def test_transforms_with_the_fast_reader_pickle(dataset):
    import pickle

    recs = fast_records(dataset, 'jpeg-arrayrecord')
    train = fp.FinetuneSampleTransform(recs, frame_reader=fp.FAST_READER)
    evl = fp.EvalVideoTransform(frame_reader=fp.FAST_READER)
    assert pickle.loads(pickle.dumps(train)).frame_reader == fp.FAST_READER
    assert pickle.loads(pickle.dumps(evl)).frame_reader == fp.FAST_READER
