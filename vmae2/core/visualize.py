"""Reconstruction pictures that can be read honestly.

Rows, for a few evenly spaced frames of one clip: the original; the masked input
(grey = hidden from the encoder); the reconstruction; and, for the hidden tokens,
the normalised target and the normalised prediction side by side.

With normalised targets (the official default) the model predicts each patch's
pixels standardised by that patch's own mean and std, so the reconstruction row
can only be drawn by borrowing the true patch mean and std (as the VideoMAE
visualisation does): even a model that predicts zeros draws a plausible blurry
picture there. The two normalised rows show what the model itself predicts: a
prediction that has learned nothing is flat grey, whatever the target looks like.
"""

from __future__ import annotations

import textwrap

import numpy as np
from PIL import Image, ImageDraw

from vmae2.ops import targets

GREY = 0.5
BORROW_NOTE = (
    "reconstruction: predicted patches drawn with each patch's TRUE mean and std; "
    'the normalised rows show what the model predicts by itself'
)


def _to_clip(patches, grid, patch_size, tubelet_size) -> np.ndarray:
    clip = np.asarray(targets.unpatchify(patches[None], grid, patch_size, tubelet_size))[0]
    return (np.clip(clip, 0, 1) * 255 + 0.5).astype(np.uint8)


def reconstruct_clip(
    video: np.ndarray,
    visible_idx: np.ndarray,
    decode_idx: np.ndarray,
    pred: np.ndarray,
    *,
    patch_size: int,
    tubelet_size: int,
    normalize_target: bool = True,
) -> dict[str, np.ndarray]:
    """The rows of the picture as uint8 clips like `video`.

    Args:
      video: uint8 [frames, height, width, 3].
      visible_idx: int [n_visible] encoder-visible tokens.
      decode_idx: int [n_decode] tokens the decoder predicted (the hidden ones).
      pred: float [n_decode, tubelet*p*p*3] decoder output, in the target space.

    Returns:
      {'masked', 'reconstruction', 'target (normalised)', 'prediction (normalised)'}:
      uint8 [frames, height, width, 3]. In the normalised rows a value z is shown as
      0.5 + z / 4 (z = +-2 at the ends of the range), other tokens grey.
    """
    t, h, w, _ = video.shape
    grid = (t // tubelet_size, h // patch_size, w // patch_size)
    x = video[None].astype(np.float32) / 255.0
    patches = np.asarray(targets.patchify(x, patch_size, tubelet_size))[0]  # [N, P, 3]
    p = pred.reshape(pred.shape[0], -1, 3)
    target = patches[decode_idx]
    shown_target, shown_pred, drawn = target, p, p
    if normalize_target:
        mean, std = (np.asarray(a)[0] for a in targets.patch_stats(target[None]))
        shown_target, shown_pred = (target - mean) / std * 0.25 + GREY, p * 0.25 + GREY
        drawn = p * std + mean  # the true patch statistics, borrowed
    grey = np.full_like(patches, GREY)
    rows = {}
    masked = grey.copy()
    masked[visible_idx] = patches[visible_idx]
    rows['masked'] = masked
    recon = grey.copy()
    recon[decode_idx] = np.clip(drawn, 0.0, 1.0)
    recon[visible_idx] = patches[visible_idx]
    rows['reconstruction'] = recon
    for name, values in (('target (normalised)', shown_target), ('prediction (normalised)', shown_pred)):
        panel = grey.copy()
        panel[decode_idx] = np.clip(values, 0.0, 1.0)
        rows[name] = panel
    return {k: _to_clip(v, grid, patch_size, tubelet_size) for k, v in rows.items()}


def grid_image(
    rows: dict[str, np.ndarray],
    num_show: int = 4,
    pad: int = 2,
    min_side: int = 128,
    caption: str = BORROW_NOTE,
) -> np.ndarray:
    """Rows of clips (name -> uint8 [T, H, W, 3]) for `num_show` evenly spaced frames,
    each row named on its left, the caption below.

    Frames smaller than `min_side` pixels are enlarged by an integer factor
    (nearest neighbour, so patch edges stay sharp).

    Returns:
      uint8 [height, width, 3] on a white background.
    """
    clips = list(rows.values())
    t, h, w, _ = clips[0].shape
    k = max(1, -(-min_side // min(h, w)))
    frames = np.linspace(0, t - 1, min(num_show, t)).astype(int)
    h, w = h * k, w * k
    label_w = 150
    # ~6 px per character in PIL's default font; wrap at word boundaries.
    lines = textwrap.wrap(caption, max(40, (label_w + len(frames) * (w + pad) + pad) // 6))
    caption_h = 4 + 12 * len(lines)
    out = np.full(
        (len(clips) * (h + pad) + pad + caption_h, label_w + len(frames) * (w + pad) + pad, 3),
        255,
        np.uint8,
    )
    for r, clip in enumerate(clips):
        for c, f in enumerate(frames):
            y, x = pad + r * (h + pad), label_w + pad + c * (w + pad)
            out[y : y + h, x : x + w] = clip[f].repeat(k, axis=0).repeat(k, axis=1)
    image = Image.fromarray(out)
    draw = ImageDraw.Draw(image)
    for r, name in enumerate(rows):
        draw.text((4, pad + r * (h + pad) + h // 2 - 6), name, fill=(0, 0, 0))
    for i, line in enumerate(lines):
        draw.text((4, out.shape[0] - caption_h + 2 + 12 * i), line, fill=(0, 0, 0))
    return np.asarray(image)
