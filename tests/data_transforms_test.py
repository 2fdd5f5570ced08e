"""Stage transforms on small synthetic videos: the rows of a record, temporal
sampling inside them, unreadable videos (data_pipelines.transforms)."""

import logging
import os

import numpy as np
import pytest

from data_pipelines.pipeline import make_train_dataset
from data_pipelines.records import VideoRecord
from data_pipelines.sources import read_pretrain_list
from data_pipelines.testing import write_corrupt_video, write_rawframes
from data_pipelines.transforms import ClassifyTransform, EvalTransform, PretrainTransform
import data_helpers
from data_helpers import (
    FT_FRAMES,
    PLAIN,
    PRE_SMALL,
    SMALL,
    Stage,
    codes,
    eval_rows,
    take,
)

# fixtures: pre-training videos, labelled videos, each training stage on its videos
pre_records, records, stage = data_helpers.pre_records, data_helpers.records, data_helpers.stage


@pytest.fixture()
def corrupt(tmp_path):
    return VideoRecord(write_corrupt_video(str(tmp_path / "corrupt.mp4")), 9)


# ---------------------------------------------------------------- both training stages


def test_unreadable_videos_are_replaced_and_logged(stage, corrupt, tmp_path, caplog):
    missing = VideoRecord(str(tmp_path / "missing.mp4"), 8)
    recs = [missing, corrupt] + stage.records[:2]
    with caplog.at_level(logging.WARNING, logger="data_pipelines"):
        batches = list(stage.dataset(recs, batch_size=2, num_epochs=2))
    assert len(batches) == 4  # 2 epochs x 4 records / batch 2
    assert sum(int(b["skipped"]) for b in batches) >= 4  # each bad file once per epoch
    for b in batches:
        ids = stage.video_ids(b)
        assert set(ids) <= {0, 1}
        if "label" in b:  # replacements carry their own label
            assert b["label"].tolist() == ids
    text = caplog.text
    assert "missing.mp4" in text and "does not exist" in text and "corrupt.mp4" in text
    assert all(r.name == "data_pipelines" for r in caplog.records)


def test_gives_up_when_nothing_is_readable(stage, corrupt, tmp_path, caplog):
    recs = [VideoRecord(str(tmp_path / f"none{i}.mp4"), 0) for i in range(2)] + [corrupt]
    with caplog.at_level(logging.ERROR, logger="data_pipelines"):
        with pytest.raises(RuntimeError, match="no readable video among"):
            next(iter(stage.dataset(recs, batch_size=1)))


def test_bad_transform_arguments(records):
    for make in (PretrainTransform, ClassifyTransform):
        with pytest.raises(ValueError, match="records is empty"):
            make([])
        with pytest.raises(ValueError, match="num_sample must be >= 1"):
            make(records, num_sample=0)
    with pytest.raises(ValueError, match="sampler must be one of"):
        ClassifyTransform(records, sampler="sparse")
    with pytest.raises(ValueError, match="sampler must be one of"):
        EvalTransform(sampler="sparse")
    with pytest.raises(ValueError, match="mode must be 'val' or 'test'"):
        EvalTransform(mode="train")
    with pytest.raises(ValueError, match="test_num_crop must be >= 1"):
        EvalTransform(test_num_crop=0)
    assert EvalTransform(mode="val").views == 1
    assert EvalTransform(test_num_segment=5, test_num_crop=3).views == 15


# ---------------------------------------------------------------- pre-training


def test_pretrain_rows_share_one_decode(pre_records):
    transform = PretrainTransform(pre_records, num_sample=2, **PRE_SMALL)
    batch = next(iter(make_train_dataset(pre_records, transform, batch_size=2)))
    assert set(batch) == {"video", "skipped"}
    assert batch["video"].shape == (4, 4, 32, 32, 3) and batch["video"].dtype == np.uint8
    assert batch["skipped"].dtype == np.int32 and batch["skipped"].shape == ()
    assert batch["skipped"] == 0
    rows = [codes(clip) for clip in batch["video"]]
    # rows 0,1 come from one decode (same frames), rows 2,3 from another
    assert rows[0] == rows[1] and rows[2] == rows[3]
    assert rows[0] != rows[2]
    for c in rows:  # stride-1 clip of 4 consecutive frames inside one video
        assert np.all(np.diff(c) == 1) and c[0] // 8 == c[-1] // 8


def test_pretrain_from_an_official_list(pre_records, tmp_path):
    lst = tmp_path / "train.csv"
    lst.write_text("v1.mp4 0 -1\nv2.mp4 0 -1 0\n")
    recs = read_pretrain_list(str(lst), data_root=os.path.dirname(pre_records[0].path))
    ds = make_train_dataset(recs, PretrainTransform(recs, **PRE_SMALL), batch_size=2)
    assert sorted(Stage("pretrain", recs).video_ids(next(iter(ds)))) == [1, 2]


