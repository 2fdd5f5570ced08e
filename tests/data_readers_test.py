"""The frame-reader interface: reader lookup, load_frames on videos, truncated videos,
raw-frame folders, and the fast reader against the PyAV reader in every stage."""

import pickle

import numpy as np
import pytest

from data_pipelines import decode, fast_format, testing
from data_pipelines.decode import VideoDecodeError
from data_pipelines.pipeline import make_eval_dataset, make_train_dataset
from data_pipelines.readers import READERS, get_reader, load_frames
from data_pipelines.records import VideoRecord
from data_pipelines.sampling import dense_clip_indices, pretrain_frame_indices
from data_pipelines.transforms import ClassifyTransform, EvalTransform
from data_helpers import codes, fast_dataset, fast_list, raw_list
from vmae2.tools import make_fast_dataset

FRAMES = 20  # fast_dataset: video v shows colour codes 20v .. 20v+19 and has label v
SMALL = dict(num_frames=4, sampling_rate=2, input_size=32)
PLAIN = dict(rand_augment=False, reprob=0.0)
MAX_MEAN_ABS_DIFF = 6  # tests/data_fast_format_test.py: codec/JPEG tolerance vs the source
FAST = get_reader('fast')


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    return fast_dataset(str(tmp_path_factory.mktemp('readers')), FRAMES)


def mean_abs_diff(a, b):
    return float(np.abs(a.astype(np.int32) - b.astype(np.int32)).mean())


def test_get_reader():
    video, fast = get_reader('video'), get_reader('fast')
    assert (video.name, video.num_frames, video.decode_frames) == (
        'video', decode.num_frames, decode.decode_frames
    )  # fmt: skip
    assert (fast.name, fast.num_frames, fast.decode_frames) == (
        'fast', fast_format.num_frames, fast_format.decode_frames
    )  # fmt: skip
    assert list(READERS) == ['video', 'fast']
    with pytest.raises(
        ValueError, match=r"data.reader 'pickle': choose one of \('video', 'fast'\)"
    ):
        get_reader('pickle')


# ---------------------------------------------------------------- load_frames


def test_truncated_video_resamples_over_the_decoded_frames(tmp_path):
    # faststart, cut in half: the header says 48 frames, fewer decode
    cut = testing.write_truncated_video(str(tmp_path / 'fs_cut.mp4'), 48, 96, 64)
    n = decode.num_frames(cut)
    totals = []

    def index_fn(total):
        totals.append(total)
        return pretrain_frame_indices(total, 16, 4, np.random.default_rng(0))

    clip = load_frames(VideoRecord(cut), index_fn)
    assert totals == [48, n] and 0 < n < 48  # header count first, then the decoded count
    assert clip.shape == (16, 64, 96, 3)
    assert max(codes(clip)) < n


@pytest.mark.parametrize('start_idx', [0, 1])
def test_rawframe_folder_numbered_from_start_idx(tmp_path, start_idx):
    folder = testing.write_rawframes(str(tmp_path / 'f'), 12, first_code=50, start_idx=start_idx)
    rec = VideoRecord(folder, 3, total_frames=12, start_idx=start_idx)
    totals = []

    def index_fn(total):
        totals.append(total)
        return np.array([0, 4, 4, 11])

    frames = load_frames(rec, index_fn, FAST)  # folders never go through the reader
    assert totals == [12] and frames.shape == (4, 36, 40, 3)
    assert codes(frames) == [50, 54, 54, 61]
    with pytest.raises(VideoDecodeError, match='does not exist'):
        load_frames(VideoRecord(folder, total_frames=13, start_idx=start_idx), lambda n: [12])


def test_unreadable_sources_raise(tmp_path):
    corrupt = testing.write_corrupt_video(str(tmp_path / 'corrupt.mp4'))
    for rec in (
        VideoRecord(str(tmp_path / 'missing.mp4')),
        VideoRecord(corrupt),
        VideoRecord(str(tmp_path / 'no_folder'), total_frames=5),
    ):
        with pytest.raises(VideoDecodeError):
            load_frames(rec, np.arange)


# ---------------------------------------------------------------- the fast reader in each stage


