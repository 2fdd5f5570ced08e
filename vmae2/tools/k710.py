"""Kinetics-710 lists from the Kinetics-400/600/700 lists (spec 8.2; the merge itself
is data_pipelines/datasets/k710.py, which the kinetics710 TFDS builder also uses).

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
import json
import os
import re
from typing import Sequence

from data_pipelines import sources as data_sources
from data_pipelines.datasets.k710 import K710, Source, build


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
