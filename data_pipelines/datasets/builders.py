"""TFDS builders of the video datasets (``tfds.core.GeneratorBasedBuilder``, ArrayRecord).

One builder per dataset layout (``layouts``): ``ucf101`` and ``hmdb51`` (configs
``split1``..``split3``), ``ssv2``, ``kinetics400``, ``kinetics600``,
``kinetics700``, ``kinetics710`` and ``video_folder`` (any dataset; name it with a
config, ``video_folder/<name>``).  They all write the stored format of
``stored`` (one example per JPEG frame, the per-video index and the skipped
videos in ``metadata.json``).  The data is the user's download: ``manual_dir``.

Build (``vmae2.tools.build_dataset`` is the command line)::

    builder = builders.make("ucf101", data_dir=D, config="split1", workers=8)
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=M))

* Parallel: videos are encoded in ``workers`` processes (ordered ``imap``); the
  TFDS writer runs in this process.
* Resumable: each encoded video is kept in ``<dataset dir>/<version>.build_cache/``
  until the build completes, so a build stopped part-way re-encodes only the
  videos it had not finished (TFDS itself restarts a split from the start).
* Distributed: with ``beam=True`` the same encoding runs as an Apache Beam
  pipeline (TFDS's Beam path, ``DownloadConfig(beam_runner=..., beam_options=...)``),
  for datasets beyond one machine (Kinetics-710: ~725k videos); the per-video index
  comes back through files beside the dataset.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import multiprocessing
import os
import shutil
from collections.abc import Iterator, Sequence

import numpy as np
import tensorflow_datasets as tfds
from tqdm import tqdm

from data_pipelines.datasets import k710, layouts, stored
from data_pipelines.decode import VideoDecodeError
from data_pipelines.records import VideoRecord

__all__ = ["BUILDERS", "VideoConfig", "make", "summary_lines"]

logger = logging.getLogger("data_pipelines")
VERSION = tfds.core.Version("1.0.0")
CACHE_SUFFIX = ".build_cache"
BEAM_INDEX_SUFFIX = ".beam_index"


@dataclasses.dataclass(eq=False)
class VideoConfig(tfds.core.BuilderConfig):
    """A build's data choices (they change the stored bytes, so they are the config).

    Attributes:
      split_number: official split 1-3 of UCF101 / HMDB51 (ignored elsewhere).
      short_side: stored short side (never upscaled); 320 as official Kinetics.
      quality: JPEG quality.
    """

    split_number: int = 1
    short_side: int = stored.SHORT_SIDE
    quality: int = stored.JPEG_QUALITY


_FEATURES = {"jpeg": np.object_, "video": np.int64, "frame": np.int32}


# ---------------------------------------------------------------- per-video work (picklable)


def _encode_job(job) -> dict:
    """Encodes one video (or takes it from the build cache): the index entry + JPEGs."""
    video, record, rel, short_side, quality, cache = job
    if cache and os.path.isfile(cache):
        return _read_cached(cache)
    entry = {"video": video, "path": rel, "label": record.label}
    try:
        enc = stored.encode_video(record, short_side, quality)
    except (VideoDecodeError, OSError, ValueError) as e:
        reason = e.reason if isinstance(e, VideoDecodeError) else f"{type(e).__name__}: {e}"
        return dict(entry, error=reason)
    if len(enc.jpegs) > stored.FRAME_SLOTS:
        return dict(entry, error=f"{len(enc.jpegs)} frames: more than {stored.FRAME_SLOTS}")
    out = dict(entry, num_frames=len(enc.jpegs), fps=enc.fps, height=enc.height,
               width=enc.width, jpegs=enc.jpegs, error=None)
    if cache:
        _write_cached(cache, out)
    return out


# A cached video: one JSON line (the entry and each JPEG's length), then the JPEG bytes.
# Plain data, so reading a cache file can never run code (a pickle could).


def _write_cached(path: str, out: dict) -> None:
    header = {k: v for k, v in out.items() if k != "jpegs"}
    header["jpeg_sizes"] = [len(j) for j in out["jpegs"]]
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(json.dumps(header).encode() + b"\n")
        f.writelines(out["jpegs"])
    os.replace(tmp, path)


def _read_cached(path: str) -> dict:
    with open(path, "rb") as f:
        out = json.loads(f.readline())
        out["jpegs"] = [f.read(n) for n in out.pop("jpeg_sizes")]
    return out


def _frame_examples(outcome: dict, stride: int) -> Iterator[tuple[int, dict]]:
    """``(key, example)`` of every frame; keys keep (video, frame) order over the whole
    128-bit key range, so TFDS's writer buckets the split evenly (it sorts buckets in memory)."""
    if outcome["error"]:
        return
    v = outcome["video"]
    for f, jpeg in enumerate(outcome["jpegs"]):
        yield (v * stored.FRAME_SLOTS + f) * stride, {"jpeg": jpeg, "video": v, "frame": f}


