"""ViT variant table of VideoMAE V2.

Numbers from the official `models/modeling_finetune.py` (registry `vit_*`) and
`models/modeling_pretrain.py` (`pretrain_videomae_*`); spec section 1.1 and 1.7.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Variant:
    """Widths and depths of one ViT size.

    Attributes:
      width: encoder embedding dimension d.
      depth: number of encoder blocks.
      num_heads: encoder attention heads.
      mlp_dim: encoder MLP hidden size, `int(width * mlp_ratio)`.
      patch_size: spatial patch side p (pixels).
      decoder_width: pre-training decoder dimension.
      decoder_num_heads: decoder heads (head dim 64).
      decoder_mlp_dim: decoder MLP hidden, `int(decoder_width * mlp_ratio)`: the
        official decoder uses the encoder's mlp_ratio (g: int(512*48/11) = 2234).
    """

    width: int
    depth: int
    num_heads: int
    mlp_dim: int
    patch_size: int
    decoder_width: int
    decoder_num_heads: int
    decoder_mlp_dim: int


# g: mlp_ratio = 48/11, int(1408*48/11) = 6144, int(512*48/11) = 2234 (spec 1.1, 1.7).
VARIANTS: dict[str, Variant] = {
    'vit_s': Variant(384, 12, 6, 1536, 16, 192, 3, 768),
    'vit_b': Variant(768, 12, 12, 3072, 16, 384, 6, 1536),
    'vit_l': Variant(1024, 24, 16, 4096, 16, 512, 8, 2048),
    'vit_h': Variant(1280, 32, 16, 5120, 16, 512, 8, 2048),
    'vit_g': Variant(1408, 40, 16, 6144, 14, 512, 8, 2234),
}


def get_variant(name: str) -> Variant:
    """Returns the variant called `name` (vit_s, vit_b, vit_l, vit_h, vit_g).

    Raises:
      ValueError: for an unknown name, listing the known ones.
    """
    try:
        return VARIANTS[name]
    except KeyError:
        raise ValueError(
            f'unknown model variant {name!r}: choose one of {sorted(VARIANTS)}'
        ) from None
