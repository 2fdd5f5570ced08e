"""Fast data format: write with vmae2.tools.make_fast_dataset, read back, compare."""

import os

import numpy as np
import pytest

from data_pipelines import decode
from data_pipelines import fast_format
from data_pipelines import pipeline
from data_pipelines import testing
from data_pipelines.decode import VideoDecodeError
from vmae2.tools import make_fast_dataset


@pytest.fixture(scope='module')
def raw_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp('raw')
    testing.write_test_video(str(d / 'a.mp4'), num_frames=48, width=96, height=64)
    testing.write_test_video(str(d / 'b.mp4'), num_frames=40, width=96, height=64, first_code=20)
    return str(d)


@pytest.mark.parametrize('fmt', make_fast_dataset.FORMATS)
def test_round_trip_matches_source(raw_dir, tmp_path, fmt):
    out = str(tmp_path / 'fast')
    entries = make_fast_dataset.convert(raw_dir, out, fmt=fmt, short_side=320)
    assert [e.get('error') for e in entries] == [None, None]
    for name, first_code, n in (('a', 0, 48), ('b', 20, 40)):
        src = os.path.join(raw_dir, name + '.mp4')
        suffix = fast_format.ARRAY_RECORD_SUFFIX if fmt == 'jpeg-arrayrecord' else '.mp4'
        path = os.path.join(out, name + suffix)
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
    ds = pipeline.make_pretrain_dataset(
        fast_format.fast_records(out),
        clip_loader=fast_format.load_clip,
        batch_size=2,
        num_frames=4,
        sampling_rate=2,
        input_size=32,
        num_sample=2,
        num_epochs=1,
    )
    batch = next(iter(ds))
    assert batch['video'].shape == (4, 4, 32, 32, 3)
    assert batch['video'].dtype == np.uint8
    assert int(batch['skipped']) == 0


def test_pretraining_reads_the_fast_format_from_config(raw_dir, tmp_path):
    import tiny_configs
    from vmae2.trainers import pretrain

    out = str(tmp_path / 'fast')
    make_fast_dataset.convert(raw_dir, out, fmt='jpeg-arrayrecord')
    c = tiny_configs.tiny_pretrain_config(out)
    c.data.reader, c.mesh = 'fast', {'data': -1}
    c.optim.total_steps, c.optim.warmup_steps, c.log_every = 2, 1, 1
    last = pretrain.train(c, str(tmp_path / 'w'))
    assert last['skipped_videos'] == 0 and last['loss'] > 0
    c.data.reader = 'pickle'
    with pytest.raises(ValueError, match="data.reader 'pickle'"):
        pretrain.train(c, str(tmp_path / 'w2'))
