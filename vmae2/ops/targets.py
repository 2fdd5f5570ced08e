"""Input normalisation and pixel targets (official engine_for_pretraining.py, spec 3)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

# ImageNet mean/std on [0, 1] RGB, used for training and testing (spec 8.3).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalize(video: jax.Array) -> jax.Array:
    """uint8 [..., 3] -> float32 (x / 255 - mean) / std, done on the device."""
    x = video.astype(jnp.float32) / 255.0
    return (x - jnp.asarray(IMAGENET_MEAN)) / jnp.asarray(IMAGENET_STD)


def unnormalize(x: jax.Array) -> jax.Array:
    """Inverse of `normalize`, in [0, 1]: the official `images * std + mean`."""
    return x * jnp.asarray(IMAGENET_STD) + jnp.asarray(IMAGENET_MEAN)


def patchify(x: jax.Array, patch_size: int, tubelet_size: int) -> jax.Array:
    """[batch, frames, height, width, 3] -> [batch, tokens, tubelet*p*p, 3].

    The official rearrange 'b c (t p0) (h p1) (w p2) -> b (t h w) (p0 p1 p2) c':
    tokens t-major, pixels (kt, kh, kw) with channels last.
    """
    b, t, h, w, c = x.shape
    kt, p = tubelet_size, patch_size
    x = x.reshape(b, t // kt, kt, h // p, p, w // p, p, c)
    x = x.transpose(0, 1, 3, 5, 2, 4, 6, 7)
    return x.reshape(b, (t // kt) * (h // p) * (w // p), kt * p * p, c)


def unpatchify(
    patches: jax.Array, grid: tuple[int, int, int], patch_size: int, tubelet_size: int
) -> jax.Array:
    """Inverse of `patchify`: [batch, tokens, tubelet*p*p, 3] -> clip."""
    b = patches.shape[0]
    tt, hh, ww = grid
    kt, p = tubelet_size, patch_size
    x = patches.reshape(b, tt, hh, ww, kt, p, p, 3)
    x = x.transpose(0, 1, 4, 2, 5, 3, 6, 7)
    return x.reshape(b, tt * kt, hh * p, ww * p, 3)


def patch_stats(patches: jax.Array, eps: float = 1e-6):
    """Per-patch, per-channel mean and std+eps over the tubelet*p*p pixels.

    Unbiased variance (N-1) and eps added to the std, not the variance (spec 3).
    Returns (mean, std_eps), each [batch, tokens, 1, 3].
    """
    mean = patches.mean(axis=-2, keepdims=True)
    std = jnp.sqrt(patches.var(axis=-2, ddof=1, keepdims=True))
    return mean, std + eps


def pixel_targets(
    x: jax.Array, patch_size: int, tubelet_size: int, normalize_target: bool = True
) -> jax.Array:
    """Reconstruction targets from a normalised clip, float32 [batch, tokens, D].

    D = tubelet*p*p*3 in (kt, kh, kw, c) order, c fastest. With normalize_target
    (official default) each patch is standardised per channel.
    """
    patches = patchify(unnormalize(x.astype(jnp.float32)), patch_size, tubelet_size)
    if normalize_target:
        mean, std = patch_stats(patches)
        patches = (patches - mean) / std
    b, n = patches.shape[:2]
    return jax.lax.stop_gradient(patches.reshape(b, n, -1))
