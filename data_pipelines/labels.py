"""Fine-tuning list files and label maps.

Official formats (``dataset/datasets.py``, spec 8.1), read there with
``pd.read_csv(header=None, delimiter=' ')`` from ``<data_path>/{train,val}.csv``
(the ``.csv`` files are space separated; validation and test both read
``val.csv``):

* ``VideoClsDataset``: ``video_path label`` per line;
* ``RawFrameClsDataset`` (SSv2): ``frame_folder total_frames label`` per line;

``--data_root`` is prepended to every path.  A label-name file
(``misc/label_map_k710.txt``, spec 8.2) has one class name per line and the
class index is the 0-based line number.

Deviation on purpose (official issue #30): the official ``build.py`` asserts
the class count against a hard-coded dataset enum; here the count comes from
the data (:func:`num_classes`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

__all__ = [
    "ClsRecord",
    "read_video_list",
    "read_rawframe_list",
    "read_finetune_list",
    "finetune_list_path",
    "read_label_names",
    "num_classes",
]


@dataclasses.dataclass(frozen=True)
class ClsRecord:
    """One labelled fine-tuning sample.

    Attributes:
      path: video file, or raw-frame folder when ``total_frames >= 0``.
      label: class index (int, >= 0).
      total_frames: ``-1`` for a video file (its length comes from the
        container); the frame count of a raw-frame folder otherwise.
    """

    path: str
    label: int
    total_frames: int = -1

    @property
    def is_video(self) -> bool:
        return self.total_frames < 0


def _int_field(list_path: str, lineno: int, name: str, text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{list_path}:{lineno}: {name} must be an integer, got {text!r}") from None
    if value < minimum:
        raise ValueError(f"{list_path}:{lineno}: {name} must be >= {minimum}, got {value}")
    return value


def _read_rows(list_path: str, columns: int, layout: str) -> list[tuple[int, list[str]]]:
    """Non-blank lines split on whitespace, each with exactly ``columns`` columns."""
    if not os.path.isfile(list_path):
        raise FileNotFoundError(f"fine-tuning list {list_path!r} does not exist")
    rows = []
    with open(list_path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            cols = line.split()
            if not cols:
                continue
            if len(cols) != columns:
                raise ValueError(
                    f"{list_path}:{lineno}: expected {columns} space-separated columns "
                    f"'{layout}', got {len(cols)}: {line.strip()!r} (paths with spaces are "
                    "not supported, as officially)"
                )
            rows.append((lineno, cols))
    return rows


def read_video_list(list_path: str, data_root: str = "") -> list[ClsRecord]:
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
        ClsRecord(
            os.path.join(data_root, cols[0]),
            _int_field(list_path, lineno, "label", cols[1], 0),
        )
        for lineno, cols in _read_rows(list_path, 2, "video_path label")
    ]


def read_rawframe_list(list_path: str, data_root: str = "") -> list[ClsRecord]:
    """Parse a ``frame_folder total_frames label`` list (official ``RawFrameClsDataset``, SSv2).

    Raises:
      FileNotFoundError: the list does not exist.
      ValueError: a non-blank line without exactly 3 columns, a negative or
        non-integer ``total_frames``, or a bad label (message names ``file:line``).
    """
    return [
        ClsRecord(
            os.path.join(data_root, cols[0]),
            _int_field(list_path, lineno, "label", cols[2], 0),
            _int_field(list_path, lineno, "total_frames", cols[1], 0),
        )
        for lineno, cols in _read_rows(list_path, 3, "frame_folder total_frames label")
    ]


def read_finetune_list(list_path: str, data_root: str = "") -> list[ClsRecord]:
    """Read either list format, chosen by the column count of the first non-blank line.

    2 columns -> :func:`read_video_list`, 3 -> :func:`read_rawframe_list`.

    Raises:
      FileNotFoundError: the list does not exist.
      ValueError: the first line has another column count, or any later line
        does not match the first (message names ``file:line``).
    """
    if not os.path.isfile(list_path):
        raise FileNotFoundError(f"fine-tuning list {list_path!r} does not exist")
    with open(list_path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            cols = line.split()
            if cols:
                break
        else:
            return []
    if len(cols) == 2:
        return read_video_list(list_path, data_root)
    if len(cols) == 3:
        return read_rawframe_list(list_path, data_root)
    raise ValueError(
        f"{list_path}:{lineno}: expected 'video_path label' or 'frame_folder total_frames "
        f"label', got {len(cols)} column(s): {line.strip()!r}"
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
    ``"abseiling"``, ``"air drumming"``); blank lines at the end are ignored.

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


def num_classes(records: Sequence[ClsRecord], label_names: Sequence[str] | None = None) -> int:
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
