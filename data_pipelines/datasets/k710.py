"""Kinetics-710 from Kinetics-400/600/700 (spec 8.2).

Official construction (docs/DATASET.md, misc/*): K400 + K600 + K700 train and val
are merged and deduplicated by YouTube id; val videos that also appear in train
are removed; 15 renamed classes are merged by misc/k710_identical_label_merge.json
({old name: new name}); the result has 710 classes. misc/label_710to{400,600,700}.json
are plain lists whose element j is the K710 index of the dataset's class j.
:func:`build` does the merge on (path, label) lists; :func:`kinetics710` reads a
download of the three datasets (``layouts.kinetics`` layout each) into a Listing.

Class order: the official misc/label_map_k710.txt order is not derivable from the
lists; give it to reproduce it, else classes are sorted alphabetically.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from typing import Mapping, Sequence

from data_pipelines import sources as data_sources
from data_pipelines.datasets import layouts
from data_pipelines.records import VideoRecord

__all__ = ["youtube_id", "Source", "K710", "build", "KINETICS_FOLDERS", "kinetics710"]

_YT = re.compile(r'^(?P<id>.{11})_\d+_\d+$')


def youtube_id(path: str) -> str:
    """YouTube id of a Kinetics file name `<11-char id>_<start>_<end>.<ext>`.

    Other names: the stem without two trailing `_<int>` parts, else the whole stem.
    """
    stem = os.path.splitext(os.path.basename(path))[0]
    m = _YT.match(stem)
    if m:
        return m.group('id')
    parts = stem.rsplit('_', 2)
    if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
        return parts[0]
    return stem


@dataclasses.dataclass
class Source:
    """One input dataset: lists of (path, label) and its class names."""

    name: str
    names: list[str]
    train: list[tuple[str, int]]
    val: list[tuple[str, int]]


@dataclasses.dataclass
class K710:
    names: list[str]
    train: list[tuple[str, int]]
    val: list[tuple[str, int]]
    maps: dict[str, list[int]]
    summary: dict


def build(
    sources: Sequence[Source],
    merge: Mapping[str, str] | None = None,
    order: Sequence[str] | None = None,
) -> K710:
    """Merges the datasets (in the given order: the first occurrence of a YouTube id wins).

    Raises:
      ValueError: `order` misses or repeats classes, a merge maps to an unknown
        name chain loop, or a label is out of range.
    """
    merge = dict(merge or {})

    def canon(n: str) -> str:
        seen = set()
        while n in merge:
            if n in seen:
                raise ValueError(f'merge map loops at {n!r}')
            seen.add(n)
            n = merge[n]
        return n

    classes = sorted({canon(n) for s in sources for n in s.names})
    if order is not None:
        order = list(order)
        if len(set(order)) != len(order) or set(order) != set(classes):
            missing = sorted(set(classes) - set(order))
            extra = sorted(set(order) - set(classes))
            raise ValueError(
                f'--order does not match the merged classes: missing {missing[:5]}, '
                f'unknown {extra[:5]}'
            )
        classes = order
    index = {n: i for i, n in enumerate(classes)}
    summary = {'classes': len(classes), 'renamed': {}}

    def collect(split: str):
        out, seen, dup, conflict = [], {}, 0, 0
        for s in sources:
            for path, label in getattr(s, split):
                if not 0 <= label < len(s.names):
                    raise ValueError(f'{s.name} {split}: label {label} of {path} out of range')
                y = index[canon(s.names[label])]
                vid = youtube_id(path)
                if vid in seen:
                    dup += 1
                    conflict += seen[vid] != y
                    continue
                seen[vid] = y
                out.append((path, y))
        return out, seen, dup, conflict

    train, train_ids, tdup, tconf = collect('train')
    val, _, vdup, vconf = collect('val')
    kept = [(p, y) for p, y in val if youtube_id(p) not in train_ids]
    summary.update(
        train=len(train),
        val=len(kept),
        train_duplicates=tdup,
        val_duplicates=vdup,
        label_conflicts=tconf + vconf,
        val_in_train_removed=len(val) - len(kept),
    )
    for s in sources:
        for n in s.names:
            if canon(n) != n:
                summary['renamed'][n] = canon(n)
    maps = {s.name: [index[canon(n)] for n in s.names] for s in sources}
    return K710(classes, train, kept, maps, summary)


# The three source datasets inside a K710 manual_dir, in merge order (the first
# occurrence of a YouTube id wins).
KINETICS_FOLDERS = ("kinetics400", "kinetics600", "kinetics700")
MERGE_FILE = "k710_identical_label_merge.json"
LABEL_MAP_FILE = "label_map_k710.txt"


def kinetics710(manual_dir: str) -> layouts.Listing:
    """K710 from ``manual_dir/{kinetics400,kinetics600,kinetics700}/`` (each in the
    ``layouts.kinetics`` layout), the official ``k710_identical_label_merge.json`` and
    ``label_map_k710.txt`` (the class order) beside them.

    Returns:
      the merged listing; ``summary`` has the de-duplication counts and the
      ``label_710to{400,600,700}`` index maps.
    """
    for f in (MERGE_FILE, LABEL_MAP_FILE):
        path = os.path.join(manual_dir, f)
        if not os.path.isfile(path):
            raise FileNotFoundError(2, f"K710 {f} not found (expected {path})", path)
    with open(os.path.join(manual_dir, MERGE_FILE), encoding="utf-8") as f:
        merge = json.load(f)
    order = data_sources.read_label_names(os.path.join(manual_dir, LABEL_MAP_FILE))
    found = []
    for name in KINETICS_FOLDERS:
        folder = os.path.join(manual_dir, name)
        if os.path.isdir(folder):
            listing = layouts.kinetics(folder)
            pairs = {s: [(r.path, r.label) for r in recs] for s, recs in listing.splits.items()}
            found.append(Source(name, listing.label_names, pairs["train"], pairs["val"]))
    if not found:
        raise FileNotFoundError(
            2, f"no Kinetics folder (expected {os.path.join(manual_dir, KINETICS_FOLDERS[0])})",
            manual_dir,
        )
    try:
        result = build(found, merge, order)
    except ValueError as e:
        raise layouts.LayoutError(f"{manual_dir}: {e}") from None
    splits = {s: [VideoRecord(p, y) for p, y in getattr(result, s)] for s in ("train", "val")}
    summary = dict(result.summary, maps={f"label_710to{n[8:]}": m for n, m in result.maps.items()})
    return layouts.Listing(result.names, splits, summary)
