"""Parameters and forward GMACs per clip of the VideoMAE V2 sizes.

    python -m vmae2.tools.model_stats [--variants vit_s,vit_b] [--xla [--xla-variants vit_s]]

Per variant it prints the parameter counts (backbone, classifier with a 400-class
head, pre-training model with the depth-4 decoder) and forward GMACs of one clip
(16x224x224; 16x224x224 with patch 14 for g):

* `pt_v1`: pre-training with encoder-only masking (90 % tube, the V1 decoder over
  all masked tokens);
* `pt_dual`: pre-training with dual masking (90 % tube + 50 % running cell);
* `view`: one fine-tuning / test view through the classifier (400 classes).

The analytic numbers come from vmae2.models.flops (fvcore counting: matmuls, attention
matmuls, LayerNorm at 5 ops/element; see there). With `--xla`, the same forward
passes are lowered and compiled with abstract parameters (jax.eval_shape: nothing
large is allocated) and XLA's `cost_analysis()['flops'] / 2` is printed next to
them. XLA counts every elementwise op as well (softmax, GELU, adds), so it runs a
little above the analytic count (about 1 % for ViT-B). Compiling the large sizes on a
CPU is slow: `--xla-variants` limits XLA to some of them.
"""

from __future__ import annotations

import argparse
import math
from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from vmae2.models import flops
from vmae2.models.classifier import Classifier
from vmae2.models.config import VARIANTS, ModelConfig
from vmae2.models.pretrain import PretrainModel
from vmae2.ops import masking
from vmae2.tools.cli import run_cli

NUM_CLASSES = 400

# Published figures (GMACs): ViT-B pre-training from the VideoMAE V2 paper (decoder
# masking ablation); per view from spec 1.9 (mmaction2 reports S 57G, B 180G).
PUBLISHED_PT = {'vit_b': (35.48, 25.87)}
PUBLISHED_VIEW = {'vit_s': 56.9, 'vit_b': 180.3, 'vit_l': 596.8, 'vit_h': 1191.0, 'vit_g': 2542.8}


def _count(tree) -> int:
    return int(sum(math.prod(x.shape) for x in jax.tree.leaves(tree)))


def _abstract(build):
    model = nnx.eval_shape(build)
    graphdef, _ = nnx.split(model)
    return graphdef, nnx.to_pure_dict(nnx.state(model, nnx.Param))


def mask_specs(spec: ModelConfig) -> tuple[masking.MaskSpec, masking.MaskSpec]:
    """(encoder-only masking with the V1 decoder, dual masking), official ratios."""
    v1 = masking.MaskSpec(grid=spec.grid, decoder_mask_type='none', decoder_mask_ratio=0.0)
    dual = masking.MaskSpec(grid=spec.grid, decoder_mask_type='run_cell', decoder_mask_ratio=0.5)
    return v1, dual


def param_counts(spec: ModelConfig, num_classes: int = NUM_CLASSES) -> dict:
    """{'backbone', 'classifier', 'pretrain'}: parameter counts (abstract, no memory)."""
    _, cls = _abstract(lambda: Classifier(spec, num_classes, rngs=nnx.Rngs(0)))
    _, pre = _abstract(lambda: PretrainModel(spec, rngs=nnx.Rngs(0)))
    backbone = _count(cls['encoder'])
    return {'backbone': backbone, 'classifier': _count(cls), 'pretrain': _count(pre)}


def analytic_param_counts(spec: ModelConfig, num_classes: int = NUM_CLASSES):
    """Same as param_counts from the closed form of spec 1.8.

    Block: 4d^2 + 2dh + 8d + h; patch embed 3*tubelet*p^2*d + d; classifier adds
    fc_norm 2d and head dC + C; pre-training adds encoder.norm 2d,
    encoder_to_decoder d*d_dec, mask_token d_dec, decoder blocks, decoder norm 2*d_dec
    and head d_dec*P + P with P = 3*tubelet*p^2.
    """
    a = spec

    def block(d, h):
        return 4 * d * d + 2 * d * h + 8 * d + h

    backbone = spec.patch_dim * a.width + a.width + a.depth * block(a.width, a.mlp_dim)
    dd, pd = a.decoder_width, spec.patch_dim
    decoder = a.decoder_depth * block(dd, a.decoder_mlp_dim) + 2 * dd + dd * pd + pd
    return {
        'backbone': backbone,
        'classifier': backbone + 2 * a.width + a.width * num_classes + num_classes,
        'pretrain': backbone + 2 * a.width + a.width * dd + dd + decoder,
    }