def _index_line(outcome: dict) -> str:
    return json.dumps({k: v for k, v in outcome.items() if k != "jpegs"})


def _split_metadata(split: str, entries: Sequence[dict], listed: int) -> tuple[dict, list]:
    """(index of the written videos in video order, [[path, reason]] of the skipped ones).

    Raises:
      layouts.LayoutError: no video of the split could be read.
    """
    entries = sorted(entries, key=lambda e: e["video"])
    ok = [e for e in entries if not e["error"]]
    skipped = [[e["path"], e["error"]] for e in entries if e["error"]]
    if not ok:
        first = f" (first: {skipped[0][0]}: {skipped[0][1]})" if skipped else ""
        raise layouts.LayoutError(f"split {split!r}: none of its {listed} videos could be read{first}")
    index = {k: [e[k] for e in ok] for k in ("path", "label", "num_frames", "fps", "height", "width")}
    return index, skipped


# ---------------------------------------------------------------- the builders


class _VideoBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """What every video builder shares; a subclass says how to list its download."""

    VERSION = VERSION
    RELEASE_NOTES = {"1.0.0": "JPEG frames at short side 320, one example per frame."}
    BUILDER_CONFIGS = [VideoConfig(name="default")]
    MANUAL_DOWNLOAD_INSTRUCTIONS = "Download the dataset and unpack it as distributed."
    DESCRIPTION = ""

    def __init__(self, *, workers: int = 1, beam: bool = False, **kwargs):
        kwargs.setdefault("file_format", "array_record")
        super().__init__(**kwargs)
        self._workers, self._beam = workers, beam
        # Beside the final dataset folder (TFDS builds in a temporary one it deletes on failure).
        self._final_path = os.fspath(self.data_path)

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            description=self.DESCRIPTION
            + "\n\nStored as JPEG frames (vmae2 data_pipelines.datasets.stored): one example "
            "per frame; the per-video index and the skipped videos are in the metadata.",
            features=tfds.features.FeaturesDict(
                {k: tfds.features.Tensor(shape=(), dtype=d) for k, d in _FEATURES.items()}
            ),
            metadata=tfds.core.MetadataDict(),
            disable_shuffling=True,  # frame order = (video, frame): positions are the index
        )

    # (manual_dir, config) -> layouts.Listing: how the subclass's download is laid out.
    LAYOUT = None

    def _listing(self, manual_dir: str) -> layouts.Listing:
        return type(self).LAYOUT(manual_dir, self.builder_config)

    def _split_generators(self, dl_manager):
        manual_dir = os.fspath(dl_manager.manual_dir)
        listing = self._listing(manual_dir)
        c = self.builder_config
        self._manual_dir = manual_dir
        meta = self.info.metadata
        meta.update(
            label_names=listing.label_names,
            listing=listing.summary,
            stored={"short_side": c.short_side, "jpeg_quality": c.quality},
            splits={},
            skipped={},
        )
        return {
            split: self._generate_examples(split, records)
            for split, records in listing.splits.items()
        }

    def _jobs(self, split: str, records: Sequence[VideoRecord], cache_dir: str | None):
        c = self.builder_config
        return [
            (i, r, os.path.relpath(r.path, self._manual_dir), c.short_side, c.quality,
             os.path.join(cache_dir, f"{i:09d}.video") if cache_dir else None)
            for i, r in enumerate(records)
        ]

    def _generate_examples(self, split: str, records: Sequence[VideoRecord]):
        stride = 2**128 // (len(records) * stored.FRAME_SLOTS)
        if self._beam:
            return self._beam_examples(split, records, stride)
        return self._local_examples(split, records, stride)

    def _cache_dir(self) -> str:
        return self._final_path + CACHE_SUFFIX

    def _local_examples(self, split, records, stride) -> Iterator[tuple[int, dict]]:
        cache = os.path.join(self._cache_dir(), split)
        os.makedirs(cache, exist_ok=True)
        jobs = self._jobs(split, records, cache)
        entries = []
        bar = tqdm(total=len(jobs), desc=f"{self.name} {split}", unit=" videos")
        with multiprocessing.get_context("spawn").Pool(max(1, self._workers)) as pool:
            outcomes = pool.imap(_encode_job, jobs) if self._workers > 1 else map(_encode_job, jobs)
            for outcome in outcomes:
                bar.update(1)
                if outcome["error"]:
                    logger.warning("skipping %s: %s", outcome["path"], outcome["error"])
                entries.append({k: v for k, v in outcome.items() if k != "jpegs"})
                yield from _frame_examples(outcome, stride)
        bar.close()
        self._set_split(split, entries, len(records))

    def _set_split(self, split: str, entries: Sequence[dict], listed: int) -> None:
        index, skipped = _split_metadata(split, entries, listed)
        self.info.metadata["splits"][split] = index
        self.info.metadata["skipped"][split] = skipped

    # Apache Beam (distributed) build ------------------------------------------------

    def _beam_index_prefix(self, split: str) -> str:
        return os.path.join(self._final_path + BEAM_INDEX_SUFFIX, split, "index")

    def _beam_examples(self, split, records, stride):
        beam = tfds.core.lazy_imports.apache_beam
        jobs = self._jobs(split, records, None)
        self._beam_listed = getattr(self, "_beam_listed", {})
        self._beam_listed[split] = len(records)

        @beam.ptransform_fn
        def generate(root):
            outcomes = root | "list" >> beam.Create(jobs) | "encode" >> beam.Map(_encode_job)
            _ = (
                outcomes
                | "index_lines" >> beam.Map(_index_line)
                | "write_index" >> beam.io.WriteToText(self._beam_index_prefix(split))
            )
            return outcomes | "frames" >> beam.FlatMap(_frame_examples, stride=stride)

        return generate()  # pylint: disable=no-value-for-parameter

    def _process_pipeline_result(self, pipeline_result):
        """After the Beam run: the index files written by the workers -> metadata."""
        del pipeline_result
        from etils import epath

        for split, listed in getattr(self, "_beam_listed", {}).items():
            prefix = epath.Path(self._beam_index_prefix(split))
            entries = [
                json.loads(line)
                for f in sorted(prefix.parent.glob(prefix.name + "*"))
                for line in f.read_text().splitlines()
                if line.strip()
            ]
            self._set_split(split, entries, listed)

    def remove_build_files(self) -> None:
        """Deletes the resume cache and Beam index files of a completed build."""
        for suffix in (CACHE_SUFFIX, BEAM_INDEX_SUFFIX):
            shutil.rmtree(self._final_path + suffix, ignore_errors=True)


