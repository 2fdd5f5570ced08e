"""Build Kinetics-710 from the Kinetics-400/600/700 lists (spec 8.2).

Official construction (docs/DATASET.md, misc/*): K400 + K600 + K700 train and val
are merged and deduplicated by YouTube id; val videos that also appear in train
are removed; 15 renamed classes are merged by misc/k710_identical_label_merge.json
({old name: new name}); the result has 710 classes. misc/label_710to{400,600,700}.json
are plain lists whose element j is the K710 index of the dataset's class j.

Input per dataset: a folder with `train.csv` and `val.csv` (`video_path label`, spec
8.1) and `labels.txt` (class names, index = 0-based line). Output folder:

    label_map_k710.txt                 710 names, index = line
    train.csv, val.csv                 `video_path k710_label`
    label_710to400.json, ...           one list per input dataset
    summary.json                       counts (duplicates, val-in-train removed, ...)

Class order: the official label_map_k710.txt order is not derivable from the
lists; pass it with --order (a names file) to reproduce it, else classes are
sorted alphabetically.

python -m vmae2.tools.k710 --k400 DIR --k600 DIR --k700 DIR \
    --merge k710_identical_label_merge.json --output OUT [--order label_map_k710.txt]
    [--root k400=PREFIX ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
from typing import Mapping, Sequence

from data_pipelines import sources as data_sources

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


def read_source(name: str, folder: str, root: str = '') -> Source:
    """`folder/{train,val}.csv` (`video_path label`) and `folder/labels.txt`."""
    names = data_sources.read_label_names(os.path.join(folder, 'labels.txt'))

    def read(split):
        recs = data_sources.read_video_list(os.path.join(folder, f'{split}.csv'), root)
        return [(r.path, r.label) for r in recs]

    return Source(name, names, read('train'), read('val'))


def write(result: K710, out_dir: str) -> None:
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, 'label_map_k710.txt'), 'w') as f:
        f.write('\n'.join(result.names) + '\n')
    for split in ('train', 'val'):
        with open(os.path.join(out_dir, f'{split}.csv'), 'w') as f:
            f.writelines(f'{p} {y}\n' for p, y in getattr(result, split))
    for name, m in result.maps.items():
        n = re.sub(r'\D', '', name) or name
        with open(os.path.join(out_dir, f'label_710to{n}.json'), 'w') as f:
            json.dump(m, f)
    with open(os.path.join(out_dir, 'summary.json'), 'w') as f:
        json.dump(result.summary, f, indent=2)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    for n in ('k400', 'k600', 'k700'):
        ap.add_argument(f'--{n}', help=f'{n} folder: train.csv, val.csv, labels.txt')
    ap.add_argument('--merge', help='JSON {old name: new name} (k710_identical_label_merge.json)')
    ap.add_argument('--order', help='class-name file fixing the K710 order')
    ap.add_argument('--root', action='append', default=[], help='NAME=PREFIX joined to paths')
    ap.add_argument('--output', required=True)
    args = ap.parse_args(argv)
    roots = dict(r.split('=', 1) for r in args.root)
    sources = [
        read_source(n, getattr(args, n), roots.get(n, ''))
        for n in ('k400', 'k600', 'k700')
        if getattr(args, n)
    ]
    if not sources:
        ap.error('give at least one of --k400 --k600 --k700')
    merge = json.load(open(args.merge)) if args.merge else {}
    order = data_sources.read_label_names(args.order) if args.order else None
    result = build(sources, merge, order)
    write(result, args.output)
    print(json.dumps(result.summary, indent=2))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
