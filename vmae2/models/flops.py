"""Analytic multiply-accumulate (MAC) counts of the VideoMAE V2 models.

What is counted (the fvcore convention, `fvcore.nn.FlopCountAnalysis`, which
mmaction2/mmengine and the VideoMAE papers' GFLOPs follow; "FLOPs" there are MACs):

* every matmul as in x out MACs per token: patch embedding (Conv3d = one matmul,
  3*tubelet*p*p x d per token, over ALL tokens, since the official encoder embeds
  before dropping the masked ones, spec 1.7), qkv (d x 3d), proj (d x d), MLP
  fc1/fc2 (d x h, h x d), encoder_to_decoder (d x d_dec per visible token), decoder
  head (d_dec x 3*tubelet*p*p per decoded token), classifier head (d x classes);
* the two attention matmuls, q.k^T and attn.v: n * n * d MACs each per block;
* LayerNorm as 5 operations per element (fvcore's `norm_flop_counter` with affine),
  which `count_layernorm=False` leaves out.

Not counted (fvcore ignores them too): bias adds, residual adds, the q scaling,
softmax, GELU, mean pooling, positional-embedding adds and the token gathers.

With LayerNorm counted this gives ViT-B pre-training 35.48 G (encoder-only masking,
V1 decoder over all 1408 masked tokens) and 25.87 G (dual masking: 160 visible
tokens, decoder over 160 + 784), the VideoMAE V2 paper's figures (Table 1 ablation
on decoder masking), and per 16x224x224 fine-tuning view S 56.9, B 180.3 (matmuls
only) / 180.5 (with LN), matching spec 1.9 and mmaction2's 57G/180G.
"""

from __future__ import annotations

import dataclasses

from vmae2.models.config import ModelConfig

LAYERNORM_OPS_PER_ELEMENT = 5  # fvcore norm_flop_counter, affine LayerNorm


@dataclasses.dataclass(frozen=True)
class Macs:
    """MACs of one forward pass of one clip, split by part (floats, units of 1 MAC)."""

    patch_embed: float = 0.0
    encoder: float = 0.0  # encoder blocks + encoder norm
    encoder_to_decoder: float = 0.0
    decoder: float = 0.0  # decoder blocks + decoder norm
    head: float = 0.0  # decoder head or classifier head (+ fc_norm)

    @property
    def total(self) -> float:
        return self.patch_embed + self.encoder + self.encoder_to_decoder + self.decoder + self.head


def block_macs(tokens: int, width: int, mlp_dim: int, *, count_layernorm: bool = True) -> float:
    """One pre-norm block on `tokens` tokens (spec 1.2, 1.3).

    qkv 3nd^2 + q.k^T n^2 d + attn.v n^2 d + proj nd^2 + MLP 2ndh (+ 2 LayerNorms).
    """
    n, d, h = tokens, width, mlp_dim
    macs = 3 * n * d * d + 2 * n * n * d + n * d * d + 2 * n * d * h
    if count_layernorm:
        macs += 2 * layernorm_ops(n, d)
    return float(macs)


def layernorm_ops(tokens: int, width: int) -> float:
    return float(LAYERNORM_OPS_PER_ELEMENT * tokens * width)


def _patch_embed(cfg: ModelConfig) -> float:
    return float(cfg.num_tokens * cfg.patch_dim * cfg.width)


def classifier_macs(
    a: ModelConfig, num_classes: int, *, count_layernorm: bool = True
) -> Macs:
    """One fine-tuning / test view: all tokens, mean pooling, fc_norm, head (spec 1.6)."""
    n = a.num_tokens
    blocks = a.depth * block_macs(n, a.width, a.mlp_dim, count_layernorm=count_layernorm)
    head = a.width * num_classes + (layernorm_ops(1, a.width) if count_layernorm else 0.0)
    return Macs(patch_embed=_patch_embed(a), encoder=blocks, head=float(head))


def pretrain_macs(
    a: ModelConfig,
    num_visible: int,
    num_decode: int,
    *,
    count_layernorm: bool = True,
) -> Macs:
    """One pre-training clip (spec 1.7, 2.3).

    Args:
      a: the model.
      num_visible: encoder-visible tokens (160 for 90 % tube masking of 1568).
      num_decode: mask tokens given to the decoder: N - num_visible for the V1
        decoder (encoder-only masking), N * (1 - decoder_ratio) for dual masking.
    """
    ln = count_layernorm
    enc = a.depth * block_macs(num_visible, a.width, a.mlp_dim, count_layernorm=ln)
    if ln:
        enc += layernorm_ops(num_visible, a.width)
    seq = num_visible + num_decode
    dec = a.decoder_depth * block_macs(
        seq, a.decoder_width, a.decoder_mlp_dim, count_layernorm=ln
    )
    if ln:
        dec += layernorm_ops(num_decode, a.decoder_width)  # norm after taking the last rows
    return Macs(
        patch_embed=_patch_embed(a),
        encoder=enc,
        encoder_to_decoder=float(num_visible * a.width * a.decoder_width),
        decoder=dec,
        head=float(num_decode * a.decoder_width * a.patch_dim),
    )
