"""Official list parsing (spec 8.1) and folder listing."""

import os

import pytest

from data_pipelines.sources import VideoRecord, list_video_folder, read_pretrain_list


def test_read_list_joins_root_and_ignores_extra_columns(tmp_path):
    lst = tmp_path / "train.csv"
    lst.write_text("k400/a.mp4 0 -1\n\nwebvid/b.mp4 0 -1 0\nc.mkv 5 -1 extra columns here\n")
    recs = read_pretrain_list(str(lst), data_root="/data")
    assert recs == [
        VideoRecord("/data/k400/a.mp4", 0, -1),
        VideoRecord("/data/webvid/b.mp4", 0, -1),
        VideoRecord("/data/c.mkv", 5, -1),
    ]
    assert all(r.is_video for r in recs)
    assert read_pretrain_list(str(lst))[0].path == "k400/a.mp4"


def test_malformed_line_names_file_and_line(tmp_path):
    lst = tmp_path / "bad.csv"
    lst.write_text("a.mp4 0 -1\nb.mp4 0\n")
    with pytest.raises(ValueError, match=r"bad\.csv:2"):
        read_pretrain_list(str(lst))
    lst.write_text("a.mp4 0 -1\na.mp4 0 -1\nb.mp4 zero -1\n")
    with pytest.raises(ValueError, match=r"bad\.csv:3.*integers"):
        read_pretrain_list(str(lst))


def test_rawframes_rejected_and_missing_list(tmp_path):
    lst = tmp_path / "raw.csv"
    lst.write_text("SomethingV2/123 1 48\n")
    with pytest.raises(NotImplementedError, match="raw-frame"):
        read_pretrain_list(str(lst))
    with pytest.raises(FileNotFoundError):
        read_pretrain_list(str(tmp_path / "none.csv"))


def test_list_video_folder_sorted_recursive(tmp_path):
    for rel in ["b/2.mp4", "a/1.AVI", "a/z/3.webm", "c.mov", "d.mkv", "notes.txt", "e.mp4.part"]:
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"")
    recs = list_video_folder(str(tmp_path))
    rels = [os.path.relpath(r.path, tmp_path) for r in recs]
    assert rels == ["a/1.AVI", "a/z/3.webm", "b/2.mp4", "c.mov", "d.mkv"]
    assert all(r.total_frames == -1 for r in recs)
    with pytest.raises(FileNotFoundError):
        list_video_folder(str(tmp_path / "missing"))