def analytic_gmacs(spec: ModelConfig, num_classes: int = NUM_CLASSES) -> dict:
    """{'pt_v1', 'pt_dual', 'view'} in GMACs per clip (vmae2.flops)."""
    v1, dual = mask_specs(spec)
    return {
        'pt_v1': flops.pretrain_macs(spec, v1.num_visible, v1.num_decode).total / 1e9,
        'pt_dual': flops.pretrain_macs(spec, dual.num_visible, dual.num_decode).total / 1e9,
        'view': flops.classifier_macs(spec, num_classes).total / 1e9,
    }


def _xla_gmacs(fn, *args) -> float:
    cost = jax.jit(fn).lower(*args).compile().cost_analysis()
    if isinstance(cost, (list, tuple)):  # older jax returned one dict per device
        cost = cost[0]
    return float(cost['flops']) / 2 / 1e9


def xla_gmacs(spec: ModelConfig, num_classes: int = NUM_CLASSES) -> dict:
    """The same three numbers from XLA's cost analysis (flops / 2), batch 1, float32."""
    clip = jax.ShapeDtypeStruct(
        (1, spec.num_frames, spec.input_size, spec.input_size, 3), jnp.float32
    )
    # Blocks unrolled: XLA's cost analysis counts a lax.scan body once.
    loop = spec.replace(scan_layers=False)
    g_cls, p_cls = _abstract(lambda: Classifier(loop, num_classes, rngs=nnx.Rngs(0)))
    g_pre, p_pre = _abstract(lambda: PretrainModel(loop, rngs=nnx.Rngs(0)))

    def classify(params, x):
        return nnx.merge(g_cls, nnx.State(params))(x)

    def reconstruct(params, x, visible, decode):
        return nnx.merge(g_pre, nnx.State(params))(x, visible, decode)

    out = {}
    for name, ms in zip(('pt_v1', 'pt_dual'), mask_specs(spec)):
        vis = jax.ShapeDtypeStruct((1, ms.num_visible), jnp.int32)
        dec = jax.ShapeDtypeStruct((1, ms.num_decode), jnp.int32)
        out[name] = _xla_gmacs(reconstruct, p_pre, clip, vis, dec)
    out['view'] = _xla_gmacs(classify, p_cls, clip)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog='python -m vmae2.tools.model_stats')
    parser.add_argument('--variants', default=','.join(VARIANTS))
    parser.add_argument('--xla', action='store_true', help='also XLA cost analysis')
    parser.add_argument(
        '--xla-variants', default=None, help='limit --xla to these (default: all listed)'
    )
    args = parser.parse_args(argv)
    names = [v.strip() for v in args.variants.split(',') if v.strip()]
    specs = {v: ModelConfig.create(v) for v in names}
    xla_names = names if args.xla_variants is None else args.xla_variants.split(',')
    head = (
        f'{"variant":8} {"backbone":>10} {"+K400 hd":>10} {"pretrain":>10}'
        f' {"pt_v1":>8} {"pt_dual":>8} {"view":>8} {"pub view":>8}'
    )
    if args.xla:
        head += f' {"xla v1":>8} {"xla dual":>8} {"xla view":>8}'
    print('params in millions, GMACs per clip (16x224x224), analytic = fvcore counting')
    print(head)
    for v in names:
        spec = specs[v]
        pc = param_counts(spec)
        g = analytic_gmacs(spec)
        pub = PUBLISHED_VIEW.get(v, float('nan'))
        line = (
            f'{v:8} {pc["backbone"] / 1e6:10.2f} {pc["classifier"] / 1e6:10.2f}'
            f' {pc["pretrain"] / 1e6:10.2f} {g["pt_v1"]:8.2f} {g["pt_dual"]:8.2f}'
            f' {g["view"]:8.1f} {pub:8.1f}'
        )
        if args.xla and v in xla_names:
            x = xla_gmacs(spec)
            line += f' {x["pt_v1"]:8.2f} {x["pt_dual"]:8.2f} {x["view"]:8.1f}'
        print(line, flush=True)
    for v, (p1, p2) in PUBLISHED_PT.items():
        if v in names:
            print(f'published {v} pre-training: {p1} (encoder masking), {p2} (dual masking)')
    return 0


if __name__ == '__main__':
    run_cli(main)