def _split_configs(n: int = 3) -> list[VideoConfig]:
    return [VideoConfig(name=f"split{k}", split_number=k, description=f"official split {k}")
            for k in range(1, n + 1)]


class Ucf101(_VideoBuilder):
    """UCF101 (101 classes), official train/test splits 1-3 (test = our ``val``)."""

    BUILDER_CONFIGS = _split_configs()
    DESCRIPTION = "UCF101 action recognition, 13,320 clips, 101 classes."
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Unpack UCF101.rar and UCF101TrainTestSplits-RecognitionTask.zip into manual_dir: "
        "manual_dir/UCF-101/<Class>/*.avi and manual_dir/ucfTrainTestlist/*.txt."
    )

    LAYOUT = staticmethod(lambda m, c: layouts.ucf101(m, c.split_number))


class Hmdb51(_VideoBuilder):
    """HMDB51 (51 classes), official 70/30 splits 1-3 (test = our ``val``)."""

    BUILDER_CONFIGS = _split_configs()
    DESCRIPTION = "HMDB51 action recognition, 6,766 clips, 51 classes."
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Unpack hmdb51_org.rar (and each class .rar in it) and test_train_splits.rar into "
        "manual_dir: manual_dir/<class>/*.avi and manual_dir/testTrainMulti_7030_splits/*.txt."
    )

    LAYOUT = staticmethod(lambda m, c: layouts.hmdb51(m, c.split_number))


class Ssv2(_VideoBuilder):
    """Something-Something V2 (174 classes): train and validation (our ``val``)."""

    DESCRIPTION = "Something-Something V2, 220,847 clips, 174 classes."
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Unpack the 20bn-something-something-v2 archives and the labels into manual_dir: "
        "manual_dir/20bn-something-something-v2/<id>.webm and manual_dir/labels/*.json."
    )

    LAYOUT = staticmethod(lambda m, c: layouts.ssv2(m))


