"""Fine-tuning grain pipelines on small synthetic videos (data_pipelines.finetune_pipeline)."""

import logging
import os

import numpy as np
import pytest
from PIL import Image

from data_pipelines.finetune_pipeline import (
    eval_batches_per_process,
    make_eval_dataset,
    make_feature_windows,
    make_finetune_train_dataset,
)
from data_pipelines.decode import VideoDecodeError
from data_pipelines.labels import ClsRecord
from data_pipelines.testing import frame_colour, identify_frames, write_test_video

FRAMES = 10  # video v shows colour codes 10v .. 10v+9 and has label v
NUM_VIDEOS = 5
SMALL = dict(num_frames=4, sampling_rate=2, input_size=32)
PLAIN = dict(rand_augment=False, reprob=0.0)


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    d = tmp_path_factory.mktemp("ftvideos")
    recs = []
    for v in range(NUM_VIDEOS):
        size = (64, 48) if v % 2 else (48, 64)  # landscape and portrait
        path = write_test_video(str(d / f"v{v}.mp4"), FRAMES, *size, first_code=FRAMES * v)
        recs.append(ClsRecord(path, v))
    return recs


@pytest.fixture()
def corrupt(tmp_path):
    p = tmp_path / "corrupt.mp4"
    p.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 100)
    return ClsRecord(str(p), 9)


def codes(clip):
    return identify_frames(clip).tolist()


def take(ds, n):
    it = iter(ds)
    return [next(it) for _ in range(n)]


# ---------------------------------------------------------------- training


def test_train_element_format_and_repeated_aug(records):
    batch = next(iter(make_finetune_train_dataset(records, batch_size=2, **SMALL, **PLAIN)))
    assert set(batch) == {"video", "label", "erase_box", "skipped"}
    assert batch["video"].shape == (4, 4, 32, 32, 3) and batch["video"].dtype == np.uint8
    assert batch["label"].shape == (4,) and batch["label"].dtype == np.int32
    assert batch["erase_box"].shape == (4, 4) and batch["erase_box"].dtype == np.int32
    assert batch["skipped"].shape == () and batch["skipped"].dtype == np.int32
    rows = [codes(c) for c in batch["video"]]
    assert rows[0] == rows[1] and rows[2] == rows[3]  # one decode, two augmentations
    for row, label in zip(rows, batch["label"]):
        assert {c // FRAMES for c in row} == {int(label)}
        # dense train, L=10 > span 8: end in [8, 9], idx = floor(linspace(end-8, end, 4))
        assert [c % FRAMES for c in row] in ([0, 2, 5, 7], [1, 3, 6, 8])


def test_train_with_all_augmentations(records):
    ds = make_finetune_train_dataset(records, batch_size=2, reprob=1.0, seed=3, **SMALL)
    for batch in take(ds, 3):
        assert batch["video"].shape == (4, 4, 32, 32, 3)
        box = batch["erase_box"]
        assert np.all(box[:, 2] > 0) and np.all(box[:, 0] + box[:, 2] <= 32)


def test_tsn_sampler_on_videos_and_rawframes(records, tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for k in range(12):  # img_00001.jpg .. img_00012.jpg show codes 50..61
        Image.new("RGB", (40, 36), frame_colour(50 + k)).save(folder / f"img_{k + 1:05}.jpg")
    raw = ClsRecord(str(folder), 7, total_frames=12)
    ds = make_finetune_train_dataset(
        [raw, records[0]], batch_size=2, num_sample=1, sampler="tsn", flip=False, **SMALL, **PLAIN
    )
    for batch in take(ds, 3):
        for clip, label in zip(batch["video"], batch["label"]):
            c = codes(clip)
            if label == 7:  # N=12, 4 segments: avg 3, idx = 3k + randint(3)
                assert all(3 * k <= c[k] - 50 < 3 * k + 3 for k in range(4))
            else:  # N=10: avg 2
                assert label == 0 and all(2 * k <= c[k] < 2 * k + 2 for k in range(4))


def test_corrupt_and_missing_files_are_skipped(records, corrupt, tmp_path, caplog):
    missing = ClsRecord(str(tmp_path / "missing.mp4"), 8)
    recs = [missing, corrupt] + records[:2]
    ds = make_finetune_train_dataset(recs, batch_size=2, num_epochs=2, **SMALL, **PLAIN)
    with caplog.at_level(logging.WARNING, logger="data_pipelines"):
        batches = list(ds)
    assert len(batches) == 4
    assert sum(int(b["skipped"]) for b in batches) >= 4
    for b in batches:
        assert set(b["label"].tolist()) <= {0, 1}  # replacements carry their own label
        for clip, label in zip(b["video"], b["label"]):
            assert codes(clip)[0] // FRAMES == label
    assert "missing.mp4" in caplog.text and "corrupt.mp4" in caplog.text


def test_nothing_readable_raises(corrupt):
    ds = make_finetune_train_dataset([corrupt], batch_size=1, **SMALL, **PLAIN)
    with pytest.raises(RuntimeError, match="no readable video"):
        next(iter(ds))


def test_deterministic_and_checkpoint_round_trip(records):
    def build():
        return make_finetune_train_dataset(records, batch_size=2, seed=7, **SMALL)

    first = take(build(), 3)
    again = take(build(), 3)
    for a, b in zip(first, again):
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])
    it = iter(build())
    next(it)
    state = it.get_state()
    expected = [next(it), next(it)]
    it2 = iter(build())
    it2.set_state(state)
    for a, b in zip(expected, [next(it2), next(it2)]):
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])


