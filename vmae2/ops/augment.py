"""Clip augmentation on the device (``config.data.augment_on='device'``): the host
path's crops, resizes, flip and RandAugment as pure jitted functions of uint8 frames.

The host (``data_pipelines.transforms`` with ``augment_on='device'``) decodes a video
once, puts its frames on a fixed canvas and draws every random parameter with the
host path's own samplers; these functions apply them. One video arrives as

  frames     uint8 [T, Hc, Wc, 3]  the decoded frames at the canvas's top-left (scaled
                                   down by the host only when they do not fit)
  frame_hw   int32 [2]             the decoded size, the unit of the crop boxes
  canvas_hw  int32 [2]             the part of the canvas the frames fill

and each of its views as a crop box ``(top, left, height, width)`` in decoded pixels,
plus, for fine-tuning, a flip and a RandAugment table (op index and argument per slot,
-1: no op). Pixels outside ``canvas_hw`` never reach a result.

References (the tests compare against them): PIL for the pre-training crop resize
(``crops.crop_and_resize``, BILINEAR, antialiased when shrinking) and RandAugment
(``augment.apply_rand_augment``); cv2 ``INTER_LINEAR`` for the fine-tuning
RandomResizedCrop (``crops.resize_bilinear``). Every step rounds or truncates to
uint8 where its reference does, so what differs is float32 here against float64 or
fixed point there (docs/benchmarks.md 13 lists the differences per op).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

FILL = 128  # RandAugment's fill of uncovered pixels (timm fillcolor (128, 128, 128))


# ---------------------------------------------------------------- crops and resizes


def canvas_box(box: jax.Array, frame_hw: jax.Array, canvas_hw: jax.Array) -> jax.Array:
    """A box ``(top, left, h, w)`` in decoded pixels -> float32 canvas pixels.

    The host scaled the frames by ``canvas_hw / frame_hw`` per axis (1 when they fit).
    """
    scale = canvas_hw.astype(jnp.float32) / frame_hw.astype(jnp.float32)
    return box.astype(jnp.float32) * jnp.tile(scale, 2)


def _resample_axis(x, axis: int, start, length, size: int, antialias: bool):
    """Bilinear resample of the window ``[start, start + length)`` of ``axis`` to ``size``.

    Half-pixel centres; with ``antialias`` the triangle widens by ``length / size``
    when shrinking (PIL BILINEAR), without it stays one pixel wide (cv2
    INTER_LINEAR). Only taps inside the window count, renormalised, as when the
    window is cropped out first. ``jax.image.scale_and_translate`` normalises over
    the whole axis, so the window is a 0/1 mask and the result is the ratio of the
    masked image's resample to the mask's.
    """
    n = x.shape[axis]
    centre = jnp.arange(n, dtype=jnp.float32) + 0.5
    inside = ((centre > start) & (centre < start + length)).astype(jnp.float32)
    scale = jnp.reshape(size / length, (1,))
    kw = dict(scale=scale, translation=-start * scale, method='linear', antialias=antialias)
    shape = list(x.shape)
    shape[axis] = size
    bcast = [1] * x.ndim
    bcast[axis] = n
    num = jax.image.scale_and_translate(x * inside.reshape(bcast), shape, (axis,), **kw)
    den = jax.image.scale_and_translate(inside, (size,), (0,), **kw)
    bcast[axis] = size
    return num / den.reshape(bcast)


def _round(v):
    """float -> uint8 rounding half up (PIL's and cv2's fixed-point resizes)."""
    return jnp.floor(jnp.clip(v, 0.0, 255.0) + 0.5).astype(jnp.uint8)


def crop_resize(frames: jax.Array, box: jax.Array, size: int, *, pil: bool) -> jax.Array:
    """Crop ``box`` (float ``(top, left, h, w)`` canvas pixels) of every frame, resized
    to ``size x size``.

    ``pil=True``: PIL ``Image.resize(BILINEAR)`` (the pre-training crop): antialiased,
    width pass then height pass, rounded to uint8 between them as PIL does.
    ``pil=False``: cv2 ``INTER_LINEAR`` / ``F.interpolate(bilinear)`` (the fine-tuning
    RandomResizedCrop): no antialiasing, one rounding.

    Args:
      frames: uint8 [T, Hc, Wc, 3].

    Returns:
      uint8 [T, size, size, 3].
    """
    x = frames.astype(jnp.float32)
    x = _resample_axis(x, 2, box[1], box[3], size, antialias=pil)
    if pil:
        x = _round(x).astype(jnp.float32)
    return _round(_resample_axis(x, 1, box[0], box[2], size, antialias=pil))


# ---------------------------------------------------------------- RandAugment ops
# Each op: (uint8 [T, Hc, Wc, 3], float32 [] argument, int32 [2] valid size) -> uint8,
# per frame as PIL (histograms, means and the image size are those of the valid part).


def _valid(x, hw) -> jax.Array:
    """bool [1, Hc, Wc, 1]: the canvas pixels the frames fill."""
    rows = jnp.arange(x.shape[1]) < hw[0]
    cols = jnp.arange(x.shape[2]) < hw[1]
    return (rows[:, None] & cols[None, :])[None, :, :, None]


def _truncate(v):
    """PIL's ``(UINT8)`` after clamping to [0, 255]: truncation (blend, filter, transform)."""
    return jnp.floor(jnp.clip(v, 0.0, 255.0)).astype(jnp.uint8)


