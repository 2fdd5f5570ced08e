"""Made labelled videos ("shapes in motion") for checks that need a task with a known
answer: the learning benchmark (bench/learning.py), the fit check's test, the demo.

Eight classes, `CLASSES`: a field of five squares or five rings (appearance), 9-13 px,
drifting right, left, up or down (motion) at 1-1.5 pixels per frame and wrapping around
the frame, over a static linear gradient between two random colours (100-255 levels
apart in every channel); 24 frames of 48x48 at 25 fps, mpeg4. Colours, sizes, places
and speed vary per video, so a class is neither a colour nor a position.

Why a field and not one shape (version 1 of this module): with one 12-16 px shape the
class touched 9-16 of a frame's 64 tokens; pre-trained features, mean-pooled, described
the random background and kNN on them rose 4-8 points (docs/learning.md). Here the
class is in most tokens of every frame.
"""

from __future__ import annotations

import os

import av
import numpy as np

__all__ = ["CLASSES", "render", "write_video", "make_dataset", "cached_dataset"]

SHAPES = ('square', 'ring')
MOTIONS = {'right': (0, 1), 'left': (0, -1), 'up': (-1, 0), 'down': (1, 0)}
CLASSES = tuple(f'{s}_{m}' for s in SHAPES for m in MOTIONS)
SIDE = 48  # stored frame side (pixels)
FRAMES = 24
OBJECTS = 5  # shapes per video


def _background(rng: np.random.Generator) -> np.ndarray:
    """A linear gradient between two random colours, float [SIDE, SIDE, 3]."""
    # Every channel ramps by 100-255 levels across the frame: gentler ramps leave most
    # 4x4 patches within 2 levels of flat, and per-patch normalised targets of those are
    # compression noise (docs/learning.md).
    lo = rng.uniform(0, 155, 3)
    a, b = lo, lo + rng.uniform(100, 255 - lo)
    if rng.random() < 0.5:
        a, b = b, a
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:SIDE, 0:SIDE] / (SIDE - 1)
    t = (np.cos(angle) * xx + np.sin(angle) * yy)
    t = (t - t.min()) / (t.max() - t.min())
    return a + (b - a) * t[..., None]


def _shape_mask(shape: str, size: int) -> np.ndarray:
    if shape == 'square':
        return np.ones((size, size), bool)
    yy, xx = np.mgrid[0:size, 0:size] - (size - 1) / 2
    r = np.hypot(yy, xx)
    return (r <= size / 2) & (r >= size / 2 - size // 4)  # 2-3 px thick


def render(label: int, rng: np.random.Generator) -> np.ndarray:
    """One video of class `label` (an index into CLASSES): uint8 [FRAMES, SIDE, SIDE, 3]."""
    shape, motion = CLASSES[label].split('_')
    dy, dx = MOTIONS[motion]
    speed = rng.uniform(1.0, 1.5)  # pixels per frame
    # The foreground layer: OBJECTS shapes of the class at random places, one colour;
    # it drifts as a whole and wraps around the frame, so every frame holds the class.
    layer = np.zeros((SIDE, SIDE), bool)
    for _ in range(OBJECTS):
        size = int(rng.integers(9, 14))
        y, x = rng.integers(0, SIDE, 2)
        layer |= np.roll(np.pad(_shape_mask(shape, size), ((0, SIDE - size), (0, SIDE - size))),
                         (y, x), (0, 1))
    bg = _background(rng)
    fg = (bg.mean((0, 1)) + 128 + rng.uniform(-40, 40, 3)) % 256
    out = np.empty((FRAMES, SIDE, SIDE, 3), np.uint8)
    for k in range(FRAMES):
        shift = int(round(speed * k))
        img = bg.copy()
        img[np.roll(layer, (dy * shift, dx * shift), (0, 1))] = fg
        out[k] = np.clip(img, 0, 255).astype(np.uint8)
    return out


def write_video(path: str, frames: np.ndarray) -> None:
    """uint8 [T, SIDE, SIDE, 3] -> an mpeg4 file at `path` (written whole, then renamed)."""
    tmp = f'{path}.{os.getpid()}.tmp.mp4'
    with av.open(tmp, mode='w') as c:
        s = c.add_stream('mpeg4', rate=25)
        s.width, s.height, s.pix_fmt = SIDE, SIDE, 'yuv420p'
        s.bit_rate = 2_000_000
        for img in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(img, format='rgb24')):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    os.replace(tmp, path)


def make_dataset(root: str, per_class: dict[str, int], seed: int = 0) -> str:
    """Writes {root}/{split}_{class}_{i}.mp4, {split}.csv (`name label`, the fine-tuning
    list format) and names.txt; returns `root`. Existing videos are kept (the same seed
    draws the same videos).

    Args:
      root: output folder (created).
      per_class: videos per class of each split, e.g. {'train': 20, 'val': 10}.
      seed: the draws of split k come from `default_rng([seed, k])`, splits sorted by name.
    """
    os.makedirs(root, exist_ok=True)
    for s_index, (split, n) in enumerate(sorted(per_class.items())):
        rng = np.random.default_rng([seed, s_index])
        lines = []
        for label, name in enumerate(CLASSES):
            for i in range(n):
                video = f'{split}_{name}_{i}.mp4'
                frames = render(label, rng)
                if not os.path.exists(os.path.join(root, video)):
                    write_video(os.path.join(root, video), frames)
                lines.append(f'{video} {label}')
        with open(os.path.join(root, f'{split}.csv'), 'w') as f:
            f.write('\n'.join(lines) + '\n')
    with open(os.path.join(root, 'names.txt'), 'w') as f:
        f.write('\n'.join(CLASSES) + '\n')
    return root


# Bump when `render` changes: the cache folder is named after it.
VERSION = 2


def cached_dataset(per_class: dict[str, int] | None = None) -> str:
    """The made dataset in the user's cache ($XDG_CACHE_HOME or ~/.cache, then
    vmae2/synthetic_v{VERSION}), written on first use; returns the folder.

    `per_class` defaults to {'train': 20, 'val': 10} (160 + 80 videos, ~5 s to write).
    """
    base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    root = os.path.join(base, 'vmae2', f'synthetic_v{VERSION}')
    return make_dataset(root, per_class or {'train': 20, 'val': 10})
