"""Spatial augmentation for pre-training: GroupMultiScaleCrop.

Reimplements ``GroupMultiScaleCrop(input_size, [1, .875, .75, .66])`` with its
defaults ``max_distort=1, fix_crop=True, more_fix_crop=True`` (official
``dataset/transforms.py``, used by ``DataAugmentationForVideoMAEv2``; spec 4.3).
No flip and no colour jitter.  Normalisation (/255, ImageNet mean/std) is left
to the consumer; this module outputs uint8.

Randomness: the official code uses Python ``random.choice``; here the choices
come from a ``numpy.random.Generator`` (``rng.integers(len(options))``), so the
distribution is the same but the streams differ.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

__all__ = ["crop_size_pairs", "fixed_offsets", "sample_crop", "crop_and_resize", "multi_scale_crop"]

DEFAULT_SCALES = (1, 0.875, 0.75, 0.66)


def crop_size_pairs(
    image_w: int,
    image_h: int,
    size: int = 224,
    scales: Sequence[float] = DEFAULT_SCALES,
    max_distort: int = 1,
) -> list[tuple[int, int]]:
    """Candidate ``(crop_w, crop_h)`` pairs, in the official order.

    ``base = min(W, H)``; sides ``int(base * s)`` for each scale; a side within
    3 px of ``size`` (``abs(x - size) < 3``) snaps to ``size``; pairs
    ``(w_j, h_i)`` with ``|i - j| <= max_distort``, ``i`` (height) outer loop,
    ``j`` (width) inner loop (official ``_sample_crop_size``).

    Returns:
      list of ``(crop_w, crop_h)`` in pixels.
    """
    base = min(image_w, image_h)
    sides = [int(base * s) for s in scales]
    snapped = [size if abs(x - size) < 3 else x for x in sides]
    return [
        (w, h)
        for i, h in enumerate(snapped)
        for j, w in enumerate(snapped)
        if abs(i - j) <= max_distort
    ]


def fixed_offsets(
    image_w: int, image_h: int, crop_w: int, crop_h: int, more_fix_crop: bool = True
) -> list[tuple[int, int]]:
    """The fixed ``(x, y)`` top-left crop offsets (official ``fill_fix_offset``).

    With ``ws = (W - crop_w) // 4`` and ``hs = (H - crop_h) // 4``: corners
    (0,0), (4ws,0), (0,4hs), (4ws,4hs), centre (2ws,2hs); with
    ``more_fix_crop`` also (0,2hs), (4ws,2hs), (2ws,4hs), (2ws,0), (ws,hs),
    (3ws,hs), (ws,3hs), (3ws,3hs) -- 13 in all, duplicates kept (so they weigh
    more in the uniform choice, as in the official list).

    Returns:
      list of ``(x_offset, y_offset)`` in pixels.
    """
    ws = (image_w - crop_w) // 4
    hs = (image_h - crop_h) // 4
    out = [(0, 0), (4 * ws, 0), (0, 4 * hs), (4 * ws, 4 * hs), (2 * ws, 2 * hs)]
    if more_fix_crop:
        out += [
            (0, 2 * hs),
            (4 * ws, 2 * hs),
            (2 * ws, 4 * hs),
            (2 * ws, 0),
            (ws, hs),
            (3 * ws, hs),
            (ws, 3 * hs),
            (3 * ws, 3 * hs),
        ]
    return out


def sample_crop(
    image_w: int,
    image_h: int,
    rng: np.random.Generator,
    size: int = 224,
    scales: Sequence[float] = DEFAULT_SCALES,
    max_distort: int = 1,
    more_fix_crop: bool = True,
) -> tuple[int, int, int, int]:
    """Draw one crop box ``(x, y, crop_w, crop_h)``: a uniform pair, then a uniform offset."""
    pairs = crop_size_pairs(image_w, image_h, size, scales, max_distort)
    crop_w, crop_h = pairs[int(rng.integers(len(pairs)))]
    offsets = fixed_offsets(image_w, image_h, crop_w, crop_h, more_fix_crop)
    x, y = offsets[int(rng.integers(len(offsets)))]
    return x, y, crop_w, crop_h


def crop_and_resize(frames: np.ndarray, box: tuple[int, int, int, int], size: int) -> np.ndarray:
    """Crop every frame to ``box = (x, y, w, h)`` then resize to ``size x size``.

    Resizing uses PIL ``Image.resize((size, size), BILINEAR)`` on the cropped
    image, frame by frame, as the official ``img.crop(...).resize(...)``.

    Args:
      frames: ``uint8 [T, H, W, 3]``.

    Returns:
      ``uint8 [T, size, size, 3]``.
    """
    x, y, w, h = box
    out = np.empty((frames.shape[0], size, size, 3), dtype=np.uint8)
    for t in range(frames.shape[0]):
        crop = np.ascontiguousarray(frames[t, y : y + h, x : x + w])
        if crop.shape[:2] == (size, size):
            out[t] = crop
        else:
            out[t] = np.asarray(Image.fromarray(crop).resize((size, size), Image.BILINEAR))
    return out


def multi_scale_crop(
    frames: np.ndarray,
    rng: np.random.Generator,
    size: int = 224,
    scales: Sequence[float] = DEFAULT_SCALES,
    max_distort: int = 1,
    more_fix_crop: bool = True,
) -> np.ndarray:
    """GroupMultiScaleCrop (fix_crop=True): one random crop for all frames, resized.

    Args:
      frames: ``uint8 [T, H, W, 3]`` RGB.
      rng: numpy Generator for the pair and offset choices.
      size: output side in pixels.

    Returns:
      ``uint8 [T, size, size, 3]``.

    Raises:
      ValueError: frames not ``[T, H, W, 3]`` uint8.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 [T, H, W, 3], got {frames.dtype} {frames.shape}")
    image_h, image_w = frames.shape[1:3]
    box = sample_crop(image_w, image_h, rng, size, scales, max_distort, more_fix_crop)
    return crop_and_resize(frames, box, size)