@pytest.mark.parametrize('fmt', make_fast_dataset.FORMATS)
def test_frames_agree_with_the_pyav_reader(dataset, fmt):
    for r, f in zip(raw_list(dataset), fast_list(dataset, fmt)):
        rng_a, rng_b = np.random.default_rng(7), np.random.default_rng(7)
        a = load_frames(r, lambda n: dense_clip_indices(n, 8, 2, 'train', rng_a, r.path))
        b = load_frames(f, lambda n: dense_clip_indices(n, 8, 2, 'train', rng_b, f.path), FAST)
        assert a.shape == b.shape == (8, 48, 64, 3) and a.dtype == b.dtype == np.uint8
        assert mean_abs_diff(a, b) < MAX_MEAN_ABS_DIFF
        assert codes(a) == codes(b)


def test_train_dataset_matches_the_pyav_reader(dataset):
    def first_batch(records, **reader):
        transform = ClassifyTransform(records, **SMALL, **PLAIN, **reader)
        return next(
            iter(make_train_dataset(records, transform, batch_size=2, seed=3, num_epochs=1))
        )

    want = first_batch(raw_list(dataset))
    got = first_batch(fast_list(dataset, 'jpeg-arrayrecord'), reader=FAST)
    for k in want:
        assert got[k].shape == want[k].shape and got[k].dtype == want[k].dtype, k
    assert want['video'].shape == (4, 4, 32, 32, 3)
    np.testing.assert_array_equal(got['label'], want['label'])
    assert int(got['skipped']) == 0
    # Same seed, same frames and crops: equal up to JPEG precision.
    assert mean_abs_diff(got['video'], want['video']) < MAX_MEAN_ABS_DIFF
    for g, w in zip(got['video'], want['video']):
        assert codes(g) == codes(w)


@pytest.mark.parametrize('fmt', make_fast_dataset.FORMATS)
def test_eval_dataset_matches_the_pyav_reader(dataset, fmt):
    def batches(records, **reader):
        transform = EvalTransform(test_num_segment=2, test_num_crop=3, **SMALL, **reader)
        return list(make_eval_dataset(records, transform, batch_size=6))

    want = batches(raw_list(dataset))
    got = batches(fast_list(dataset, fmt), reader=FAST)
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

    good = fast_list(dataset, 'jpeg-arrayrecord')
    garbage = tmp_path / 'garbage.array_record'  # not an ArrayRecord file: 0 records
    garbage.write_bytes(b'garbage' * 100)
    damaged = tmp_path / 'damaged.array_record'  # 20 records that are not JPEGs
    writer = ArrayRecordWriter(str(damaged), 'group_size:1')
    for _ in range(FRAMES):
        writer.write(b'\xff\xd8\xff\xe0 not a jpeg')
    writer.close()
    bad = [
        VideoRecord(str(garbage), 0),
        VideoRecord(str(damaged), 0),
        VideoRecord(str(tmp_path / 'missing.array_record'), 1),
    ]
    for rec in bad:
        with pytest.raises(VideoDecodeError):
            load_frames(rec, np.arange, FAST)
    # Training: bad records are replaced by readable ones and counted in "skipped".
    transform = ClassifyTransform(bad + good, reader=FAST, **SMALL, **PLAIN)
    batch = next(iter(make_train_dataset(bad + good, transform, batch_size=5, num_epochs=1)))
    assert batch['video'].shape == (10, 4, 32, 32, 3) and int(batch['skipped']) >= 3
    # Evaluation: their rows come back with valid=False.
    transform = EvalTransform(mode='val', reader=FAST, **SMALL)
    rows = list(make_eval_dataset(bad + good, transform, batch_size=5))
    assert len(rows) == 1
    np.testing.assert_array_equal(rows[0]['valid'], [False, False, False, True, True])


def test_transforms_with_the_fast_reader_pickle(dataset):
    recs = fast_list(dataset, 'jpeg-arrayrecord')
    for transform in (ClassifyTransform(recs, reader=FAST), EvalTransform(reader=FAST)):
        assert pickle.loads(pickle.dumps(transform)).reader == FAST
