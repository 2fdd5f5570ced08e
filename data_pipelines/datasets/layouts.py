"""The layouts the video datasets ship in, each read into one :class:`Listing`.

A layout function takes the ``manual_dir`` (the download, unpacked as distributed)
and returns the class names (index = position) and, per split, labelled
``VideoRecord`` s with absolute paths.  Files named by a split list are listed
whether or not they exist: the build skips a missing or undecodable video and
records why.  A missing split or label file raises ``FileNotFoundError`` naming
the expected path; a split that lists no video raises :class:`LayoutError`.

Split names are ``train`` and ``val`` everywhere: official VideoMAE reads the
test list of UCF101 / HMDB51 and the validation set of Kinetics / SSv2 as its
``val.csv`` (spec 5.4, 8.1).
"""

from __future__ import annotations

import csv
import dataclasses
import glob
import json
import os

from data_pipelines import sources
from data_pipelines.records import VIDEO_EXTENSIONS, VideoRecord

__all__ = [
    "LayoutError",
    "Listing",
    "ucf101",
    "hmdb51",
    "ssv2",
    "kinetics",
    "video_folder",
    "KINETICS_SPLIT_DIRS",
]


class LayoutError(ValueError):
    """The download does not have the layout the dataset ships in (message names the path)."""


@dataclasses.dataclass
class Listing:
    """What a dataset's files say.

    Attributes:
      label_names: class names by index; None for unlabelled data (labels -1).
      splits: split name -> records (absolute paths, labels).
      summary: facts of the listing worth keeping (K710 de-duplication counts).
    """

    label_names: list[str] | None
    splits: dict[str, list[VideoRecord]]
    summary: dict = dataclasses.field(default_factory=dict)


def _need(path: str, what: str) -> str:
    if not os.path.exists(path):
        raise FileNotFoundError(2, f"{what} not found (expected {path})", path)
    return path


def _nonempty(listing: Listing, where: str) -> Listing:
    for split, records in listing.splits.items():
        if not records:
            raise LayoutError(f"split {split!r} lists no videos ({where})")
    if "train" not in listing.splits:
        raise LayoutError(f"no 'train' split in {where}")
    return listing


def _read_lines(path: str, what: str) -> list[list[str]]:
    with open(_need(path, what), encoding="utf-8") as f:
        return [cols for line in f if (cols := line.split())]


# ---------------------------------------------------------------- UCF101

UCF101_SPLITS = (1, 2, 3)


def ucf101(manual_dir: str, split_number: int = 1) -> Listing:
    """UCF-101 as distributed: ``UCF-101/<Class>/v_<Class>_gXX_cYY.avi`` and
    ``ucfTrainTestlist/{classInd.txt, trainlist0K.txt, testlist0K.txt}``.

    ``classInd.txt`` lines are ``<1-based index> <Class>``; train lines
    ``<Class>/<file> <1-based label>``; test lines ``<Class>/<file>`` (the label is
    the class of the folder, matched without case: the lists write
    ``HandStandPushups`` files in the ``HandstandPushups`` folder).
    """
    if split_number not in UCF101_SPLITS:
        raise LayoutError(f"UCF101 split {split_number}: choose one of {UCF101_SPLITS}")
    lists = os.path.join(manual_dir, "ucfTrainTestlist")
    videos = _need(os.path.join(manual_dir, "UCF-101"), "UCF-101 video folder")
    index = _read_lines(os.path.join(lists, "classInd.txt"), "UCF101 class list")
    names = [cols[1] for cols in sorted(index, key=lambda c: int(c[0]))]
    by_folder = {n.lower(): i for i, n in enumerate(names)}
    train = [
        VideoRecord(os.path.join(videos, cols[0]), int(cols[1]) - 1)
        for cols in _read_lines(
            os.path.join(lists, f"trainlist0{split_number}.txt"), "UCF101 train list"
        )
    ]
    val = []
    for cols in _read_lines(os.path.join(lists, f"testlist0{split_number}.txt"), "UCF101 test list"):
        folder = cols[0].split("/")[0].lower()
        if folder not in by_folder:
            raise LayoutError(f"UCF101 test list names class folder {folder!r}, not in classInd.txt")
        val.append(VideoRecord(os.path.join(videos, cols[0]), by_folder[folder]))
    return _nonempty(Listing(names, {"train": train, "val": val}), lists)


# ---------------------------------------------------------------- HMDB51

HMDB51_SPLITS = (1, 2, 3)


