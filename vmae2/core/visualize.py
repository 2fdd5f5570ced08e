"""Reconstruction pictures: original, masked input and reconstruction per frame."""

from __future__ import annotations

import numpy as np

from vmae2.ops import targets


def reconstruct_clip(
    video: np.ndarray,
    visible_idx: np.ndarray,
    decode_idx: np.ndarray,
    pred: np.ndarray,
    *,
    patch_size: int,
    tubelet_size: int,
    normalize_target: bool = True,
):
    """Builds the masked input and the reconstruction of one clip.

    Args:
      video: uint8 [frames, height, width, 3].
      visible_idx: int [n_visible] encoder-visible tokens.
      decode_idx: int [n_decode] tokens the decoder predicted.
      pred: float [n_decode, tubelet*p*p*3] decoder output (normalised-patch space
        when `normalize_target`; it is mapped back with each patch's own mean and
        std, as the VideoMAE visualisation does).

    Returns:
      (masked, recon): uint8 clips like `video`. Masked tokens are grey in
      `masked`; `recon` shows the original at visible tokens, predictions at
      decoded ones, grey elsewhere.
    """
    t, h, w, _ = video.shape
    grid = (t // tubelet_size, h // patch_size, w // patch_size)
    x = video[None].astype(np.float32) / 255.0
    patches = np.asarray(targets.patchify(x, patch_size, tubelet_size))[0]  # [N, P, 3]
    n = patches.shape[0]
    p = pred.reshape(pred.shape[0], -1, 3)
    if normalize_target:
        mean, std = targets.patch_stats(patches[decode_idx][None])
        p = p * np.asarray(std)[0] + np.asarray(mean)[0]
    grey = np.full_like(patches, 0.5)
    masked = grey.copy()
    masked[visible_idx] = patches[visible_idx]
    recon = grey.copy()
    recon[decode_idx] = np.clip(p, 0.0, 1.0)
    recon[visible_idx] = patches[visible_idx]
    del n

    def to_clip(pp):
        clip = np.asarray(targets.unpatchify(pp[None], grid, patch_size, tubelet_size))[0]
        return (np.clip(clip, 0, 1) * 255 + 0.5).astype(np.uint8)

    return to_clip(masked), to_clip(recon)


def grid_image(
    video: np.ndarray,
    masked: np.ndarray,
    recon: np.ndarray,
    num_show: int = 4,
    pad: int = 2,
    min_side: int = 128,
) -> np.ndarray:
    """Rows original / masked / reconstruction for `num_show` evenly spaced frames.

    Frames smaller than `min_side` pixels are enlarged by an integer factor
    (nearest neighbour, so patch edges stay sharp).

    Returns uint8 [3*(H'+pad)+pad, num_show*(W'+pad)+pad, 3] on a white background.
    """
    t, h, w, _ = video.shape
    k = max(1, -(-min_side // min(h, w)))
    frames = np.linspace(0, t - 1, min(num_show, t)).astype(int)
    h, w = h * k, w * k
    out = np.full((3 * (h + pad) + pad, len(frames) * (w + pad) + pad, 3), 255, np.uint8)
    for r, clip in enumerate((video, masked, recon)):
        for c, f in enumerate(frames):
            y, x = pad + r * (h + pad), pad + c * (w + pad)
            out[y : y + h, x : x + w] = clip[f].repeat(k, axis=0).repeat(k, axis=1)
    return out