def _apply_lut(x, lut):
    """``lut[t, x, c]`` for int32 ``lut [T, 256, 3]``."""
    t, h, w, c = x.shape
    idx = x.reshape(t, h * w, c).astype(jnp.int32)
    return jnp.take_along_axis(lut, idx, axis=1).reshape(x.shape).astype(jnp.uint8)


def _histogram(x, valid):
    """int32 [T, 256, 3] counts of each level in the valid part, per frame and channel."""
    t, h, w, c = x.shape
    idx = x.reshape(t, h * w, c).astype(jnp.int32)
    ones = jnp.broadcast_to(valid.reshape(1, h * w, 1), idx.shape).astype(jnp.int32)
    frame = jnp.arange(t)[:, None, None]
    channel = jnp.arange(c)[None, None, :]
    return jnp.zeros((t, 256, c), jnp.int32).at[frame, idx, channel].add(ones)


def _luma(x):
    """PIL ``convert('L')``: ``(R*19595 + G*38470 + B*7471 + 0x8000) >> 16``, int32 [T, H, W, 1]."""
    xi = x.astype(jnp.int32)
    return (xi[..., :1] * 19595 + xi[..., 1:2] * 38470 + xi[..., 2:] * 7471 + 0x8000) >> 16


def _product(v, k):
    """The float32 product ``v * k`` rounded once, as PIL's C computes it, for integer
    values ``|v| < 2**12``.

    XLA contracts a product and the sum after it into one FMA (no rounding between),
    which moves PIL's truncated results by a level (0.2 % of pixels in Color). With
    ``k`` split into two 12-bit halves both partial products are exact, so any fusion
    rounds their sum once: the plain product.
    """
    k = jnp.asarray(k, jnp.float32)
    bits = jax.lax.bitcast_convert_type(k, jnp.uint32) & np.uint32(0xFFFFF000)
    hi = jax.lax.bitcast_convert_type(bits, jnp.float32)
    return v * hi + v * (k - hi)


def _blend(degenerate, x, factor):
    """PIL ``Image.blend(degenerate, x, factor)``: float32 ``d + f * (x - d)``, truncated."""
    d = degenerate.astype(jnp.float32)
    return _truncate(d + _product(x.astype(jnp.float32) - d, factor))


def identity(x, arg, hw):
    del arg, hw
    return x


