"""The frame-reader interface: load_frames on videos, truncated videos, raw-frame
folders, and the TFDS reader against the PyAV reader in every stage."""

import pickle

import numpy as np
import pytest

import dataclasses

from data_pipelines import decode, testing
from data_pipelines.decode import VideoDecodeError
from data_pipelines.pipeline import make_eval_dataset, make_train_dataset
from data_pipelines.readers import VIDEO_READER, FrameReader, load_frames
from data_pipelines.records import VideoRecord
from data_pipelines.sampling import dense_clip_indices, pretrain_frame_indices
from data_pipelines.transforms import ClassifyTransform, EvalTransform
from data_helpers import codes, raw_list, stored_dataset

FRAMES = 20  # stored_dataset: video v shows colour codes 20v .. 20v+19 and has label v
SMALL = dict(num_frames=4, sampling_rate=2, input_size=32)
PLAIN = dict(rand_augment=False, reprob=0.0)
MAX_MEAN_ABS_DIFF = 6  # JPEG q90 of flat colours vs the mpeg4 source (measured < 2)


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    return stored_dataset(str(tmp_path_factory.mktemp('readers')), FRAMES)


@pytest.fixture(scope='module')
def split(dataset):
    return dataset.stored('train')


def mean_abs_diff(a, b):
    return float(np.abs(a.astype(np.int32) - b.astype(np.int32)).mean())


def test_the_video_reader_refuses_stored_records():
    with pytest.raises(ValueError, match='stored in a TFDS dataset'):
        VIDEO_READER.num_frames(VideoRecord('a.avi', 0, total_frames=5, offset=0))


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

    def never(*args):
        raise AssertionError('a raw-frame folder went through the reader')

    frames = load_frames(rec, index_fn, FrameReader('never', never, never))
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


# ---------------------------------------------------------------- the TFDS reader in each stage


def test_stored_jpegs_decode_as_pil_decodes_them_and_bad_frames_raise():
    import io

    from PIL import Image

    from data_pipelines.datasets.stored import decode_jpegs

    rng = np.random.default_rng(0)

    def jpeg(h, w):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(buf, 'JPEG', quality=90)
        return buf.getvalue()

    blobs = [jpeg(24, 40) for _ in range(3)]
    frames = decode_jpegs(blobs, 'v.mp4')
    pil = np.stack([np.asarray(Image.open(io.BytesIO(b)).convert('RGB')) for b in blobs])
    assert frames.shape == (3, 24, 40, 3) and frames.dtype == np.uint8
    np.testing.assert_array_equal(frames, pil)  # both libjpeg-turbo, accurate DCT
    with pytest.raises(VideoDecodeError, match=r'v.mp4.*differ in size: \[\(24, 40\), \(32, 40\)\]'):
        decode_jpegs(blobs + [jpeg(32, 40)], 'v.mp4')
    with pytest.raises(VideoDecodeError, match='v.mp4.*corrupt JPEG frame'):
        decode_jpegs(blobs[:1] + [blobs[1][:200]], 'v.mp4')


def test_stored_split_lists_the_videos_in_order(dataset, split):
    # Independent of the build: the lists the dataset was built from, and 20 frames each.
    assert [(r.path, r.label, r.total_frames, r.offset) for r in split.records] == [
        ('cls0/v0.avi', 0, FRAMES, 0), ('cls1/v1.avi', 1, FRAMES, FRAMES)
    ]
    assert split.label_names == ['0', '1'] and split.skipped == []
    assert split.reader.name == 'tfds'


def test_frames_agree_with_the_pyav_reader(dataset, split):
    for r, f in zip(raw_list(dataset), split.records):
        rng_a, rng_b = np.random.default_rng(7), np.random.default_rng(7)
        a = load_frames(r, lambda n: dense_clip_indices(n, 8, 2, 'train', rng_a, r.path))
        b = load_frames(
            f, lambda n: dense_clip_indices(n, 8, 2, 'train', rng_b, f.path), split.reader
        )
        assert a.shape == b.shape == (8, 48, 64, 3) and a.dtype == b.dtype == np.uint8
        assert mean_abs_diff(a, b) < MAX_MEAN_ABS_DIFF
        assert codes(a) == codes(b)


def test_train_dataset_matches_the_pyav_reader(dataset, split):
    def first_batch(records, **reader):
        transform = ClassifyTransform(records, **SMALL, **PLAIN, **reader)
        return next(
            iter(make_train_dataset(records, transform, batch_size=2, seed=3, num_epochs=1))
        )

    want = first_batch(raw_list(dataset))
    got = first_batch(split.records, reader=split.reader)
    for k in want:
        assert got[k].shape == want[k].shape and got[k].dtype == want[k].dtype, k
    assert want['video'].shape == (4, 4, 32, 32, 3)
    np.testing.assert_array_equal(got['label'], want['label'])
    assert int(got['skipped']) == 0
    # Same seed, same frames and crops: equal up to JPEG precision.
    assert mean_abs_diff(got['video'], want['video']) < MAX_MEAN_ABS_DIFF
    for g, w in zip(got['video'], want['video']):
        assert codes(g) == codes(w)


def test_eval_dataset_matches_the_pyav_reader(dataset, split):
    def batches(records, **reader):
        transform = EvalTransform(test_num_segment=2, test_num_crop=3, **SMALL, **reader)
        return list(make_eval_dataset(records, transform, batch_size=6))

    want = batches(raw_list(dataset))
    got = batches(split.records, reader=split.reader)
    assert len(got) == len(want) == 2
    for g, w in zip(got, want):
        for k in w:
            assert g[k].shape == w[k].shape and g[k].dtype == w[k].dtype, k
        for k in ('label', 'video_index', 'view', 'valid'):
            np.testing.assert_array_equal(g[k], w[k])
        assert g['valid'].all()
        assert mean_abs_diff(g['video'], w['video']) < MAX_MEAN_ABS_DIFF


def test_records_out_of_step_with_the_data_are_refused_skipped_and_counted(split):
    good = split.records
    bad = [
        dataclasses.replace(good[0], offset=3),  # index and data out of step
        dataclasses.replace(good[1], total_frames=FRAMES + 30),  # claims frames not stored
    ]
    with pytest.raises(VideoDecodeError, match='at the index'):
        split.reader.decode_frames(bad[0], [0, 1])
    with pytest.raises(VideoDecodeError, match='40 requested but 20 frames stored'):
        split.reader.decode_frames(good[1], [40])
    # Training: bad records are replaced by readable ones and counted in "skipped".
    transform = ClassifyTransform(bad + good, reader=split.reader, **SMALL, **PLAIN)
    batch = next(iter(make_train_dataset(bad[:1] + good, transform, batch_size=3, num_epochs=1)))
    assert batch['video'].shape == (6, 4, 32, 32, 3) and int(batch['skipped']) >= 1
    # Evaluation: their rows come back with valid=False.
    transform = EvalTransform(mode='val', reader=split.reader, **SMALL)
    rows = list(make_eval_dataset(bad[:1] + good, transform, batch_size=3))
    np.testing.assert_array_equal(rows[0]['valid'], [False, True, True])


def test_transforms_with_the_tfds_reader_pickle(split):
    recs = split.records
    for transform in (ClassifyTransform(recs, reader=split.reader), EvalTransform(reader=split.reader)):
        back = pickle.loads(pickle.dumps(transform))
        assert back.reader.name == 'tfds'
        clip = back.reader.decode_frames(recs[1], [0, 19])
        assert codes(clip) == [20, 39]