def test_train_shards_differ(records):
    a = take(
        make_finetune_train_dataset(
            records, batch_size=1, num_sample=1, shard_count=2, shard_index=0, **SMALL, **PLAIN
        ),
        2,
    )
    b = take(
        make_finetune_train_dataset(
            records, batch_size=1, num_sample=1, shard_count=2, shard_index=1, **SMALL, **PLAIN
        ),
        2,
    )
    assert [x["label"].tolist() for x in a] != [x["label"].tolist() for x in b]


def test_train_bad_arguments(records):
    with pytest.raises(ValueError):
        make_finetune_train_dataset([], batch_size=1)
    with pytest.raises(ValueError):
        make_finetune_train_dataset(records, batch_size=1, sampler="sparse")
    with pytest.raises(ValueError):
        make_finetune_train_dataset(records, batch_size=1, shard_index=2, shard_count=2)


# ---------------------------------------------------------------- evaluation


def test_eval_test_views_padding_and_disjoint_shards(records):
    segs, crops, bs = 2, 3, 4
    seen = []
    for shard in range(2):
        ds = make_eval_dataset(
            records,
            batch_size=bs,
            test_num_segment=segs,
            test_num_crop=crops,
            shard_index=shard,
            shard_count=2,
            mode="test",
            **SMALL,
        )
        batches = list(ds)
        # ceil(ceil(5/2) * 6 / 4) = 5 batches on both processes
        assert len(batches) == eval_batches_per_process(5, 6, bs, 2) == 5
        for b in batches:
            assert set(b) == {"video", "label", "video_index", "view", "valid"}
            assert b["video"].shape == (bs, 4, 32, 32, 3) and b["video"].dtype == np.uint8
            assert b["valid"].dtype == bool and b["video_index"].dtype == np.int32
        valid = np.concatenate([b["valid"] for b in batches])
        vid = np.concatenate([b["video_index"] for b in batches])
        view = np.concatenate([b["view"] for b in batches])
        label = np.concatenate([b["label"] for b in batches])
        video = np.concatenate([b["video"] for b in batches])
        n_mine = len(range(shard, 5, 2))
        assert valid.sum() == n_mine * 6 and not valid[n_mine * 6 :].any()  # padding at the end
        assert np.all(vid[~valid] == -1) and np.all(view[~valid] == -1)
        assert np.all(label[valid] == vid[valid])
        for i in np.flatnonzero(valid):
            c = codes(video[i])
            chunk = view[i] // crops
            # L=10, rate 2: sampled 0,2,4,6,8 (L'=5); step (5-4)/1 = 1 -> chunk c starts at c
            assert [x - FRAMES * vid[i] for x in c] == [2 * (chunk + j) for j in range(4)]
        seen += list(zip(vid[valid].tolist(), view[valid].tolist()))
    assert len(seen) == len(set(seen)) == NUM_VIDEOS * segs * crops  # no duplicates, complete