def test_pretrain_reads_rawframe_folders(tmp_path):
    # official list lines 'folder start_idx total_frames': frame i is img_{i + start_idx:05}.jpg
    write_rawframes(str(tmp_path / "a"), 12, first_code=40, start_idx=1)
    write_rawframes(str(tmp_path / "b"), 6, first_code=56, start_idx=0)
    lst = tmp_path / "train.csv"
    lst.write_text("a 1 12\nb 0 6\n")
    recs = read_pretrain_list(str(lst), data_root=str(tmp_path))
    transform = PretrainTransform(recs, num_frames=4, sampling_rate=2, input_size=32)
    for batch in take(make_train_dataset(recs, transform, batch_size=2, seed=1), 3):
        assert batch["video"].shape == (2, 4, 32, 32, 3) and int(batch["skipped"]) == 0
        for clip in batch["video"]:
            c = codes(clip)
            if c[0] < 56:  # a: 12 frames, span 8: start in [0, 4], stride 2
                assert 40 <= c[0] <= 44 and np.all(np.diff(c) == 2)
            else:  # b: 6 frames < span 8: offsets 1, 3, 5 (5 + 2 not < 6): frames 0, 2, 4, 4
                assert c == [56, 58, 60, 60]


# ---------------------------------------------------------------- fine-tuning


def test_classify_element_format_and_repeated_aug(records):
    transform = ClassifyTransform(records, **SMALL, **PLAIN)
    batch = next(iter(make_train_dataset(records, transform, batch_size=2)))
    assert set(batch) == {"video", "label", "erase_box", "skipped"}
    assert batch["video"].shape == (4, 4, 32, 32, 3) and batch["video"].dtype == np.uint8
    assert batch["label"].shape == (4,) and batch["label"].dtype == np.int32
    assert batch["erase_box"].shape == (4, 4) and batch["erase_box"].dtype == np.int32
    assert batch["skipped"].shape == () and batch["skipped"].dtype == np.int32
    rows = [codes(c) for c in batch["video"]]
    assert rows[0] == rows[1] and rows[2] == rows[3]  # one decode, two augmentations
    for row, label in zip(rows, batch["label"]):
        assert {c // FT_FRAMES for c in row} == {int(label)}
        # dense train, L=10 > span 8: end in [8, 9], idx = floor(linspace(end-8, end, 4))
        assert [c % FT_FRAMES for c in row] in ([0, 2, 5, 7], [1, 3, 6, 8])


def test_classify_with_all_augmentations(records):
    transform = ClassifyTransform(records, reprob=1.0, **SMALL)
    for batch in take(make_train_dataset(records, transform, batch_size=2, seed=3), 3):
        assert batch["video"].shape == (4, 4, 32, 32, 3)
        box = batch["erase_box"]
        assert np.all(box[:, 2] > 0) and np.all(box[:, 0] + box[:, 2] <= 32)


def test_tsn_sampler_on_videos_and_rawframes(records, tmp_path):
    # img_00001.jpg .. img_00012.jpg show codes 50..61
    raw = VideoRecord(write_rawframes(str(tmp_path / "frames"), 12, first_code=50), 7, 12)
    recs = [raw, records[0]]
    transform = ClassifyTransform(recs, num_sample=1, sampler="tsn", flip=False, **SMALL, **PLAIN)
    for batch in take(make_train_dataset(recs, transform, batch_size=2), 3):
        for clip, label in zip(batch["video"], batch["label"]):
            c = codes(clip)
            if label == 7:  # N=12, 4 segments: avg 3, idx = 3k + randint(3)
                assert all(3 * k <= c[k] - 50 < 3 * k + 3 for k in range(4))
            else:  # N=10: avg 2
                assert label == 0 and all(2 * k <= c[k] < 2 * k + 2 for k in range(4))


# ---------------------------------------------------------------- evaluation


def test_eval_val_mode_centre_clip(records):
    batches, rows = eval_rows(records, 2, mode="val")
    assert len(batches) == 3
    assert rows["valid"].tolist() == [True] * 5 + [False]
    assert rows["view"][:2].tolist() == [0, 0]
    # val: end = (8 + 10) // 2 = 9, start 1: floor(linspace(1, 9, 4)) clipped to 8 -> 1, 3, 6, 8
    assert codes(rows["video"][0]) == [1, 3, 6, 8]


def test_eval_unreadable_video_is_marked_invalid(records, corrupt, caplog):
    with caplog.at_level(logging.WARNING, logger="data_pipelines"):
        batches, rows = eval_rows([records[0], corrupt], 3, test_num_segment=1, test_num_crop=3)
    assert len(batches) == 2
    assert rows["valid"].tolist() == [True] * 3 + [False] * 3
    assert rows["video_index"].tolist() == [0, 0, 0, 1, 1, 1]
    assert "corrupt.mp4" in caplog.text


def test_eval_tsn_test(records):
    batches, rows = eval_rows(records[:1], 6, test_num_segment=2, test_num_crop=3, sampler="tsn")
    assert len(batches) == 1
    # N=10, 4 segments, S=2: tick 2.5; t=0: 0,2,5,7; t=1: int(1.25 + 2.5x) = 1,3,6,8
    assert codes(rows["video"][0]) == [0, 2, 5, 7] and codes(rows["video"][3]) == [1, 3, 6, 8]
    assert rows["view"].tolist() == list(range(6))
