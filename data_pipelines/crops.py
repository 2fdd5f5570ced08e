"""Spatial crops and resizes of clips (numpy/PIL, on the host).

Clips are ``np.uint8 [frames, height, width, 3]`` RGB; one box applies to every
frame of a clip.  One convention throughout: sizes are ``(height, width)`` and
boxes ``(top, left, height, width)`` in pixels.

Sources (official code):

* pre-training GroupMultiScaleCrop: ``dataset/transforms.py``
  ``GroupMultiScaleCrop(input_size, [1, .875, .75, .66])`` with its defaults
  ``max_distort=1, fix_crop=True, more_fix_crop=True``, resized with PIL
  bilinear (``DataAugmentationForVideoMAEv2``; spec 4.3);
* fine-tuning RandomResizedCrop: ``video_transforms.random_resized_crop`` /
  ``_get_param_spatial_crop`` in ``spatial_sampling`` (spec 5.2 step 3),
  resized with the ``F.interpolate(bilinear, align_corners=False)`` formula;
* evaluation: ``video_transforms.Resize`` (cv2 ``INTER_LINEAR``) + the crop in
  ``VideoClsDataset.__getitem__`` (test) and ``CenterCrop`` (validation)
  (spec 5.4); the feature-extraction squash resize (spec 7).

The fine-tuning and evaluation resizes interpolate the uint8 frames
(:func:`resize_bilinear`) and round to uint8, where the official code resizes
normalised floats: normalisation is affine per channel, so this differs from
the official order only by that rounding (<= 0.5/255).

Randomness comes from a ``numpy.random.Generator`` (the official code uses
Python ``random``): same distributions, different streams.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np
from PIL import Image

__all__ = [
    "Box",
    "check_clip",
    "DEFAULT_SCALES",
    "crop_size_pairs",
    "fixed_offsets",
    "sample_crop",
    "crop_and_resize",
    "multi_scale_crop",
    "resize_bilinear",
    "resize_bilinear_reference",
    "sample_resized_crop_box",
    "resized_crop",
    "random_resized_crop",
    "fit_canvas",
    "short_side_size",
    "resize_short_side",
    "center_crop",
    "eval_crop_starts",
    "eval_spatial_crop",
    "val_view",
    "squash_resize",
]

Box = tuple[int, int, int, int]  # (top, left, height, width) in pixels
DEFAULT_SCALES = (1, 0.875, 0.75, 0.66)


def check_clip(frames: np.ndarray) -> np.ndarray:
    """``frames`` as an array, checked to be ``uint8 [T, H, W, 3]``.

    Raises:
      ValueError: another rank, channel count or dtype.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 [T, H, W, 3], got {frames.dtype} {frames.shape}")
    return frames


# ---------------------------------------------------------------- GroupMultiScaleCrop


def crop_size_pairs(
    image_h: int,
    image_w: int,
    size: int = 224,
    scales: Sequence[float] = DEFAULT_SCALES,
    max_distort: int = 1,
) -> list[tuple[int, int]]:
    """Candidate ``(crop_h, crop_w)`` pairs, in the official order.

    ``base = min(H, W)``; sides ``int(base * s)`` for each scale; a side within
    3 px of ``size`` (``abs(x - size) < 3``) snaps to ``size``; pairs
    ``(h_i, w_j)`` with ``|i - j| <= max_distort``, ``i`` (height) outer loop,
    ``j`` (width) inner loop (official ``_sample_crop_size``, which lists them
    as ``(w_j, h_i)``).

    Returns:
      list of ``(crop_h, crop_w)`` in pixels.
    """
    base = min(image_w, image_h)
    sides = [int(base * s) for s in scales]
    snapped = [size if abs(x - size) < 3 else x for x in sides]
    return [
        (h, w)
        for i, h in enumerate(snapped)
        for j, w in enumerate(snapped)
        if abs(i - j) <= max_distort
    ]


