"""Set-up shared by the data_pipelines tests (imported by tests/data_*_test.py, and by
tests/main_test.py for the shared-memory check)."""

import os
import types

import numpy as np
import pytest

from data_pipelines.pipeline import make_eval_dataset, make_train_dataset
from data_pipelines.records import VideoRecord
from data_pipelines.sources import list_video_folder, read_finetune_list
from data_pipelines.transforms import ClassifyTransform, EvalTransform, PretrainTransform
from data_pipelines.testing import identify_frames, write_test_video


def shared_memory_segments() -> set[str]:
    """Names of the POSIX shared-memory segments Python made (``psm_*`` in /dev/shm)."""
    return {n for n in os.listdir("/dev/shm") if n.startswith("psm_")}


NO_DEV_SHM = pytest.mark.skipif(
    not os.path.isdir("/dev/shm"), reason="needs Linux /dev/shm to count segments"
)


def noise_clip(t=3, h=24, w=32, seed=0):
    """uint8 [t, h, w, 3] noise whose frames 0 and 2 are identical and frame 1 differs."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    return np.stack([a, b, a] + [b] * (t - 3))


def coded_videos(folder, count, frames, sizes, name="v{}.mp4"):
    """Videos ``folder/name.format(v)``, v < count: ``frames`` frames showing colour codes
    ``frames * v ..`` (so a clip names its video), size ``sizes[v % len(sizes)]`` (w, h).

    Returns:
      records labelled ``v``.
    """
    recs = []
    for v in range(count):
        path = os.path.join(str(folder), name.format(v))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_test_video(path, frames, *sizes[v % len(sizes)], first_code=frames * v)
        recs.append(VideoRecord(path, v))
    return recs


def codes(clip):
    """Colour codes of the frames of ``clip`` (uint8 [T, H, W, 3]) as a list."""
    return identify_frames(clip).tolist()


def take(ds, n):
    it = iter(ds)
    return [next(it) for _ in range(n)]


def assert_batches_equal(got, want):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.keys() == w.keys()
        for k in w:
            np.testing.assert_array_equal(g[k], w[k], err_msg=k)


def stored_dataset(base, frames=20):
    """Raw videos ROOT/cls{v}/v{v}.avi (v < 2, label v, codes frames*v ..), their lists
    ROOT/{train,val}.csv, and the TFDS dataset ``video_folder/readers`` built from them
    in DATA (``stored(split)`` opens a split)."""
    import tensorflow_datasets as tfds

    from data_pipelines.datasets import builders
    from data_pipelines.datasets.stored import StoredSplit

    root, data_dir = os.path.join(base, "raw"), os.path.join(base, "data")
    recs = coded_videos(root, 2, frames, [(64, 48)], name="cls{0}/v{0}.avi")
    for name in ("train.csv", "val.csv"):
        with open(os.path.join(root, name), "w") as f:
            f.writelines(f"{os.path.relpath(r.path, root)} {r.label}\n" for r in recs)
    builder = builders.make("video_folder", data_dir=data_dir, config="readers")
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=root))
    return types.SimpleNamespace(
        root=root, data_dir=data_dir,
        stored=lambda split="train": StoredSplit("video_folder/readers", data_dir, split),
    )


def raw_list(data):
    """The train list of :func:`stored_dataset` on the raw videos."""
    return read_finetune_list(os.path.join(data.root, "train.csv"), data.root)


# ---------------------------------------------------------------- training stages

PRE_FRAMES = 8  # pre-training videos: video v shows colour codes 8v .. 8v+7
FT_FRAMES = 10  # fine-tuning videos: video v shows codes 10v .. 10v+9 and has label v
PRE_SMALL = dict(num_frames=4, sampling_rate=1, input_size=32)
SMALL = dict(num_frames=4, sampling_rate=2, input_size=32)
PLAIN = dict(rand_augment=False, reprob=0.0)


def pretrain_videos(folder):
    """8 unlabelled videos of 8 frames, landscape sizes, as a folder listing."""
    coded_videos(folder, 8, PRE_FRAMES, [(80, 64), (64, 48)])
    return list_video_folder(str(folder))


def labelled_videos(folder):
    """5 videos of 10 frames, label v, portrait and landscape."""
    return coded_videos(folder, 5, FT_FRAMES, [(48, 64), (64, 48)])


@pytest.fixture(scope="module")
def pre_records(tmp_path_factory):
    return pretrain_videos(tmp_path_factory.mktemp("videos"))


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    return labelled_videos(tmp_path_factory.mktemp("ftvideos"))


@pytest.fixture(params=["pretrain", "classify"])
def stage(request, pre_records, records):
    """Each training stage on its videos (a test module imports this with both record fixtures)."""
    return Stage(request.param, pre_records if request.param == "pretrain" else records)


class Stage:
    """A training stage on its videos, 4-frame 32-pixel clips: ``'pretrain'``
    (stride 1) or ``'classify'`` (stride 2; RandAugment and erasing off unless
    ``augment``)."""

    def __init__(self, name, records):
        self.name, self.records = name, records
        self.frames = PRE_FRAMES if name == "pretrain" else FT_FRAMES

    def transform(self, records=None, augment=False, **kw):
        records = self.records if records is None else records
        if self.name == "pretrain":
            return PretrainTransform(records, **PRE_SMALL, **kw)
        return ClassifyTransform(records, **SMALL, **({} if augment else PLAIN), **kw)

    def dataset(self, records=None, transform_kw=(), **kw):
        records = self.records if records is None else records
        return make_train_dataset(records, self.transform(records, **dict(transform_kw)), **kw)

    def video_ids(self, batch):
        """Source video of each row, from its first frame's colour code."""
        return [codes(clip[:1])[0] // self.frames for clip in batch["video"]]


def eval_rows(records, batch_size, shard_index=0, shard_count=1, **transform_kw):
    """The eval batches of ``records`` (4-frame 32-pixel views) and their rows concatenated."""
    transform = EvalTransform(**SMALL, **transform_kw)
    batches = list(
        make_eval_dataset(
            records,
            transform,
            batch_size=batch_size,
            shard_index=shard_index,
            shard_count=shard_count,
        )
    )
    return batches, {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}