@functools.cache
def _autocontrast_low() -> np.ndarray:
    """Sorted keys ``lo * 65536 + hi * 256 + v`` where PIL's float64 ``int(v * scale +
    offset)`` lands one below the exact ``floor((v - lo) * 255 / (hi - lo))``: 12094 of
    the 8.4M triples with ``lo <= v <= hi``, all where the exact value is an integer
    (never above it)."""
    v = np.arange(256)
    keys = []
    for lo in range(255):
        hi = np.arange(lo + 1, 256)[:, None]
        scale = 255.0 / (hi - lo)
        pil = np.trunc(v * scale + -lo * scale)  # PIL's operations, in its order
        below = (pil < (v - lo) * 255 // (hi - lo)) & (v >= lo) & (v <= hi)
        h, level = np.nonzero(below)
        keys.append(lo * 65536 + (h + lo + 1) * 256 + level)
    return np.concatenate(keys).astype(np.int32)


def auto_contrast(x, arg, hw):
    """``ImageOps.autocontrast``: each channel's [lo, hi] stretched to [0, 255], as a
    per-frame LUT: the exact floor, less one where PIL's float64 lands below it."""
    del arg
    valid = _valid(x, hw)
    lo = jnp.min(jnp.where(valid, x, 255), axis=(1, 2), keepdims=True).astype(jnp.int32)[:, 0]
    hi = jnp.max(jnp.where(valid, x, 0), axis=(1, 2), keepdims=True).astype(jnp.int32)[:, 0]
    levels = jnp.arange(256)[None, :, None]
    exact = jnp.clip((levels - lo) * 255 // jnp.maximum(hi - lo, 1), 0, 255)
    table = jnp.asarray(_autocontrast_low())
    keys = lo * 65536 + hi * 256 + levels
    low = table[jnp.clip(jnp.searchsorted(table, keys), 0, table.size - 1)] == keys
    return _apply_lut(x, jnp.where(hi > lo, exact - low, levels))


def equalize(x, arg, hw):
    """``ImageOps.equalize`` per frame and channel, in PIL's integer arithmetic.

    ``step = (count - count of the top level) // 255``; level ``i`` maps to
    ``(step // 2 + pixels below i) // step`` (clipped to 255); unchanged when one
    level is present or ``step`` is 0.
    """
    del arg
    hist = _histogram(x, _valid(x, hw))
    levels = jnp.arange(256)[None, :, None]
    top = jnp.max(jnp.where(hist > 0, levels, 0), axis=1, keepdims=True)
    step = (hist.sum(1, keepdims=True) - jnp.take_along_axis(hist, top, axis=1)) // 255
    below = jnp.cumsum(hist, axis=1) - hist
    lut = jnp.minimum((step // 2 + below) // jnp.maximum(step, 1), 255)
    keep = ((hist > 0).sum(1, keepdims=True) <= 1) | (step == 0)
    return _apply_lut(x, jnp.where(keep, levels, lut))


def invert(x, arg, hw):
    del arg, hw
    return 255 - x


def posterize(x, arg, hw):
    """``ImageOps.posterize(bits=arg)``: keep the top ``bits`` bits."""
    del hw
    drop = 8 - jnp.clip(arg.astype(jnp.int32), 0, 8)
    return x & (255 - ((1 << drop) - 1)).astype(jnp.uint8)


def solarize(x, arg, hw):
    """``ImageOps.solarize(threshold=arg)``: levels >= threshold inverted."""
    del hw
    return jnp.where(x.astype(jnp.int32) < arg.astype(jnp.int32), x, 255 - x)


def solarize_add(x, arg, hw):
    """timm ``solarize_add(add=arg, threshold=128)``: ``min(255, v + add)`` below 128."""
    del hw
    added = jnp.minimum(x.astype(jnp.int32) + arg.astype(jnp.int32), 255).astype(jnp.uint8)
    return jnp.where(x < 128, added, x)


def color(x, arg, hw):
    """``ImageEnhance.Color(factor=arg)``: blend from the frame's grey (L) version."""
    del hw
    return _blend(_luma(x), x, arg)


def contrast(x, arg, hw):
    """``ImageEnhance.Contrast(factor=arg)``: blend from the frame's mean grey,
    ``int(mean(L) + 0.5)`` over the valid part (exact in integers)."""
    valid = _valid(x, hw)[..., 0]
    total = jnp.sum(jnp.where(valid, _luma(x)[..., 0], 0), axis=(1, 2))
    count = jnp.sum(valid).astype(jnp.int32)
    mean = (2 * total + count) // (2 * count)
    return _blend(mean[:, None, None, None], x, arg)


def brightness(x, arg, hw):
    """``ImageEnhance.Brightness(factor=arg)``: blend from black."""
    del hw
    return _blend(jnp.zeros((), jnp.uint8), x, arg)


_K1 = np.float32(1) / np.float32(13)  # ImageFilter.SMOOTH, divided in float32 as PIL
_K5 = np.float32(5) / np.float32(13)


def _smooth(x, hw):
    """``ImageFilter.SMOOTH`` ([[1,1,1],[1,5,1],[1,1,1]] / 13): PIL's float32 sums in
    its order (0.5, the row below, the row, the row above), truncated; the frame's
    one-pixel border keeps its values."""
    t, h, w, c = x.shape
    p = jnp.pad(x.astype(jnp.float32), ((0, 0), (1, 1), (1, 1), (0, 0)), mode='edge')

    def row(dy, centre):
        r = p[:, dy : dy + h]
        left, mid, right = r[:, :, :w], r[:, :, 1 : w + 1], r[:, :, 2:]
        return _product(left, _K1) + _product(mid, centre) + _product(right, _K1)

    ss = np.float32(0.5) + row(2, _K1)
    ss = ss + row(1, _K5)
    ss = ss + row(0, _K1)
    rows = jnp.arange(h)
    cols = jnp.arange(w)
    inner = ((rows >= 1) & (rows < hw[0] - 1))[:, None] & ((cols >= 1) & (cols < hw[1] - 1))[None]
    return jnp.where(inner[None, :, :, None], _truncate(ss), x)


def sharpness(x, arg, hw):
    """``ImageEnhance.Sharpness(factor=arg)``: blend from the SMOOTH-filtered frame."""
    return _blend(_smooth(x, hw), x, arg)


def _cubic(v1, v2, v3, v4, d):
    """PIL's transform BICUBIC (a = -1), its Horner form and order."""
    p2 = -v1 + v3
    p3 = 2 * (v1 - v2) + v3 - v4
    p4 = -v1 + v2 - v3 + v4
    return v2 + d * (p2 + d * (p3 + d * p4))


def _affine(x, hw, matrix, origin, shift):
    """PIL ``Image.transform(AFFINE, resample=BICUBIC, fillcolor=128)`` of the valid part.

    Output pixel centre ``o`` samples the source at ``matrix @ (o - origin) + origin +
    shift`` (PIL's inverse map, written around ``origin`` to keep float32 sums small);
    samples outside the frame get FILL; inside, 4x4 taps clamped to the frame edge,
    rows interpolated first, then the column, truncated.
    """
    t, h, w, c = x.shape
    oy = jnp.arange(h, dtype=jnp.float32)[:, None] + 0.5 - origin[1]
    ox = jnp.arange(w, dtype=jnp.float32)[None, :] + 0.5 - origin[0]
    xin = matrix[0, 0] * ox + matrix[0, 1] * oy + (origin[0] + shift[0])
    yin = matrix[1, 0] * ox + matrix[1, 1] * oy + (origin[1] + shift[1])
    fh, fw = hw[0].astype(jnp.float32), hw[1].astype(jnp.float32)
    inside = (xin >= 0) & (xin < fw) & (yin >= 0) & (yin < fh)
    xs, ys = xin - 0.5, yin - 0.5
    x0, y0 = jnp.floor(xs), jnp.floor(ys)
    dx, dy = (xs - x0)[None, :, :, None], (ys - y0)[None, :, :, None]
    cols = [jnp.clip(x0.astype(jnp.int32) + i, 0, hw[1] - 1) for i in (-1, 0, 1, 2)]
    rows = [jnp.clip(y0.astype(jnp.int32) + i, 0, hw[0] - 1) for i in (-1, 0, 1, 2)]
    flat = x.reshape(t, h * w, c).astype(jnp.float32)

    def tap(r, col):
        return jnp.take(flat, (r * w + col).reshape(-1), axis=1).reshape(t, h, w, c)

    v = _cubic(*[_cubic(*[tap(r, col) for col in cols], dx) for r in rows], dy)
    return jnp.where(inside[None, :, :, None], _truncate(v), jnp.uint8(FILL))


def _size(hw):
    return hw[::-1].astype(jnp.float32)  # (width, height), PIL's order


_ZERO = np.zeros(2, np.float32)


def rotate(x, arg, hw):
    """``img.rotate(arg degrees, BICUBIC, fillcolor=128)`` about the frame centre."""
    a = -jnp.deg2rad(arg)
    # PIL rounds cos and sin to 15 digits so that quarter turns are exact; float32
    # leaves ~4e-8 where the true value is 0.
    cos, sin = (jnp.where(jnp.abs(v) < 1e-7, 0.0, v) for v in (jnp.cos(a), jnp.sin(a)))
    matrix = jnp.stack([jnp.stack([cos, sin]), jnp.stack([-sin, cos])])
    return _affine(x, hw, matrix, _size(hw) / 2, _ZERO)


def shear_x(x, arg, hw):
    """timm ``shear_x``: AFFINE ``(1, arg, 0, 0, 1, 0)`` (about the top-left corner)."""
    return _affine(x, hw, jnp.eye(2).at[0, 1].set(arg), _ZERO, _ZERO)


def shear_y(x, arg, hw):
    """timm ``shear_y``: AFFINE ``(1, 0, 0, arg, 1, 0)``."""
    return _affine(x, hw, jnp.eye(2).at[1, 0].set(arg), _ZERO, _ZERO)


def translate_x(x, arg, hw):
    """timm ``translate_x_rel``: AFFINE ``(1, 0, arg * width, 0, 1, 0)``."""
    return _affine(x, hw, jnp.eye(2), _ZERO, jnp.stack([arg * _size(hw)[0], 0.0]))


def translate_y(x, arg, hw):
    """timm ``translate_y_rel``: AFFINE ``(1, 0, 0, 0, 1, arg * height)``."""
    return _affine(x, hw, jnp.eye(2), _ZERO, jnp.stack([0.0, arg * _size(hw)[1]]))


# timm's names (``data_pipelines.augment.RAND_INCREASING_OPS``) -> the device op.
RAND_AUGMENT_OPS = {
    'AutoContrast': auto_contrast,
    'Equalize': equalize,
    'Invert': invert,
    'Rotate': rotate,
    'PosterizeIncreasing': posterize,
    'SolarizeIncreasing': solarize,
    'SolarizeAdd': solarize_add,
    'ColorIncreasing': color,
    'ContrastIncreasing': contrast,
    'BrightnessIncreasing': brightness,
    'SharpnessIncreasing': sharpness,
    'ShearX': shear_x,
    'ShearY': shear_y,
    'TranslateXRel': translate_x,
    'TranslateYRel': translate_y,
}


def rand_augment(
    frames: jax.Array, op_index: jax.Array, op_arg: jax.Array, hw: jax.Array, names: Sequence[str]
) -> jax.Array:
    """Apply a clip's RandAugment table slot by slot, the same to every frame.

    A ``lax.switch`` per slot runs only the op drawn (under ``lax.map`` over views;
    a ``vmap`` would run all 15 on every view).

    Args:
      frames: uint8 [T, Hc, Wc, 3].
      op_index: int32 [slots], index into ``names``; -1: the slot is empty.
      op_arg: float32 [slots], the op's argument (``augment.op_level_args``).
      hw: int32 [2], the valid part of the canvas.
      names: op names in the host's order (``augment.RAND_INCREASING_OPS``).

    Returns:
      uint8 [T, Hc, Wc, 3].
    """
    branches = [identity] + [RAND_AUGMENT_OPS[n] for n in names]

    def slot(i, x):
        return jax.lax.switch(op_index[i] + 1, branches, x, op_arg[i], hw)

    return jax.lax.fori_loop(0, op_index.shape[0], slot, frames)


# ---------------------------------------------------------------- views of a batch


def flip(clip: jax.Array, on: jax.Array) -> jax.Array:
    """Mirror every frame left-right when ``on`` (uint8 [T, H, W, 3])."""
    return jnp.where(on, clip[:, :, ::-1], clip)


def _per_video(view_fn, batch: dict, row_keys: Sequence[str]) -> jax.Array:
    """``view_fn(frames, frame_hw, canvas_hw, rows) -> [k, ...]`` for each video, one
    video at a time (lax.map keeps one video's intermediates); rows of a video are
    consecutive (``[videos * k, ...]`` -> ``[videos, k, ...]``)."""
    videos = batch['frames'].shape[0]
    rows = {k: batch[k].reshape((videos, -1) + batch[k].shape[1:]) for k in row_keys}

    def one(v):
        return view_fn(v['frames'], v['frame_hw'], v['canvas_hw'], v['rows'])

    videos_and_rows = {k: batch[k] for k in ('frames', 'frame_hw', 'canvas_hw')}
    out = jax.lax.map(one, {**videos_and_rows, 'rows': rows})
    return out.reshape((-1,) + out.shape[2:])


def pretrain_views(batch: dict, size: int) -> jax.Array:
    """The multi-scale crops of a batch (official GroupMultiScaleCrop + PIL BILINEAR).

    Args:
      batch: ``frames`` uint8 [V, T, Hc, Wc, 3], ``frame_hw`` and ``canvas_hw`` int32
        [V, 2], ``crop_box`` int32 [V * k, 4] (``crops.sample_crop``'s boxes).

    Returns:
      uint8 [V * k, T, size, size, 3], the rows of a video consecutive.
    """

    def views(frames, frame_hw, canvas_hw, rows):
        boxes = canvas_box(rows['crop_box'], frame_hw, canvas_hw)
        return jax.vmap(lambda b: crop_resize(frames, b, size, pil=True))(boxes)

    return _per_video(views, batch, ('crop_box',))


def finetune_views(batch: dict, size: int, names: Sequence[str]) -> jax.Array:
    """The fine-tuning views of a batch (spec 5.2 steps 1 and 3): RandAugment on the
    full frames, RandomResizedCrop (cv2 INTER_LINEAR), flip. Erasing and mixup follow
    in ``mixup.augment_batch`` as on the host path.

    Args:
      batch: as :func:`pretrain_views` plus ``flip`` bool [V * k], ``ra_op`` int32
        [V * k, slots], ``ra_arg`` float32 [V * k, slots].
      names: the op names of ``ra_op`` (``augment.RAND_INCREASING_OPS``).

    Returns:
      uint8 [V * k, T, size, size, 3].
    """

    def views(frames, frame_hw, canvas_hw, rows):
        def one(r):
            x = rand_augment(frames, r['ra_op'], r['ra_arg'], canvas_hw, names)
            x = crop_resize(x, canvas_box(r['crop_box'], frame_hw, canvas_hw), size, pil=False)
            return flip(x, r['flip'])

        return jax.lax.map(one, rows)

    return _per_video(views, batch, ('crop_box', 'flip', 'ra_op', 'ra_arg'))
