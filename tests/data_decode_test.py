"""PyAV decoding on small synthetic videos (data_pipelines.testing)."""

import numpy as np
import pytest

from data_pipelines.decode import VideoDecodeError, decode_frames, iter_frames, num_frames
from data_pipelines.testing import (
    frame_colour,
    identify_frames,
    write_test_video,
    write_truncated_video,
)


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return write_test_video(str(tmp_path_factory.mktemp("v") / "v48.mp4"), 48, 96, 64)


def test_num_frames(video):
    assert num_frames(video) == 48
    assert num_frames(video, exact=False) == 48


def test_decode_frames_picks_and_repeats(video):
    idx = [0, 0, 3, 10, 11, 36, 47, 47]
    frames = decode_frames(video, idx)
    assert frames.shape == (8, 64, 96, 3) and frames.dtype == np.uint8
    np.testing.assert_array_equal(identify_frames(frames), idx)
    means = frames.reshape(8, -1, 3).mean(1)
    np.testing.assert_allclose(means, [frame_colour(k) for k in idx], atol=8)


def test_libx264_if_available(tmp_path):
    import av

    if "libx264" not in av.codecs_available:
        pytest.skip("this FFmpeg build has no libx264 encoder")
    path = write_test_video(str(tmp_path / "x.mp4"), 20, 64, 48, codec="libx264")
    assert num_frames(path) == 20
    np.testing.assert_array_equal(identify_frames(decode_frames(path, range(20))), np.arange(20))


def test_index_beyond_end(video):
    with pytest.raises(VideoDecodeError, match="only 48 frames") as e:
        decode_frames(video, [0, 48])
    assert e.value.decoded_frames == 48
    with pytest.raises(ValueError):
        decode_frames(video, [5, 4])


def test_missing_file(tmp_path):
    with pytest.raises(VideoDecodeError, match="does not exist"):
        num_frames(str(tmp_path / "nope.mp4"))
    with pytest.raises(VideoDecodeError):
        decode_frames(str(tmp_path / "nope.mp4"), [0])


def test_text_file_named_mp4(tmp_path):
    path = tmp_path / "fake.mp4"
    path.write_text("this is not a video\n" * 20)
    with pytest.raises(VideoDecodeError) as e:
        num_frames(str(path))
    assert isinstance(e.value, RuntimeError) and e.value.path == str(path)
    with pytest.raises(VideoDecodeError):
        decode_frames(str(path), [0])


def test_truncated_file_index_at_end(tmp_path, video):
    # moov atom at the end (PyAV's default mp4): cutting the file loses the index
    data = open(video, "rb").read()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoDecodeError):
        num_frames(str(cut))
    with pytest.raises(VideoDecodeError):
        decode_frames(str(cut), [0, 10])


def test_truncated_file_index_first(tmp_path):
    # faststart: the header still says 48 frames but fewer decode
    cut = write_truncated_video(str(tmp_path / "fs_cut.mp4"), 48, 96, 64)
    assert num_frames(cut, exact=False) == 48
    n = num_frames(cut)
    assert 0 < n < 48
    with pytest.raises(VideoDecodeError) as e:
        decode_frames(cut, np.arange(48))
    assert e.value.decoded_frames == n
    # readers.load_frames resamples over the frames that decode: data_readers_test.py
    assert sum(1 for _ in iter_frames(cut)) == n


def test_iter_frames(tmp_path, video):
    frames = [f.to_ndarray(format="rgb24") for f in iter_frames(video)]
    np.testing.assert_array_equal(identify_frames(np.stack(frames)), np.arange(48))
    with pytest.raises(VideoDecodeError, match="does not exist"):
        next(iter_frames(str(tmp_path / "nope.mp4")))
