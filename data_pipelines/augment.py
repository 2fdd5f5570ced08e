"""Fine-tuning augmentation: RandAugment, flip, random-erasing boxes, the train view.

Clips are ``np.uint8 [frames, height, width, 3]`` RGB throughout; every random
parameter is drawn once per clip and applied to all its frames.  Sources
(official code, spec 5.2):

* RandAugment ``rand-m7-n4-mstd0.5-inc1``: ``dataset/rand_augment.py``
  (timm-style, video-aware), via ``video_transforms.create_random_augment``
  (step 1); implemented here from the op definitions with PIL.
* Horizontal flip: ``horizontal_flip`` in ``spatial_sampling`` (step 3).
* :func:`sample_train_view` draws every parameter of a view; :func:`train_view`
  applies them on the host, ``vmae2.ops.augment`` on the device
  (``augment_on='device'``, :func:`rand_augment_table` carries the ops).
* Random erasing: ``dataset/random_erasing.py`` ``RandomErasing(cube=True)``
  (step 4).  Here only the box is drawn (``erase_box``: ``int32 [4]`` =
  ``top, left, h, w`` in output-crop pixels, ``h == 0`` meaning no erasing):
  clips cross to the device as uint8 and are normalised there, so the device
  must fill the box with fresh ``N(0, 1)`` noise per frame, pixel and channel
  *after* normalisation (:func:`apply_erasing` is the numpy reference).

The RandomResizedCrop between them is ``crops.sample_resized_crop_box`` +
``crops.resized_crop``.

Randomness comes from a ``numpy.random.Generator`` (the official code mixes
Python ``random`` and ``np.random``): same distributions, different streams.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

from data_pipelines.crops import check_clip, resized_crop, sample_resized_crop_box

__all__ = [
    "RAND_AUGMENT_SPEC",
    "RAND_INCREASING_OPS",
    "FILL",
    "AugOp",
    "parse_rand_augment_spec",
    "op_level_args",
    "sample_rand_augment",
    "apply_rand_augment",
    "rand_augment",
    "draw_flip",
    "sample_erase_box",
    "apply_erasing",
    "ViewDraw",
    "sample_train_view",
    "rand_augment_table",
    "train_view",
]

RAND_AUGMENT_SPEC = "rand-m7-n4-mstd0.5-inc1"  # official --aa
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
    frames = check_clip(frames)
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
    frames: np.ndarray, rng: np.random.Generator, spec: str = RAND_AUGMENT_SPEC
) -> np.ndarray:
    """Draw (:func:`sample_rand_augment`) and apply RandAugment ``spec`` to a clip.

    Returns:
      ``uint8 [T, H, W, 3]``.
    """
    ops = sample_rand_augment(rng, **parse_rand_augment_spec(spec))
    return apply_rand_augment(frames, ops)


def draw_flip(rng: np.random.Generator) -> bool:
    """The flip draw: mirror with probability 1/2 (one ``rng.random() < 0.5``)."""
    return bool(rng.random() < 0.5)


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


@dataclasses.dataclass(frozen=True)
class ViewDraw:
    """The random parameters of one fine-tuning view (:func:`sample_train_view`).

    Attributes:
      ops: the RandAugment ops that fire, in order (empty when RandAugment is off).
      crop_box: the RandomResizedCrop ``(top, left, h, w)`` in frame pixels.
      flip: whether the crop is mirrored.
      erase_box: ``np.int32 [4]`` in crop pixels (``h == 0``: none).
    """

    ops: list[AugOp]
    crop_box: tuple[int, int, int, int]
    flip: bool
    erase_box: np.ndarray


def sample_train_view(
    rng: np.random.Generator,
    height: int,
    width: int,
    size: int = 224,
    rand_augment_spec: str | None = RAND_AUGMENT_SPEC,
    flip: bool = True,
    reprob: float = 0.25,
    crop_scale: tuple[float, float] = (0.08, 1.0),
) -> ViewDraw:
    """Draw one view's parameters in the official order (spec 5.2), for frames of
    ``height x width``: RandAugment ops (none if ``rand_augment_spec`` is None), the
    RandomResizedCrop box (``crops.sample_resized_crop_box``; RandAugment keeps the
    size), the flip if ``flip`` (off for SSv2), the erasing box with probability
    ``reprob`` (0 disables).  The one sampler of the host and device paths.
    ``crop_scale``: the crop's area range as fractions of the frame (official
    (0.08, 1.0); ``(1.0, 1.0)`` keeps the whole frame at a random aspect).
    """
    ops = []
    if rand_augment_spec:
        ops = sample_rand_augment(rng, **parse_rand_augment_spec(rand_augment_spec))
    box = sample_resized_crop_box(height, width, rng, scale=tuple(crop_scale))
    flipped = flip and draw_flip(rng)
    if reprob > 0:
        erase = sample_erase_box(rng, size, size, probability=reprob)
    else:
        erase = np.zeros(4, dtype=np.int32)
    return ViewDraw(ops, box, flipped, erase)


def rand_augment_table(ops: Sequence[AugOp], slots: int) -> tuple[np.ndarray, np.ndarray]:
    """RandAugment ops as the device's fixed-shape table (``vmae2.ops.augment.rand_augment``).

    Returns:
      ``(int32 [slots], float32 [slots])``: the index of each op in
      :data:`RAND_INCREASING_OPS` and its argument (0 for AutoContrast, Equalize,
      Invert), in application order; the slots after the last op hold ``-1`` (none).

    Raises:
      ValueError: more ops than ``slots``.
    """
    if len(ops) > slots:
        raise ValueError(f"{len(ops)} RandAugment ops do not fit {slots} slots")
    index = np.full(slots, -1, dtype=np.int32)
    arg = np.zeros(slots, dtype=np.float32)
    for i, op in enumerate(ops):
        index[i] = RAND_INCREASING_OPS.index(op.name)
        arg[i] = op.args[0] if op.args else 0.0
    return index, arg


def train_view(
    frames: np.ndarray,
    rng: np.random.Generator,
    size: int = 224,
    rand_augment_spec: str | None = RAND_AUGMENT_SPEC,
    flip: bool = True,
    reprob: float = 0.25,
    crop_scale: tuple[float, float] = (0.08, 1.0),
) -> tuple[np.ndarray, np.ndarray]:
    """One training augmentation of a clip on the host, in the official order (spec 5.2).

    The parameters of :func:`sample_train_view`, applied: RandAugment on the
    full-resolution frames -> RandomResizedCrop to ``size`` (``crops.resized_crop``,
    cv2 bilinear) -> flip; the erasing box is returned for the device.

    Args:
      frames: ``uint8 [T, H, W, 3]``.

    Returns:
      ``(uint8 [T, size, size, 3], erase_box int32 [4])``.
    """
    frames = check_clip(frames)
    draw = sample_train_view(
        rng, *frames.shape[1:3], size, rand_augment_spec, flip, reprob, crop_scale
    )
    clip = resized_crop(apply_rand_augment(frames, draw.ops), draw.crop_box, size)
    if draw.flip:
        clip = np.ascontiguousarray(clip[:, :, ::-1])
    return clip, draw.erase_box