def test_eval_val_mode_centre_clip(records):
    batches = list(make_eval_dataset(records, batch_size=2, mode="val", **SMALL))
    assert len(batches) == 3
    valid = np.concatenate([b["valid"] for b in batches])
    assert valid.tolist() == [True] * 5 + [False]
    b0 = batches[0]
    assert b0["view"].tolist() == [0, 0]
    # val: end = (8 + 10) // 2 = 9, start 1: floor(linspace(1, 9, 4)) clipped to 8 -> 1, 3, 6, 8
    assert codes(b0["video"][0]) == [1, 3, 6, 8]


def test_eval_unreadable_video_is_marked_invalid(records, corrupt, caplog):
    recs = [records[0], corrupt]
    with caplog.at_level(logging.WARNING, logger="data_pipelines"):
        batches = list(
            make_eval_dataset(
                recs, batch_size=3, test_num_segment=1, test_num_crop=3, mode="test", **SMALL
            )
        )
    assert len(batches) == 2
    valid = np.concatenate([b["valid"] for b in batches])
    vid = np.concatenate([b["video_index"] for b in batches])
    assert valid.tolist() == [True] * 3 + [False] * 3
    assert vid.tolist() == [0, 0, 0, 1, 1, 1]
    assert "corrupt.mp4" in caplog.text


def test_eval_tsn_test(records):
    batches = list(
        make_eval_dataset(
            records[:1],
            batch_size=6,
            test_num_segment=2,
            test_num_crop=3,
            mode="test",
            sampler="tsn",
            **SMALL,
        )
    )
    (b,) = batches
    # N=10, 4 segments, S=2: tick 2.5; t=0: 0,2,5,7; t=1: int(1.25 + 2.5x) = 1,3,6,8
    assert codes(b["video"][0]) == [0, 2, 5, 7] and codes(b["video"][3]) == [1, 3, 6, 8]
    assert b["view"].tolist() == list(range(6))


# ---------------------------------------------------------------- feature windows


def test_feature_windows(tmp_path):
    path = write_test_video(str(tmp_path / "long.mp4"), 40, 48, 32)
    batches = list(make_feature_windows(path, step=4, input_size=32, batch_size=3))
    assert [b.shape for b in batches] == [(3, 16, 32, 32, 3)] * 2 + [(1, 16, 32, 32, 3)]
    windows = np.concatenate(batches)
    for s, w in zip(range(0, 25, 4), windows):
        assert codes(w) == list(range(s, s + 16))
    fine = np.concatenate(list(make_feature_windows(path, step=16, input_size=32, batch_size=8)))
    assert [codes(w)[0] for w in fine] == [0, 16]
    sparse = np.concatenate(list(make_feature_windows(path, step=20, num_frames=4, input_size=32)))
    assert [codes(w) for w in sparse] == [[0, 1, 2, 3], [20, 21, 22, 23]]
    short = write_test_video(str(tmp_path / "short.mp4"), 8, 48, 32)
    assert list(make_feature_windows(short, step=4, input_size=32, batch_size=2)) == []


def test_feature_windows_errors(tmp_path, corrupt):
    with pytest.raises(VideoDecodeError, match="does not exist"):
        make_feature_windows(str(tmp_path / "nope.mp4"), step=4, batch_size=1)
    with pytest.raises(ValueError):
        make_feature_windows(corrupt.path, step=0, batch_size=1)
    with pytest.raises(VideoDecodeError):
        list(make_feature_windows(corrupt.path, step=4, batch_size=1))
    assert os.path.exists(corrupt.path)


def test_worker_processes_match_in_process(records):
    kw = dict(batch_size=2, seed=4, **SMALL)
    want = take(make_finetune_train_dataset(records, **kw), 2)
    it = iter(make_finetune_train_dataset(records, worker_count=1, **kw))
    try:
        got = [next(it) for _ in range(2)]
    finally:
        it.close()
    for a, b in zip(want, got):
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])
