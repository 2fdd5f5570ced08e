"""Fast data format: write with vmae2.tools.make_fast_dataset, read back, compare; list mapping."""

import os

import numpy as np
import pytest

from data_pipelines import decode
from data_pipelines import fast_format
from data_pipelines import testing
from data_pipelines.decode import VideoDecodeError
from data_pipelines.pipeline import make_train_dataset
from data_pipelines.readers import get_reader
from data_pipelines.records import VideoRecord
from data_pipelines.transforms import PretrainTransform
from data_helpers import fast_dataset, fast_list
from vmae2.tools import make_fast_dataset

SUFFIX = {'video': '.mp4', 'jpeg-arrayrecord': fast_format.ARRAY_RECORD_SUFFIX}


@pytest.fixture(scope='module')
def raw_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp('raw')
    testing.write_test_video(str(d / 'a.mp4'), num_frames=48, width=96, height=64)
    testing.write_test_video(str(d / 'b.mp4'), num_frames=40, width=96, height=64, first_code=20)
    return str(d)


@pytest.fixture(scope='module')
def fast_data(tmp_path_factory):
    return fast_dataset(str(tmp_path_factory.mktemp('lists')))


@pytest.mark.parametrize('fmt', make_fast_dataset.FORMATS)
def test_round_trip_matches_source(raw_dir, tmp_path, fmt):
    out = str(tmp_path / 'fast')
    entries = make_fast_dataset.convert(raw_dir, out, fmt=fmt, short_side=320)
    assert [e.get('error') for e in entries] == [None, None]
    for name, first_code, n in (('a', 0, 48), ('b', 20, 40)):
        src = os.path.join(raw_dir, name + '.mp4')
        path = os.path.join(out, name + SUFFIX[fmt])
        assert fast_format.num_frames(path) == n
        idx = np.array([0, 3, 3, 17, 30, n - 1])
        got = fast_format.decode_frames(path, idx)
        want = decode.decode_frames(src, idx)
        assert got.shape == want.shape == (len(idx), 64, 96, 3)
        assert got.dtype == np.uint8
        # Within codec/JPEG tolerance of the source decode, and the right frames.
        assert np.abs(got.astype(np.int32) - want).mean() < 6
        np.testing.assert_array_equal(testing.identify_frames(got), idx + first_code)


def test_seeking_decoder_on_raw_video_and_short_side(tmp_path):
    src = testing.write_test_video(str(tmp_path / 'big.mp4'), num_frames=60, width=640, height=480)
    idx = np.arange(37, 60, 4)
    np.testing.assert_array_equal(
        testing.identify_frames(fast_format.decode_video_seek(src, idx)), idx
    )
    entry = make_fast_dataset.write_video(src, str(tmp_path / 'small.mp4'), 320, 16)
    assert (entry['width'], entry['height'], entry['frames']) == (426, 320, 60)
    frames = fast_format.decode_frames(str(tmp_path / 'small.mp4'), idx)
    assert frames.shape == (len(idx), 320, 426, 3)
    np.testing.assert_array_equal(testing.identify_frames(frames), idx)


def test_errors(tmp_path):
    src = testing.write_test_video(str(tmp_path / 'v.mp4'), num_frames=20)
    ar = str(tmp_path / 'v.array_record')
    make_fast_dataset.write_jpeg_arrayrecord(src, ar, 320)
    with pytest.raises(VideoDecodeError):
        fast_format.decode_frames(ar, [25])
    with pytest.raises(VideoDecodeError):
        fast_format.decode_frames(src, [25])
    with pytest.raises(ValueError):
        fast_format.decode_frames(ar, [3, 2])
    with pytest.raises(VideoDecodeError):
        fast_format.decode_frames(str(tmp_path / 'missing.array_record'), [0])


def test_fast_pretrain_dataset(raw_dir, tmp_path):
    out = str(tmp_path / 'fast')
    make_fast_dataset.convert(raw_dir, out, fmt='jpeg-arrayrecord')
    recs = fast_format.fast_records(out)
    assert [os.path.basename(r.path) for r in recs] == ['a.array_record', 'b.array_record']
    small = dict(num_frames=4, sampling_rate=2, input_size=32, num_sample=2)
    transform = PretrainTransform(recs, reader=get_reader('fast'), **small)
    batch = next(iter(make_train_dataset(recs, transform, batch_size=2, num_epochs=1)))
    assert batch['video'].shape == (4, 4, 32, 32, 3)
    assert batch['video'].dtype == np.uint8
    assert int(batch['skipped']) == 0
    with pytest.raises(FileNotFoundError, match='no .array_record or .mp4'):
        fast_format.fast_records(str(tmp_path))  # only the folder 'fast' in it


@pytest.mark.parametrize('fmt', make_fast_dataset.FORMATS)
def test_list_paths_map_to_the_fast_files(fast_data, fmt):
    recs = fast_list(fast_data, fmt)
    root = fast_data.fast[fmt]
    assert [r.path for r in recs] == [
        os.path.join(root, f'cls{v}', f'v{v}' + SUFFIX[fmt]) for v in range(2)
    ]
    assert [r.label for r in recs] == [0, 1] and all(os.path.isfile(r.path) for r in recs)
    # No manifest in data_root: paths as listed; raw-frame folders are never remapped.
    kept = [VideoRecord('/x/a.avi', 0), VideoRecord('/x/frames', 1, 12)]
    assert fast_format.fast_format_records(kept, '/x') == kept
    assert fast_format.fast_format_records([kept[1]], root) == [kept[1]]


def test_unknown_manifest_format(tmp_path):
    (tmp_path / 'manifest.json').write_text('{"format": "png"}')
    with pytest.raises(ValueError, match="unknown fast format 'png'"):
        fast_format.fast_format_records([VideoRecord('a.avi', 0)], str(tmp_path))
