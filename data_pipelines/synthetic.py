"""Made labelled videos ("shapes in motion") for checks that need a task with a known
answer: the learning benchmark (bench/learning.py), the fit check's test, the demo.

Eight classes, `CLASSES`: a square or a ring (appearance) moving right, left, up or
down (motion) at 0.8-1.2 pixels per frame over a linear gradient between two random
colours (100-255 levels apart in every channel); 24 frames of 48x48 at 25 fps, mpeg4. Colours, size (12-16 px), speed and
start vary per video and the whole path stays in the frame, so a class is neither a
colour nor a position.
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
    return (r <= size / 2) & (r >= size / 2 - 3)


def render(label: int, rng: np.random.Generator) -> np.ndarray:
    """One video of class `label` (an index into CLASSES): uint8 [FRAMES, SIDE, SIDE, 3]."""
    shape, motion = CLASSES[label].split('_')
    dy, dx = MOTIONS[motion]
    size = int(rng.integers(12, 17))
    speed = rng.uniform(0.8, 1.2)  # pixels per frame
    travel = speed * (FRAMES - 1)
    # Start so that the whole path stays inside the frame.
    lo_y = max(0, -dy * travel)
    hi_y = SIDE - size - max(0, dy * travel)
    lo_x = max(0, -dx * travel)
    hi_x = SIDE - size - max(0, dx * travel)
    y0, x0 = rng.uniform(lo_y, max(lo_y, hi_y)), rng.uniform(lo_x, max(lo_x, hi_x))
    bg = _background(rng)
    fg = (bg.mean((0, 1)) + 128 + rng.uniform(-40, 40, 3)) % 256
    mask = _shape_mask(shape, size)
    out = np.empty((FRAMES, SIDE, SIDE, 3), np.uint8)
    for k in range(FRAMES):
        img = bg.copy()
        y, x = int(round(y0 + dy * speed * k)), int(round(x0 + dx * speed * k))
        img[y : y + size, x : x + size][mask] = fg
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
VERSION = 1


def cached_dataset(per_class: dict[str, int] | None = None) -> str:
    """The made dataset in the user's cache ($XDG_CACHE_HOME or ~/.cache, then
    vmae2/synthetic_v{VERSION}), written on first use; returns the folder.

    `per_class` defaults to {'train': 20, 'val': 10} (160 + 80 videos, ~5 s to write).
    """
    base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    root = os.path.join(base, 'vmae2', f'synthetic_v{VERSION}')
    return make_dataset(root, per_class or {'train': 20, 'val': 10})
