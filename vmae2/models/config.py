"""ModelConfig: the one typed object that fixes a model's shapes and how it computes.

Every module of `vmae2.models` takes a ModelConfig once, at construction, and
reads its sizes, regularisation and compute options (dtype, attention, remat,
layer scan) from it. The size table is official (models/modeling_finetune.py
registry `vit_*`, models/modeling_pretrain.py `pretrain_videomae_*`; spec 1.1,
1.7); any size field may be overridden for small demo and test models.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax.numpy as jnp

from vmae2.errors import ConfigError

DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}
ATTENTION_IMPLS = ('einsum', 'recompute', 'xla', 'cudnn')
REMAT_POLICIES = ('none', 'full', 'dots_saveable', 'dots_with_no_batch_dims_saveable')

# The fields one row of the variant table fixes.
SIZE_FIELDS = (
    'width',
    'depth',
    'num_heads',
    'mlp_dim',
    'patch_size',
    'decoder_width',
    'decoder_num_heads',
    'decoder_mlp_dim',
)

# (width, depth, heads, mlp_dim, patch, decoder width, decoder heads, decoder mlp_dim).
# g: mlp_ratio 48/11 -> int(1408*48/11) = 6144, decoder int(512*48/11) = 2234: the
# official decoder uses the encoder's mlp_ratio (spec 1.1, 1.7).
VARIANTS: dict[str, tuple[int, ...]] = {
    'vit_s': (384, 12, 6, 1536, 16, 192, 3, 768),
    'vit_b': (768, 12, 12, 3072, 16, 384, 6, 1536),
    'vit_l': (1024, 24, 16, 4096, 16, 512, 8, 2048),
    'vit_h': (1280, 32, 16, 5120, 16, 512, 8, 2048),
    'vit_g': (1408, 40, 16, 6144, 14, 512, 8, 2234),
}


def variant_sizes(variant: str) -> dict[str, int]:
    """The size fields of `variant` (vit_s, vit_b, vit_l, vit_h, vit_g).

    Raises:
      ConfigError: an unknown name, listing the known ones.
    """
    if variant not in VARIANTS:
        raise ConfigError(f'unknown model variant {variant!r}: choose one of {sorted(VARIANTS)}')
    return dict(zip(SIZE_FIELDS, VARIANTS[variant]))


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Shapes, regularisation and compute options of a VideoMAE V2 model.

    Build it with `ModelConfig.create('vit_b', ...)` (table sizes, then
    overrides) or `from_config(cfg)` (an ml_collections run config).

    Attributes:
      variant: the size-table row the sizes started from (recorded in checkpoints).
      width, depth, num_heads, mlp_dim, patch_size: encoder sizes (pixels for p).
      decoder_width, decoder_num_heads, decoder_mlp_dim, decoder_depth: the
        pre-training decoder (depth 4 in every official script).
      num_frames, input_size, tubelet_size: the clip `[num_frames, input_size,
        input_size, 3]` and the tubelet depth (frames per token).
      drop_path_rate: stochastic depth, rising linearly over the blocks.
      head_drop_rate: dropout before the classifier head.
      init_scale: classifier head init multiplier (official 0.001).
      attention_impl: 'recompute' (softmax whose backward recomputes the
        probabilities), 'einsum', or jax.nn.dot_product_attention's 'xla' / 'cudnn'.
      remat_policy: 'none', 'full', 'dots_saveable', 'dots_with_no_batch_dims_saveable'.
      scan_layers: run the blocks as one lax.scan (the parameter tree keeps one
        entry per block).
      dtype: compute dtype name ('float32' or 'bfloat16'); LayerNorm statistics,
        softmax and losses stay float32.
      param_dtype: parameter dtype name (float32).
    """

    variant: str = 'vit_b'
    width: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_dim: int = 3072
    patch_size: int = 16
    decoder_width: int = 384
    decoder_num_heads: int = 6
    decoder_mlp_dim: int = 1536
    decoder_depth: int = 4
    num_frames: int = 16
    input_size: int = 224
    tubelet_size: int = 2
    drop_path_rate: float = 0.0
    head_drop_rate: float = 0.0
    init_scale: float = 0.001
    attention_impl: str = 'recompute'
    remat_policy: str = 'none'
    scan_layers: bool = True
    dtype: str = 'float32'
    param_dtype: str = 'float32'

    def __post_init__(self):
        _validate(self)

    @classmethod
    def create(cls, variant: str = 'vit_b', **fields: Any) -> 'ModelConfig':
        """The `variant` row of the size table with `fields` replaced.

        Raises:
          ConfigError: an unknown variant or field, or values that cannot work.
        """
        unknown = set(fields) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ConfigError(
                f'unknown model fields {sorted(unknown)}; model sizes are {list(SIZE_FIELDS)}'
            )
        return cls(variant=variant, **{**variant_sizes(variant), **fields})

    @classmethod
    def from_config(cls, cfg) -> 'ModelConfig':
        """From a run config: `cfg.model` (variant, overrides, geometry, options) and `cfg.dtype`.

        Raises:
          ConfigError: as `create`.
        """
        m = cfg.model
        overrides = dict(m.get('overrides', {}) or {})
        bad = set(overrides) - set(SIZE_FIELDS)
        if bad:
            raise ConfigError(
                f'model.overrides {sorted(bad)}: only sizes can be overridden, {list(SIZE_FIELDS)}'
            )
        options = {
            k: m[k]
            for k in (
                'num_frames',
                'input_size',
                'tubelet_size',
                'decoder_depth',
                'drop_path_rate',
                'head_drop_rate',
                'init_scale',
                'attention_impl',
                'remat_policy',
                'scan_layers',
            )
            if k in m
        }
        return cls.create(m.variant, **overrides, **options, dtype=cfg.get('dtype', 'float32'))

    def replace(self, **fields: Any) -> 'ModelConfig':
        return dataclasses.replace(self, **fields)

    @property
    def overrides(self) -> dict[str, int]:
        """Size fields that differ from the variant's row (what checkpoints record)."""
        table = variant_sizes(self.variant)
        return {k: getattr(self, k) for k in SIZE_FIELDS if getattr(self, k) != table[k]}

    @property
    def grid(self) -> tuple[int, int, int]:
        """Token grid (T', H', W') = (frames / tubelet, size / p, size / p)."""
        p = self.patch_size
        return (self.num_frames // self.tubelet_size, self.input_size // p, self.input_size // p)

    @property
    def num_tokens(self) -> int:
        return math.prod(self.grid)

    @property
    def patch_dim(self) -> int:
        """Pixels x channels of one tubelet, 3 * tubelet * p * p (1536; g: 1176)."""
        return 3 * self.tubelet_size * self.patch_size**2

    @property
    def compute_dtype(self):
        return DTYPES[self.dtype]

    @property
    def params_dtype(self):
        return DTYPES[self.param_dtype]

    def describe(self) -> str:
        """'vit_b' or 'vit_s (width=64, depth=2)' for logs and error messages."""
        o = self.overrides
        return self.variant + (f' ({", ".join(f"{k}={v}" for k, v in o.items())})' if o else '')


def _choose(name: str, value, choices) -> None:
    if value not in choices:
        raise ConfigError(f'model {name} {value!r}: choose one of {tuple(choices)}')


def _validate(c: ModelConfig) -> None:
    _choose('dtype', c.dtype, DTYPES)
    _choose('param_dtype', c.param_dtype, DTYPES)
    _choose('attention_impl', c.attention_impl, ATTENTION_IMPLS)
    _choose('remat_policy', c.remat_policy, REMAT_POLICIES)
    for name in SIZE_FIELDS + ('num_frames', 'input_size', 'tubelet_size'):
        if getattr(c, name) < 1:
            raise ConfigError(f'model {name} must be >= 1, got {getattr(c, name)}')
    if c.input_size % c.patch_size or c.num_frames % c.tubelet_size:
        raise ConfigError(
            f'input_size {c.input_size} must be a multiple of the patch size {c.patch_size} '
            f'and num_frames {c.num_frames} a multiple of tubelet_size {c.tubelet_size}'
        )
    for width, heads, where in (
        (c.width, c.num_heads, ''),
        (c.decoder_width, c.decoder_num_heads, 'decoder_'),
    ):
        if width % heads:
            raise ConfigError(f'{where}width {width} is not divisible by {where}num_heads {heads}')