def fixed_offsets(
    image_h: int, image_w: int, crop_h: int, crop_w: int, more_fix_crop: bool = True
) -> list[tuple[int, int]]:
    """The fixed ``(top, left)`` crop offsets (official ``fill_fix_offset``).

    With ``hs = (H - crop_h) // 4`` and ``ws = (W - crop_w) // 4``, in the
    official order (written there as ``(x, y)``): corners (0, 0), (0, 4ws),
    (4hs, 0), (4hs, 4ws), centre (2hs, 2ws); with ``more_fix_crop`` also
    (2hs, 0), (2hs, 4ws), (4hs, 2ws), (0, 2ws), (hs, ws), (hs, 3ws), (3hs, ws),
    (3hs, 3ws) -- 13 in all, duplicates kept (so they weigh more in the
    uniform choice, as in the official list).

    Returns:
      list of ``(top, left)`` in pixels.
    """
    hs = (image_h - crop_h) // 4
    ws = (image_w - crop_w) // 4
    out = [(0, 0), (0, 4 * ws), (4 * hs, 0), (4 * hs, 4 * ws), (2 * hs, 2 * ws)]
    if more_fix_crop:
        out += [
            (2 * hs, 0),
            (2 * hs, 4 * ws),
            (4 * hs, 2 * ws),
            (0, 2 * ws),
            (hs, ws),
            (hs, 3 * ws),
            (3 * hs, ws),
            (3 * hs, 3 * ws),
        ]
    return out


def sample_crop(
    image_h: int,
    image_w: int,
    rng: np.random.Generator,
    size: int = 224,
    scales: Sequence[float] = DEFAULT_SCALES,
    max_distort: int = 1,
    more_fix_crop: bool = True,
) -> Box:
    """Draw one GroupMultiScaleCrop box: a uniform size pair, then a uniform fixed offset.

    Returns:
      ``(top, left, crop_h, crop_w)``.
    """
    pairs = crop_size_pairs(image_h, image_w, size, scales, max_distort)
    crop_h, crop_w = pairs[int(rng.integers(len(pairs)))]
    offsets = fixed_offsets(image_h, image_w, crop_h, crop_w, more_fix_crop)
    top, left = offsets[int(rng.integers(len(offsets)))]
    return top, left, crop_h, crop_w


