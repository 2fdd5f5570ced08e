"""Tubelet patch embedding and the fixed sinusoid position table."""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx


@functools.lru_cache(maxsize=32)
def sinusoid_table(num_positions: int, dim: int) -> np.ndarray:
    """Fixed 1-D sinusoid table over the flattened (t, h, w) token index.

    angle[pos, j] = pos / 10000 ** (2 * (j // 2) / dim), sin on even channels and
    cos on odd ones (interleaved), computed in float64 and returned as float32.
    Source: official `get_sinusoid_encoding_table` (models/modeling_finetune.py),
    spec 1.5. It is not a parameter and never appears in checkpoints; any token
    count is simply recomputed (this is the fix for official issue #58).

    Returns:
      float32 [num_positions, dim].
    """
    pos = np.arange(num_positions, dtype=np.float64)[:, None]
    j = np.arange(dim)
    angle = pos / np.power(10000.0, 2 * (j // 2) / dim)[None, :]
    table = np.where(j % 2 == 0, np.sin(angle), np.cos(angle))
    table.flags.writeable = False
    return table.astype(np.float32)


def torch_default_uniform(fan_in: int):
    """PyTorch's default Linear/Conv init, kaiming_uniform(a=sqrt(5)): U(+-1/sqrt(fan_in))."""
    bound = 1.0 / math.sqrt(fan_in)

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


class PatchEmbed(nnx.Module):
    """Conv3d tubelet embedding, kernel = stride = (tubelet, p, p).

    Computed as patchify + one matmul (the same function as the official Conv3d;
    about 8 % faster on CPU than a strided conv, env_notes.md). The kernel is kept
    in the conv layout [tubelet, p, p, 3, width] so converting the official
    `patch_embed.proj.weight` (width, 3, tubelet, p, p) is a transpose.
    Init: PyTorch's default Conv3d init (spec 1.7), fan_in = 3 * tubelet * p * p.
    """

    def __init__(
        self,
        width: int,
        patch_size: int,
        tubelet_size: int,
        *,
        channels: int = 3,
        param_dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        self.patch_size = patch_size
        self.tubelet_size = tubelet_size
        fan_in = channels * tubelet_size * patch_size * patch_size
        init = torch_default_uniform(fan_in)
        shape = (tubelet_size, patch_size, patch_size, channels, width)
        self.kernel = nnx.Param(
            init(rngs.params(), shape, param_dtype), logical_axes=(None, None, None, None, 'embed')
        )
        self.bias = nnx.Param(init(rngs.params(), (width,), param_dtype), logical_axes=('embed',))

    def __call__(self, x: jax.Array, dtype=jnp.float32) -> jax.Array:
        """[batch, frames, height, width, 3] float -> [batch, tokens, width].

        Token order is t-major then h then w, as the official flatten(2).
        """
        b, t, h, w, c = x.shape
        kt, p = self.tubelet_size, self.patch_size
        if t % kt or h % p or w % p:
            raise ValueError(
                f'clip of {t} frames at {h}x{w} does not tile into {kt}x{p}x{p} tubelets;'
                ' set num_frames to a multiple of the tubelet size and input_size to a'
                ' multiple of the patch size'
            )
        x = x.reshape(b, t // kt, kt, h // p, p, w // p, p, c)
        x = x.transpose(0, 1, 3, 5, 2, 4, 6, 7)  # b t' h' w' kt p p c
        x = x.reshape(b, (t // kt) * (h // p) * (w // p), kt * p * p * c)
        kernel = self.kernel[...].reshape(-1, self.kernel.shape[-1])
        y = jnp.dot(x.astype(dtype), kernel.astype(dtype), preferred_element_type=jnp.float32)
        return (y + self.bias[...]).astype(dtype)