def hmdb51(manual_dir: str, split_number: int = 1) -> Listing:
    """HMDB51 as distributed: class folders ``<class>/<video>.avi`` (the unpacked
    ``hmdb51_org`` archives) and ``testTrainMulti_7030_splits/<class>_test_split<K>.txt``.

    Split-file lines are ``<video>.avi <id>``: 1 = train, 2 = test (our ``val``),
    0 = unused.  Classes are indexed in sorted order of their names (as mmaction2's
    HMDB51 lists).
    """
    if split_number not in HMDB51_SPLITS:
        raise LayoutError(f"HMDB51 split {split_number}: choose one of {HMDB51_SPLITS}")
    split_dir = _need(
        os.path.join(manual_dir, "testTrainMulti_7030_splits"), "HMDB51 split folder"
    )
    suffix = f"_test_split{split_number}.txt"
    files = sorted(glob.glob(os.path.join(split_dir, "*" + suffix)))
    if not files:
        raise FileNotFoundError(
            2, f"no HMDB51 split files (expected {os.path.join(split_dir, '<class>' + suffix)})",
            split_dir,
        )
    names = sorted(os.path.basename(f)[: -len(suffix)] for f in files)
    splits: dict[str, list[VideoRecord]] = {"train": [], "val": []}
    for label, name in enumerate(names):
        for cols in _read_lines(os.path.join(split_dir, name + suffix), "HMDB51 split file"):
            kind = {"1": "train", "2": "val"}.get(cols[1])
            if kind:
                splits[kind].append(VideoRecord(os.path.join(manual_dir, name, cols[0]), label))
    return _nonempty(Listing(names, splits), split_dir)


# ---------------------------------------------------------------- Something-Something V2


def ssv2(manual_dir: str) -> Listing:
    """Something-Something V2 as distributed: ``20bn-something-something-v2/<id>.webm``
    and ``labels/{labels.json, train.json, validation.json}``.

    ``labels.json`` maps a template without brackets to its index (a string);
    an entry of ``train.json`` / ``validation.json`` is ``{"id", "label",
    "template", "placeholders"}`` and its class is its template with ``[`` and ``]``
    removed.  ``test.json`` has no labels and is not read.
    """
    labels = os.path.join(manual_dir, "labels")
    videos = _need(os.path.join(manual_dir, "20bn-something-something-v2"), "SSv2 video folder")
    with open(_need(os.path.join(labels, "labels.json"), "SSv2 label file"), encoding="utf-8") as f:
        index = {name: int(i) for name, i in json.load(f).items()}
    names = [n for n, _ in sorted(index.items(), key=lambda kv: kv[1])]
    if [index[n] for n in names] != list(range(len(names))):
        raise LayoutError(f"{labels}/labels.json: indices are not 0..{len(names) - 1}")
    splits = {}
    for split, file in (("train", "train.json"), ("val", "validation.json")):
        with open(_need(os.path.join(labels, file), "SSv2 split file"), encoding="utf-8") as f:
            entries = json.load(f)
        recs = []
        for e in entries:
            template = e["template"].replace("[", "").replace("]", "")
            if template not in index:
                raise LayoutError(f"{labels}/{file}: template {template!r} not in labels.json")
            recs.append(VideoRecord(os.path.join(videos, f"{e['id']}.webm"), index[template]))
        splits[split] = recs
    return _nonempty(Listing(names, splits), labels)


# ---------------------------------------------------------------- Kinetics

# Split -> (video folder, annotation file stems tried in order). The CVDF release
# has train/ val/ and annotations/{train,val}.csv; DeepMind's CSVs are named
# train.csv / validate.csv.
KINETICS_SPLIT_DIRS = {"train": ("train", ("train",)), "val": ("val", ("val", "validate"))}


def _video_index(folder: str) -> dict[str, str]:
    """File stem -> path of every video under ``folder`` (flat or class sub-folders)."""
    out = {}
    for r in sources.list_video_folder(folder):
        out.setdefault(os.path.splitext(os.path.basename(r.path))[0], r.path)
    return out


def _class_folders(folder: str) -> list[str]:
    return sorted(d for d in os.listdir(folder) if os.path.isdir(os.path.join(folder, d)))


