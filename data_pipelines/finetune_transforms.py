"""Spatial augmentation and evaluation views for fine-tuning (numpy/PIL, on the host).

Clips are ``np.uint8 [frames, height, width, 3]`` RGB throughout; every random
parameter is drawn once per clip and applied to all its frames.  Sources:

* RandAugment ``rand-m7-n4-mstd0.5-inc1``: official ``dataset/rand_augment.py``
  (timm-style, video-aware), via ``video_transforms.create_random_augment``
  (spec 5.2 step 1); implemented here from the op definitions with PIL.
* RandomResizedCrop + flip: ``video_transforms.random_resized_crop`` /
  ``_get_param_spatial_crop`` and ``horizontal_flip`` in ``spatial_sampling``
  (spec 5.2 step 3).
* Random erasing: ``dataset/random_erasing.py`` ``RandomErasing(cube=True)``
  (spec 5.2 step 4).
* Test views: ``video_transforms.Resize`` + the crop in
  ``VideoClsDataset.__getitem__`` (test) and ``CenterCrop`` (validation)
  (spec 5.4); the feature-extraction squash resize (spec 7).

Where the official code works in float on normalised tensors (crop resize,
erasing), here:

* resizing interpolates the uint8 frames (:func:`resize_bilinear`, the
  ``F.interpolate(bilinear, align_corners=False)`` / cv2 ``INTER_LINEAR``
  formula) and rounds to uint8 -- normalisation is affine per channel, so
  this differs from the official order only by that rounding (<= 0.5/255);
* random erasing returns only the box (``erase_box``: ``int32 [4]`` =
  ``y0, x0, h, w`` in output-crop pixels, ``h == 0`` meaning no erasing):
  clips cross to the device as uint8 and are normalised there, so the device
  must fill the box with fresh ``N(0, 1)`` noise per frame, pixel and channel
  *after* normalisation (:func:`apply_erasing` is the numpy reference).

Randomness comes from a ``numpy.random.Generator`` (the official code mixes
Python ``random`` and ``np.random``): same distributions, different streams.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

__all__ = [
    "RAND_INCREASING_OPS",
    "FILL",
    "AugOp",
    "parse_rand_augment_spec",
    "op_level_args",
    "sample_rand_augment",
    "apply_rand_augment",
    "rand_augment",
    "resize_bilinear",
    "sample_resized_crop_box",
    "random_resized_crop",
    "sample_erase_box",
    "apply_erasing",
    "train_view",
    "short_side_size",
    "resize_short_side",
    "center_crop",
    "eval_crop_starts",
    "eval_spatial_crop",
    "val_view",
    "squash_resize",
]

MAX_LEVEL = 10.0
FILL = (128, 128, 128)

# timm ``_RAND_INCREASING_TRANSFORMS`` (the ``inc1`` list), in the official order.
RAND_INCREASING_OPS = (
    "AutoContrast",
    "Equalize",
    "Invert",
    "Rotate",
    "PosterizeIncreasing",
    "SolarizeIncreasing",
    "SolarizeAdd",
    "ColorIncreasing",
    "ContrastIncreasing",
    "BrightnessIncreasing",
    "SharpnessIncreasing",
    "ShearX",
    "ShearY",
    "TranslateXRel",
    "TranslateYRel",
)


@dataclasses.dataclass(frozen=True)
class AugOp:
    """One RandAugment op that fired, with its clip-wide parameters.

    Attributes:
      name: one of :data:`RAND_INCREASING_OPS`.
      magnitude: the drawn magnitude in ``[0, 10]``.
      args: the op's arguments from :func:`op_level_args` (degrees for Rotate,
        bits for Posterize, threshold for Solarize, added value for SolarizeAdd,
        enhancement factor, shear factor, or translation as a fraction of the
        image side); ``()`` for AutoContrast/Equalize/Invert.
    """

    name: str
    magnitude: float
    args: tuple = ()


def parse_rand_augment_spec(spec: str) -> dict:
    """Parse a timm RandAugment string such as ``'rand-m7-n4-mstd0.5-inc1'``.

    Keys: ``m`` magnitude, ``n`` number of ops, ``mstd`` magnitude std, ``inc``
    increasing ops, ``p`` per-op probability (timm defaults: n=2, mstd=0,
    p=0.5).

    Returns:
      ``dict(magnitude=float, num_ops=int, magnitude_std=float, prob=float)``.

    Raises:
      ValueError: not ``rand-...``, an unknown key, or ``inc0`` (only the
        increasing op set is implemented).
    """
    parts = spec.split("-")
    if parts[0] != "rand":
        raise ValueError(f"RandAugment spec must start with 'rand', got {spec!r}")
    out = dict(magnitude=10.0, num_ops=2, magnitude_std=0.0, prob=0.5)
    increasing = False
    for part in parts[1:]:
        for key, name, cast in (
            ("mstd", "magnitude_std", float),
            ("inc", None, int),
            ("m", "magnitude", float),
            ("n", "num_ops", int),
            ("p", "prob", float),
        ):
            if part.startswith(key):
                value = cast(part[len(key) :])
                if name is None:
                    increasing = bool(value)
                else:
                    out[name] = value
                break
        else:
            raise ValueError(f"unknown RandAugment option {part!r} in {spec!r}")
    if not increasing:
        raise ValueError(f"only the increasing op set ('inc1') is implemented, got {spec!r}")
    return out


def _negate(value: float, rng: np.random.Generator) -> float:
    """timm ``_randomly_negate``: the sign flips with probability 1/2."""
    return -value if rng.random() < 0.5 else value


def op_level_args(
    name: str, magnitude: float, rng: np.random.Generator, translate_pct: float = 0.45
) -> tuple:
    """Map a magnitude ``m`` in ``[0, 10]`` to op arguments (timm ``*_level_to_arg``).

    * Rotate: ``+-30 * m / 10`` degrees;
    * PosterizeIncreasing: ``4 - int(4 * m / 10)`` bits kept;
    * SolarizeIncreasing: threshold ``256 - int(256 * m / 10)``;
    * SolarizeAdd: ``int(110 * m / 10)`` added below threshold 128;
    * Color/Contrast/Brightness/SharpnessIncreasing: factor ``1 +- 0.9 * m / 10``;
    * ShearX/Y: ``+-0.3 * m / 10``;
    * TranslateX/YRel: ``+-translate_pct * m / 10`` of the image width/height;
    * AutoContrast, Equalize, Invert: no argument.

    ``+-`` is a random sign (``rng``), drawn here once per clip.

    Raises:
      ValueError: an unknown op name.
    """
    level = magnitude / MAX_LEVEL
    if name in ("AutoContrast", "Equalize", "Invert"):
        return ()
    if name == "Rotate":
        return (_negate(30.0 * level, rng),)
    if name == "PosterizeIncreasing":
        return (4 - int(4 * level),)
    if name == "SolarizeIncreasing":
        return (256 - int(256 * level),)
    if name == "SolarizeAdd":
        return (int(110 * level),)
    if name.endswith("Increasing") and name[: -len("Increasing")] in (
        "Color",
        "Contrast",
        "Brightness",
        "Sharpness",
    ):
        return (1.0 + _negate(0.9 * level, rng),)
    if name in ("ShearX", "ShearY"):
        return (_negate(0.3 * level, rng),)
    if name in ("TranslateXRel", "TranslateYRel"):
        return (_negate(translate_pct * level, rng),)
    raise ValueError(f"unknown RandAugment op {name!r}")


def sample_rand_augment(
    rng: np.random.Generator,
    num_ops: int = 4,
    magnitude: float = 7.0,
    magnitude_std: float = 0.5,
    prob: float = 0.5,
    translate_pct: float = 0.45,
    ops: Sequence[str] = RAND_INCREASING_OPS,
) -> list[AugOp]:
    """Draw the RandAugment ops of one clip (defaults: ``rand-m7-n4-mstd0.5-inc1``).

    Official ``RandAugment.__call__`` + ``AugmentOp.__call__``: ``num_ops`` ops
    uniformly *with replacement*; each then fires with probability ``prob``
    (skipped when ``u > prob``), draws ``m ~ N(magnitude, magnitude_std)``
    clipped to ``[0, 10]``, and maps it with :func:`op_level_args`.

    Returns:
      the ops that fire, in application order (0 to ``num_ops`` of them).
    """
    chosen = rng.integers(len(ops), size=num_ops)
    out = []
    for k in chosen:
        name = ops[int(k)]
        if prob < 1.0 and rng.random() > prob:
            continue
        m = magnitude
        if magnitude_std > 0:
            m = float(rng.normal(magnitude, magnitude_std))
        m = min(MAX_LEVEL, max(0.0, m))
        out.append(AugOp(name, m, op_level_args(name, m, rng, translate_pct)))
    return out


def _solarize_add(img: Image.Image, add: int, threshold: int = 128) -> Image.Image:
    lut = [min(255, i + add) if i < threshold else i for i in range(256)]
    return img.point(lut * len(img.getbands()))


def _apply_op(img: Image.Image, op: AugOp, fill: tuple, resample: int) -> Image.Image:
    name, args = op.name, op.args
    affine = dict(resample=resample, fillcolor=fill)
    if name == "AutoContrast":
        return ImageOps.autocontrast(img)
    if name == "Equalize":
        return ImageOps.equalize(img)
    if name == "Invert":
        return ImageOps.invert(img)
    if name == "Rotate":
        return img.rotate(args[0], **affine)
    if name == "PosterizeIncreasing":
        return img if args[0] >= 8 else ImageOps.posterize(img, args[0])
    if name == "SolarizeIncreasing":
        return ImageOps.solarize(img, args[0])
    if name == "SolarizeAdd":
        return _solarize_add(img, args[0])
    if name == "ColorIncreasing":
        return ImageEnhance.Color(img).enhance(args[0])
    if name == "ContrastIncreasing":
        return ImageEnhance.Contrast(img).enhance(args[0])
    if name == "BrightnessIncreasing":
        return ImageEnhance.Brightness(img).enhance(args[0])
    if name == "SharpnessIncreasing":
        return ImageEnhance.Sharpness(img).enhance(args[0])
    if name == "ShearX":
        return img.transform(img.size, Image.AFFINE, (1, args[0], 0, 0, 1, 0), **affine)
    if name == "ShearY":
        return img.transform(img.size, Image.AFFINE, (1, 0, 0, args[0], 1, 0), **affine)
    if name == "TranslateXRel":
        dx = args[0] * img.size[0]
        return img.transform(img.size, Image.AFFINE, (1, 0, dx, 0, 1, 0), **affine)
    if name == "TranslateYRel":
        dy = args[0] * img.size[1]
        return img.transform(img.size, Image.AFFINE, (1, 0, 0, 0, 1, dy), **affine)
    raise ValueError(f"unknown RandAugment op {name!r}")


def _check_clip(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 [T, H, W, 3], got {frames.dtype} {frames.shape}")
    return frames


def apply_rand_augment(
    frames: np.ndarray,
    ops: Sequence[AugOp],
    fill: tuple = FILL,
    resample: int = Image.BICUBIC,
) -> np.ndarray:
    """Apply ``ops`` in order, identically, to every frame (PIL, full resolution).

    Geometric ops (Rotate, Shear, Translate) use ``resample`` (official
    ``--train_interpolation bicubic``) and fill uncovered pixels with ``fill``.

    Args:
      frames: ``uint8 [T, H, W, 3]``.

    Returns:
      ``uint8 [T, H, W, 3]`` (the input itself when ``ops`` is empty).

    Raises:
      ValueError: frames not ``uint8 [T, H, W, 3]``.
    """
    frames = _check_clip(frames)
    if not ops:
        return frames
    out = np.empty_like(frames)
    for t in range(frames.shape[0]):
        img = Image.fromarray(frames[t])
        for op in ops:
            img = _apply_op(img, op, fill, resample)
        out[t] = np.asarray(img)
    return out


def rand_augment(
    frames: np.ndarray, rng: np.random.Generator, spec: str = "rand-m7-n4-mstd0.5-inc1"
) -> np.ndarray:
    """Draw (:func:`sample_rand_augment`) and apply RandAugment ``spec`` to a clip.

    Returns:
      ``uint8 [T, H, W, 3]``.
    """
    ops = sample_rand_augment(rng, **parse_rand_augment_spec(spec))
    return apply_rand_augment(frames, ops)


def _linear_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source taps/weights: ``src = max((dst + 0.5) * n_in / n_out - 0.5, 0)``."""
    src = np.maximum((np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    w1 = (src - i0).astype(np.float32)
    return i0, i1, w1


def resize_bilinear(frames: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Bilinear resize without antialiasing, half-pixel centres.

    The formula of ``torch.nn.functional.interpolate(mode='bilinear',
    align_corners=False)`` and cv2 ``INTER_LINEAR`` (the official crop resize,
    test resize and feature-extraction resize): per axis
    ``src = max((dst + 0.5) * in / out - 0.5, 0)``, linear between
    ``floor(src)`` and the next pixel (clamped to the edge).  Rounded to the
    nearest uint8.

    Args:
      frames: ``uint8 [T, H, W, C]``.
      out_h, out_w: output size in pixels (>= 1).

    Returns:
      ``uint8 [T, out_h, out_w, C]``.
    """
    frames = np.asarray(frames)
    t, h, w, c = frames.shape
    if (h, w) == (out_h, out_w):
        return frames.copy()
    y0, y1, wy = _linear_taps(h, out_h)
    x0, x1, wx = _linear_taps(w, out_w)
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
) -> tuple[int, int, int, int]:
    """RandomResizedCrop box (official ``_get_param_spatial_crop``, ``log_scale=True``).

    Up to ``tries`` times: ``area = U(scale) * H * W``,
    ``aspect = exp(U(log ratio))``, ``w = round(sqrt(area * aspect))``,
    ``h = round(sqrt(area / aspect))``; accepted if ``0 < w <= W`` and
    ``0 < h <= H``, with ``y ~ U{0..H-h}``, ``x ~ U{0..W-w}``.  Fallback
    (centre): if ``W/H < min(ratio)`` then ``w = W, h = round(w / min(ratio))``;
    if ``W/H > max(ratio)`` then ``h = H, w = round(h * max(ratio))``; else the
    whole frame; ``y = (H - h) // 2``, ``x = (W - w) // 2``.  The official
    ratio is the literal ``(0.75, 1.3333)``.

    Returns:
      ``(y, x, h, w)`` in pixels.
    """
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(tries):
        target_area = rng.uniform(*scale) * area
        aspect = math.exp(rng.uniform(*log_ratio))
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            y = int(rng.integers(0, height - h + 1))
            x = int(rng.integers(0, width - w + 1))
            return y, x, h, w
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


def random_resized_crop(
    frames: np.ndarray, rng: np.random.Generator, size: int = 224, **box_kwargs
) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """One RandomResizedCrop box for all frames, resized to ``size x size`` (bilinear).

    Returns:
      ``(uint8 [T, size, size, 3], (y, x, h, w))``.
    """
    frames = _check_clip(frames)
    y, x, h, w = sample_resized_crop_box(frames.shape[1], frames.shape[2], rng, **box_kwargs)
    return resize_bilinear(frames[:, y : y + h, x : x + w], size, size), (y, x, h, w)


def sample_erase_box(
    rng: np.random.Generator,
    height: int,
    width: int,
    probability: float = 0.25,
    min_area: float = 0.02,
    max_area: float = 1 / 3,
    min_aspect: float = 0.3,
    max_aspect: float | None = None,
    tries: int = 100,
) -> np.ndarray:
    """Random-erasing box shared by all frames (``RandomErasing(cube=True)``, count 1).

    Skipped when ``u > probability``; else up to ``tries`` times:
    ``area = U(min_area, max_area) * H * W``,
    ``aspect = exp(U(log min_aspect, log max_aspect))`` (``max_aspect``
    defaults to ``1 / min_aspect``), ``h = round(sqrt(area * aspect))``,
    ``w = round(sqrt(area / aspect))``; accepted if ``w < W`` and ``h < H``,
    with ``top ~ U{0..H-h}``, ``left ~ U{0..W-w}``.

    Returns:
      ``np.int32 [4]`` = ``(top, left, h, w)``; all zeros when nothing is
      erased (``h == 0`` means none).
    """
    box = np.zeros(4, dtype=np.int32)
    if rng.random() > probability:
        return box
    max_aspect = max_aspect or 1.0 / min_aspect
    log_aspect = (math.log(min_aspect), math.log(max_aspect))
    area = height * width
    for _ in range(tries):
        target_area = rng.uniform(min_area, max_area) * area
        aspect = math.exp(rng.uniform(*log_aspect))
        h = int(round(math.sqrt(target_area * aspect)))
        w = int(round(math.sqrt(target_area / aspect)))
        if w < width and h < height:
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            box[:] = (top, left, h, w)
            return box
    return box


def apply_erasing(
    normalised_clip: np.ndarray, box: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Reference for the device side of random erasing (mode ``pixel``).

    Fills ``box`` (``top, left, h, w``) of every frame with fresh per-pixel,
    per-channel ``N(0, 1)`` noise (official ``_get_pixels(per_pixel=True)``,
    drawn anew for each frame in ``_erase_cube``).  ``h == 0`` or ``w == 0``:
    unchanged.

    Args:
      normalised_clip: ``float [T, H, W, C]`` after ImageNet normalisation.
      box: ``int [4]`` from :func:`sample_erase_box`.

    Returns:
      a float copy of the clip with the box erased.
    """
    out = np.array(normalised_clip, copy=True)
    top, left, h, w = (int(v) for v in box)
    if h > 0 and w > 0:
        t, c = out.shape[0], out.shape[-1]
        out[:, top : top + h, left : left + w] = rng.standard_normal((t, h, w, c))
    return out


def train_view(
    frames: np.ndarray,
    rng: np.random.Generator,
    size: int = 224,
    rand_augment_spec: str | None = "rand-m7-n4-mstd0.5-inc1",
    flip: bool = True,
    reprob: float = 0.25,
) -> tuple[np.ndarray, np.ndarray]:
    """One training augmentation of a clip, in the official order (spec 5.2).

    RandAugment on the full-resolution frames (skipped if
    ``rand_augment_spec`` is None) -> RandomResizedCrop to ``size`` ->
    horizontal flip with p=0.5 if ``flip`` (off for SSv2) -> erasing box with
    probability ``reprob`` (0 disables).

    Args:
      frames: ``uint8 [T, H, W, 3]``.

    Returns:
      ``(uint8 [T, size, size, 3], erase_box int32 [4])``.
    """
    frames = _check_clip(frames)
    if rand_augment_spec:
        frames = rand_augment(frames, rng, rand_augment_spec)
    clip, _ = random_resized_crop(frames, rng, size)
    if flip and rng.random() < 0.5:
        clip = np.ascontiguousarray(clip[:, :, ::-1])
    if reprob > 0:
        box = sample_erase_box(rng, size, size, probability=reprob)
    else:
        box = np.zeros(4, dtype=np.int32)
    return clip, box


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
    frames = _check_clip(frames)
    new_h, new_w = short_side_size(frames.shape[1], frames.shape[2], size)
    return resize_bilinear(frames, new_h, new_w)


def center_crop(frames: np.ndarray, size: int = 224) -> np.ndarray:
    """Official ``video_transforms.CenterCrop``: ``x1 = int(round((W - size) / 2))``, same for y.

    Returns:
      ``uint8 [T, size, size, 3]``.

    Raises:
      ValueError: a frame smaller than ``size``.
    """
    h, w = frames.shape[1:3]
    if h < size or w < size:
        raise ValueError(f"frames {h}x{w} are smaller than the crop {size}")
    y1 = int(round((h - size) / 2.0))
    x1 = int(round((w - size) / 2.0))
    return frames[:, y1 : y1 + size, x1 : x1 + size]


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
    return resize_bilinear(_check_clip(frames), size, size)