def crop_and_resize(frames: np.ndarray, box: Box, size: int) -> np.ndarray:
    """Crop every frame to ``box = (top, left, h, w)`` then resize to ``size x size``.

    Resizing uses PIL ``Image.resize((size, size), BILINEAR)`` on the cropped
    image, frame by frame, as the official ``img.crop(...).resize(...)``.

    Args:
      frames: ``uint8 [T, H, W, 3]``.

    Returns:
      ``uint8 [T, size, size, 3]``.
    """
    top, left, h, w = box
    out = np.empty((frames.shape[0], size, size, 3), dtype=np.uint8)
    for t in range(frames.shape[0]):
        crop = np.ascontiguousarray(frames[t, top : top + h, left : left + w])
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

    No flip and no colour jitter (official pre-training).

    Args:
      frames: ``uint8 [T, H, W, 3]`` RGB.
      rng: numpy Generator for the pair and offset choices.
      size: output side in pixels.

    Returns:
      ``uint8 [T, size, size, 3]``.

    Raises:
      ValueError: frames not ``[T, H, W, 3]`` uint8.
    """
    frames = check_clip(frames)
    image_h, image_w = frames.shape[1:3]
    box = sample_crop(image_h, image_w, rng, size, scales, max_distort, more_fix_crop)
    return crop_and_resize(frames, box, size)


# ---------------------------------------------------------------- RandomResizedCrop


def _linear_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source taps/weights: ``src = max((dst + 0.5) * n_in / n_out - 0.5, 0)``."""
    src = np.maximum((np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    w1 = (src - i0).astype(np.float32)
    return i0, i1, w1


@functools.cache
def _cv2():
    """cv2 on one thread: the pipeline's parallelism is across clips (grain workers)."""
    import cv2

    cv2.setNumThreads(1)
    return cv2


def resize_bilinear(frames: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Bilinear resize without antialiasing, half-pixel centres.

    The formula of ``torch.nn.functional.interpolate(mode='bilinear',
    align_corners=False)`` and cv2 ``INTER_LINEAR`` (the official crop resize,
    test resize and feature-extraction resize): per axis
    ``src = max((dst + 0.5) * in / out - 0.5, 0)``, linear between
    ``floor(src)`` and the next pixel (clamped to the edge).  Computed by cv2
    itself (about 20x the numpy version, docs/benchmarks.md 10); its 11-bit fixed-point
    weights put a pixel at most 1 from the exactly rounded float result
    (:func:`resize_bilinear_reference`).

    Args:
      frames: ``uint8 [T, H, W, C]``.
      out_h, out_w: output size in pixels (>= 1).

    Returns:
      ``uint8 [T, out_h, out_w, C]``.
    """
    cv2 = _cv2()
    frames = np.asarray(frames)
    if frames.shape[1:3] == (out_h, out_w):
        return frames.copy()
    return np.stack(
        [cv2.resize(np.ascontiguousarray(f), (out_w, out_h), interpolation=cv2.INTER_LINEAR)
         .reshape(out_h, out_w, -1) for f in frames]
    )


def resize_bilinear_reference(frames: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """:func:`resize_bilinear` in float32 numpy, rounded to the nearest uint8 (the reference)."""
    frames = np.asarray(frames)
    y0, y1, wy = _linear_taps(frames.shape[1], out_h)
    x0, x1, wx = _linear_taps(frames.shape[2], out_w)
    f = frames.astype(np.float32)
    rows = f[:, y0] * (1 - wy)[None, :, None, None] + f[:, y1] * wy[None, :, None, None]
    out = rows[:, :, x0] * (1 - wx)[None, None, :, None] + rows[:, :, x1] * wx[None, None, :, None]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def sample_resized_crop_box(
    height: int,
    width: int,
    rng: np.random.Generator,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (0.75, 1.3333),
    tries: int = 10,
) -> Box:
    """RandomResizedCrop box (official ``_get_param_spatial_crop``, ``log_scale=True``).

    Up to ``tries`` times: ``area = U(scale) * H * W``,
    ``aspect = exp(U(log ratio))``, ``w = round(sqrt(area * aspect))``,
    ``h = round(sqrt(area / aspect))``; accepted if ``0 < w <= W`` and
    ``0 < h <= H``, with ``top ~ U{0..H-h}``, ``left ~ U{0..W-w}``.  Fallback
    (centre): if ``W/H < min(ratio)`` then ``w = W, h = round(w / min(ratio))``;
    if ``W/H > max(ratio)`` then ``h = H, w = round(h * max(ratio))``; else the
    whole frame; ``top = (H - h) // 2``, ``left = (W - w) // 2``.  The official
    ratio is the literal ``(0.75, 1.3333)``.

    Returns:
      ``(top, left, h, w)`` in pixels.
    """
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(tries):
        target_area = rng.uniform(*scale) * area
        aspect = math.exp(rng.uniform(*log_ratio))
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            return top, left, h, w
    in_ratio = width / height
    if in_ratio < min(ratio):
        w = width
        h = int(round(w / min(ratio)))
    elif in_ratio > max(ratio):
        h = height
        w = int(round(h * max(ratio)))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def resized_crop(frames: np.ndarray, box: Box, size: int = 224) -> np.ndarray:
    """Crop ``box = (top, left, h, w)`` of every frame, resized to ``size x size``
    (:func:`resize_bilinear`, the fine-tuning RandomResizedCrop's resize).

    Returns:
      ``uint8 [T, size, size, 3]``.
    """
    top, left, h, w = box
    return resize_bilinear(frames[:, top : top + h, left : left + w], size, size)


def random_resized_crop(
    frames: np.ndarray, rng: np.random.Generator, size: int = 224, **box_kwargs
) -> tuple[np.ndarray, Box]:
    """One RandomResizedCrop box for all frames, resized to ``size x size`` (bilinear).

    Returns:
      ``(uint8 [T, size, size, 3], (top, left, h, w))``.
    """
    frames = check_clip(frames)
    box = sample_resized_crop_box(frames.shape[1], frames.shape[2], rng, **box_kwargs)
    return resized_crop(frames, box, size), box


# ---------------------------------------------------------------- the device canvas


def fit_canvas(frames: np.ndarray, canvas: tuple[int, int]) -> tuple[np.ndarray, tuple[int, int]]:
    """Frames on a fixed ``canvas = (height, width)``, for augmentation on the device.

    Frames that fit are copied to the top-left corner unchanged (zeros around them),
    so the device crops the decoded pixels themselves; larger frames are first
    scaled down to fit, aspect kept: the one resampling the host path does not do.
    A shrink to 3/4 or more uses cv2 ``INTER_LINEAR``, a stronger one ``INTER_AREA``:
    measured against the host's crops (tests/device_augment_test.py), linear is as
    close at 0.9 (mean 0.79 vs 0.80 levels) and 5x faster on non-integer ratios
    (2.4 vs 13 ms for 16 frames of 640x272), area closer at 0.5 (0.86 vs 1.26).

    Args:
      frames: ``uint8 [T, H, W, 3]``.

    Returns:
      ``(uint8 [T, canvas_h, canvas_w, 3], (h, w))``: the canvas and the size the
      frames take on it (``(H, W)`` when they fit).
    """
    frames = check_clip(frames)
    ch, cw = canvas
    h, w = frames.shape[1:3]
    if h > ch or w > cw:
        s = min(ch / h, cw / w)
        h, w = max(1, min(ch, round(h * s))), max(1, min(cw, round(w * s)))
        cv2 = _cv2()
        interpolation = cv2.INTER_LINEAR if s >= 0.75 else cv2.INTER_AREA
        frames = np.stack([cv2.resize(f, (w, h), interpolation=interpolation) for f in frames])
    out = np.zeros((frames.shape[0], ch, cw, 3), dtype=np.uint8)
    out[:, :h, :w] = frames
    return out, (h, w)


# ---------------------------------------------------------------- evaluation views


def short_side_size(height: int, width: int, size: int = 224) -> tuple[int, int]:
    """``(new_h, new_w)`` with the short side ``size`` (official ``get_resize_sizes``).

    ``W < H``: ``(int(size * H / W), size)``; else ``(size, int(size * W / H))``.
    """
    if width < height:
        return int(size * height / width), size
    return size, int(size * width / height)


def resize_short_side(frames: np.ndarray, size: int = 224) -> np.ndarray:
    """Resize so the short side is ``size`` (bilinear, as cv2 ``INTER_LINEAR``).

    Returns:
      ``uint8 [T, new_h, new_w, 3]`` (:func:`short_side_size`).
    """
    frames = check_clip(frames)
    new_h, new_w = short_side_size(frames.shape[1], frames.shape[2], size)
    return resize_bilinear(frames, new_h, new_w)


def center_crop(frames: np.ndarray, size: int = 224) -> np.ndarray:
    """Official ``CenterCrop``: ``top = int(round((H - size) / 2))``, same for left.

    Returns:
      ``uint8 [T, size, size, 3]``.

    Raises:
      ValueError: a frame smaller than ``size``.
    """
    h, w = frames.shape[1:3]
    if h < size or w < size:
        raise ValueError(f"frames {h}x{w} are smaller than the crop {size}")
    top = int(round((h - size) / 2.0))
    left = int(round((w - size) / 2.0))
    return frames[:, top : top + size, left : left + size]


def eval_crop_starts(long_side: int, size: int = 224, num_crops: int = 3) -> list[int]:
    """Offsets along the long side of the ``num_crops`` test crops.

    ``start = int(split * (long - size) / (C - 1))`` (official test
    ``spatial_step``, spec 5.4).  Named deviation for ``C == 1`` (officially a
    division by zero): the centre, ``int(round((long - size) / 2))``.

    Raises:
      ValueError: ``num_crops < 1``.
    """
    if num_crops < 1:
        raise ValueError(f"num_crops must be >= 1, got {num_crops}")
    if num_crops == 1:
        return [int(round((long_side - size) / 2.0))]
    step = (long_side - size) / (num_crops - 1)
    return [int(split * step) for split in range(num_crops)]


def eval_spatial_crop(
    frames: np.ndarray, split: int, num_crops: int = 3, size: int = 224
) -> np.ndarray:
    """Crop ``split`` of ``num_crops`` squares along the long side of short-side-resized frames.

    If ``H >= W`` the crop runs along H (rows ``start:start+size``, all
    columns), else along W -- the official test ``__getitem__``; the frames
    should already have their short side equal to ``size``.

    Returns:
      ``uint8 [T, min(H, size), min(W, size), 3]`` (``[T, size, size, 3]`` for
      short-side-resized input).
    """
    h, w = frames.shape[1:3]
    start = eval_crop_starts(max(h, w), size, num_crops)[split]
    if h >= w:
        return frames[:, start : start + size]
    return frames[:, :, start : start + size]


def val_view(frames: np.ndarray, size: int = 224) -> np.ndarray:
    """Validation view: short side to ``size`` then centre crop (spec 5.4).

    Returns:
      ``uint8 [T, size, size, 3]``.
    """
    return np.ascontiguousarray(center_crop(resize_short_side(frames, size), size))


def squash_resize(frames: np.ndarray, size: int = 224) -> np.ndarray:
    """Feature-extraction resize to ``size x size`` ignoring aspect (spec 7; bilinear).

    No normalisation: officially the features are computed on /255 values
    without ImageNet mean/std (issue #62); that choice is the consumer's.

    Returns:
      ``uint8 [T, size, size, 3]``.
    """
    return resize_bilinear(check_clip(frames), size, size)
