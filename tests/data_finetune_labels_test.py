"""Fine-tuning list files and label maps (data_pipelines.labels)."""

import pytest

from data_pipelines.labels import (
    ClsRecord,
    finetune_list_path,
    num_classes,
    read_finetune_list,
    read_label_names,
    read_rawframe_list,
    read_video_list,
)


def write(path, text):
    path.write_text(text)
    return str(path)


def test_video_list_prepends_root_and_skips_blank_lines(tmp_path):
    lst = write(tmp_path / "train.csv", "a/x.mp4 3\n\nb/y.mp4 0\n")
    recs = read_video_list(lst, data_root="/data")
    assert recs == [ClsRecord("/data/a/x.mp4", 3), ClsRecord("/data/b/y.mp4", 0)]
    assert all(r.is_video for r in recs)
    assert read_video_list(lst)[0].path == "a/x.mp4"


def test_rawframe_list(tmp_path):
    lst = write(tmp_path / "train.csv", "f/1 47 173\nf/2 30 0\n")
    recs = read_rawframe_list(lst, data_root="/r")
    assert recs == [ClsRecord("/r/f/1", 173, 47), ClsRecord("/r/f/2", 0, 30)]
    assert not recs[0].is_video


def test_auto_format(tmp_path):
    assert read_finetune_list(write(tmp_path / "a.csv", "\nx.mp4 1\n"))[0] == ClsRecord("x.mp4", 1)
    assert read_finetune_list(write(tmp_path / "b.csv", "d 5 2\n"))[0] == ClsRecord("d", 2, 5)
    assert read_finetune_list(write(tmp_path / "c.csv", "\n\n")) == []
    with pytest.raises(ValueError, match=r"d.csv:1: .*4 column"):
        read_finetune_list(write(tmp_path / "d.csv", "a b c d\n"))


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
    with pytest.raises(ValueError, match=r"bad.csv:2: expected 3"):
        read_rawframe_list(write(tmp_path / "bad.csv", "f 3 1\nf 1\n"))


def test_missing_list(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_video_list(str(tmp_path / "nope.csv"))


def test_label_names_and_num_classes(tmp_path):
    names = read_label_names(write(tmp_path / "labels.txt", "abseiling\nair drumming \nzumba\n\n"))
    assert names == ["abseiling", "air drumming", "zumba"]
    recs = [ClsRecord("a", 0), ClsRecord("b", 2)]
    assert num_classes(recs) == 3
    assert num_classes(recs, names) == 3
    assert num_classes([ClsRecord("a", 0)], names) == 3  # the names decide, not the data
    with pytest.raises(ValueError, match="out of range for 3"):
        num_classes([ClsRecord("a", 3)], names)
    with pytest.raises(ValueError, match="no records"):
        num_classes([])


def test_label_names_errors(tmp_path):
    with pytest.raises(ValueError, match=r"l.txt:2: blank line"):
        read_label_names(write(tmp_path / "l.txt", "a\n\nb\n"))
    with pytest.raises(ValueError, match=r"l.txt:3: class 'a' repeats line 1"):
        read_label_names(write(tmp_path / "l.txt", "a\nb\na\n"))
    with pytest.raises(ValueError, match="no class names"):
        read_label_names(write(tmp_path / "l.txt", "\n"))


def test_split_paths():
    assert finetune_list_path("/d", "train") == "/d/train.csv"
    assert finetune_list_path("/d", "val") == "/d/val.csv"
    assert finetune_list_path("/d", "test") == "/d/val.csv"  # official: test reads val.csv
    with pytest.raises(ValueError):
        finetune_list_path("/d", "dev")