_KINETICS_MANUAL = (
    "manual_dir/train/ and manual_dir/val/ with the videos <youtube_id>_<start:06d>_<end:06d>"
    ".mp4 (flat or in class folders) and manual_dir/annotations/{train,val}.csv (the CVDF "
    "release layout); without annotations the class folders are the labels."
)


class Kinetics400(_VideoBuilder):
    DESCRIPTION = "Kinetics-400, 400 classes."
    MANUAL_DOWNLOAD_INSTRUCTIONS = _KINETICS_MANUAL

    LAYOUT = staticmethod(lambda m, c: layouts.kinetics(m))


class Kinetics600(Kinetics400):
    DESCRIPTION = "Kinetics-600, 600 classes."


class Kinetics700(Kinetics400):
    DESCRIPTION = "Kinetics-700, 700 classes."


class Kinetics710(_VideoBuilder):
    """Kinetics-710 (VideoMAE V2): K400 + K600 + K700 merged, de-duplicated (spec 8.2)."""

    DESCRIPTION = "Kinetics-710: Kinetics-400/600/700 merged by YouTube id, 710 classes."
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "manual_dir/{kinetics400,kinetics600,kinetics700}/ each as for kinetics400, and the "
        "official misc/k710_identical_label_merge.json and misc/label_map_k710.txt in manual_dir."
    )

    LAYOUT = staticmethod(lambda m, c: k710.kinetics710(m))


class VideoFolder(_VideoBuilder):
    """Any video dataset: class folders or official lists (``layouts.video_folder``)."""

    DESCRIPTION = "A video dataset of class folders or official VideoMAE lists."
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "manual_dir/train.csv [val.csv] (official lists, paths relative to manual_dir), or "
        "manual_dir/train/<class>/* [val/<class>/*], or manual_dir/<class>/*; optional labels.txt."
    )

    LAYOUT = staticmethod(lambda m, c: layouts.video_folder(m))


BUILDERS = {
    cls.name: cls
    for cls in (Ucf101, Hmdb51, Ssv2, Kinetics400, Kinetics600, Kinetics700, Kinetics710, VideoFolder)
}


def make(
    name: str,
    *,
    data_dir: str,
    config: str | None = None,
    workers: int = 1,
    beam: bool = False,
    short_side: int = stored.SHORT_SIDE,
    quality: int = stored.JPEG_QUALITY,
) -> _VideoBuilder:
    """The builder ``name`` (a key of ``BUILDERS``) writing under ``data_dir``.

    ``config``: a config of the builder (``split2``), or for ``video_folder`` any
    dataset name; None = the first.  ``short_side`` / ``quality`` other than the
    defaults make a custom config named after them.

    Raises:
      ValueError: unknown name or config.
    """
    if name not in BUILDERS:
        raise ValueError(f"unknown dataset {name!r}: choose one of {sorted(BUILDERS)}")
    cls = BUILDERS[name]
    known = {c.name: c for c in cls.BUILDER_CONFIGS}
    if config is None:
        config = next(iter(known))
    if config not in known and cls is not VideoFolder:
        raise ValueError(f"{name}: unknown config {config!r}: choose one of {sorted(known)}")
    chosen = known.get(config, VideoConfig(name=config))
    if (short_side, quality) != (chosen.short_side, chosen.quality):
        chosen = dataclasses.replace(
            chosen, name=f"{config}_s{short_side}_q{quality}", short_side=short_side, quality=quality
        )
    return cls(data_dir=data_dir, config=chosen, workers=workers, beam=beam)


def summary_lines(builder: _VideoBuilder) -> list[str]:
    """What a build wrote: per split the videos written / skipped, frames, and the reasons."""
    meta = builder.info.metadata
    lines = [f"{builder.name}/{builder.builder_config.name} {builder.version} -> {builder.data_dir}"]
    for split, index in meta["splits"].items():
        skipped = meta["skipped"].get(split, [])
        lines.append(
            f"  {split}: {len(index['path'])} videos, {sum(index['num_frames'])} frames, "
            f"{len(skipped)} skipped"
        )
        reasons: dict[str, int] = {}
        for _, reason in skipped:
            reasons[reason] = reasons.get(reason, 0) + 1
        lines += [f"    {n} x {r}" for r, n in sorted(reasons.items(), key=lambda kv: -kv[1])]
    return lines