def kinetics(manual_dir: str) -> Listing:
    """Kinetics-400/600/700 as distributed: videos in ``train/`` and ``val/`` (flat or in
    class folders), named ``<youtube_id>_<start:06d>_<end:06d>.mp4``, with the CSV
    annotations ``annotations/{train,val|validate}.csv`` (``label,youtube_id,
    time_start,time_end,split[,is_cc]``); without the CSVs, the class folders of
    ``train/`` and ``val/`` are the labels.

    Classes are indexed in sorted order of the names in the training annotations
    (or training class folders), the usual Kinetics label map.  An annotated video
    that is not on disk is listed at its expected path (the build skips it and
    records it: every Kinetics download misses some).
    """
    ann_dir = os.path.join(manual_dir, "annotations")
    rows: dict[str, list[tuple[str, str]]] = {}
    if os.path.isdir(ann_dir):
        for split, (_, stems) in KINETICS_SPLIT_DIRS.items():
            paths = [os.path.join(ann_dir, s + ".csv") for s in stems]
            path = next((p for p in paths if os.path.isfile(p)), None)
            if path is None:
                _need(paths[0], f"Kinetics {split} annotations")
            with open(path, encoding="utf-8", newline="") as f:
                rows[split] = [
                    (
                        r["label"].strip(),
                        f"{r['youtube_id']}_{int(float(r['time_start'])):06d}_"
                        f"{int(float(r['time_end'])):06d}",
                    )
                    for r in csv.DictReader(f)
                ]
        names = sorted({label for label, _ in rows["train"]})
    else:
        names = _class_folders(_need(os.path.join(manual_dir, "train"), "Kinetics train folder"))
    index = {n: i for i, n in enumerate(names)}
    splits = {}
    for split, (folder_name, _) in KINETICS_SPLIT_DIRS.items():
        folder = _need(os.path.join(manual_dir, folder_name), f"Kinetics {split} folder")
        if rows:
            on_disk = _video_index(folder)
            recs = []
            for label, stem in rows[split]:
                if label not in index:
                    raise LayoutError(f"Kinetics {split}: class {label!r} is not a training class")
                path = on_disk.get(stem, os.path.join(folder, stem + ".mp4"))
                recs.append(VideoRecord(path, index[label]))
        else:
            recs = []
            for c in _class_folders(folder):
                if c not in index:
                    raise LayoutError(f"class folder {os.path.join(folder, c)} is not a training class")
                recs += [VideoRecord(r.path, index[c]) for r in sources.list_video_folder(os.path.join(folder, c))]
        splits[split] = recs
    return _nonempty(Listing(names, splits), manual_dir)


# ---------------------------------------------------------------- any dataset


def video_folder(manual_dir: str) -> Listing:
    """A custom dataset, no code needed.  ``manual_dir`` holds one of:

    * official list files ``train.csv`` [and ``val.csv``] (spec 8.1): ``video_path
      label`` lines (fine-tuning), or ``path start_idx total_frames`` lines
      (pre-training; unlabelled, and raw-frame folders when ``total_frames >= 0``),
      paths relative to ``manual_dir``;
    * ``train/<class>/<video>`` [and ``val/<class>/<video>``]: one folder per class;
    * ``<class>/<video>``: one folder per class, one split ``train``.

    ``labels.txt`` (one class name per line, index = line) names the classes when
    present; class folders are otherwise indexed in sorted order.
    """
    names_file = os.path.join(manual_dir, "labels.txt")
    names = sources.read_label_names(names_file) if os.path.isfile(names_file) else None
    _need(manual_dir, "dataset folder")
    if os.path.isfile(os.path.join(manual_dir, "train.csv")):
        splits = {}
        for split in ("train", "val"):
            path = os.path.join(manual_dir, f"{split}.csv")
            if os.path.isfile(path):
                with open(path, encoding="utf-8") as f:
                    first = next((line.split() for line in f if line.split()), [])
                read = sources.read_video_list if len(first) == 2 else sources.read_pretrain_list
                splits[split] = read(path, manual_dir)
        labelled = all(r.label >= 0 for recs in splits.values() for r in recs)
        if labelled and names is None:
            names = [str(i) for i in range(sources.num_classes(splits["train"] + splits.get("val", [])))]
        return _nonempty(Listing(names if labelled else None, splits), manual_dir)
    top = manual_dir
    split_dirs = {s: os.path.join(manual_dir, s) for s in ("train", "val")}
    if os.path.isdir(split_dirs["train"]):
        split_dirs = {s: d for s, d in split_dirs.items() if os.path.isdir(d)}
        top = split_dirs["train"]
    else:
        split_dirs = {"train": manual_dir}
    classes = _class_folders(top)
    if not classes:
        raise LayoutError(
            f"{top} has no class folders: give {manual_dir}/train.csv (official list) or one "
            "folder of videos per class"
        )
    names = names or classes
    index = {n: i for i, n in enumerate(names)}
    splits = {}
    for split, folder in split_dirs.items():
        recs = []
        for c in _class_folders(folder):
            if c not in index:
                raise LayoutError(f"class folder {os.path.join(folder, c)} is not in {names_file}")
            recs += [
                VideoRecord(r.path, index[c])
                for r in sources.list_video_folder(os.path.join(folder, c), VIDEO_EXTENSIONS)
            ]
        splits[split] = recs
    return _nonempty(Listing(names, splits), manual_dir)
