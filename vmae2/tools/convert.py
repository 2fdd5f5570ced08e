"""Official / Hugging Face VideoMAE V2 checkpoints <-> vmae2 parameter directories.

    python -m vmae2.tools.convert --input vit_b_k710_dl_from_giant.pth --output W \\
        [--model vit_b] [--num-classes 710] [--kind classifier]
    python -m vmae2.tools.convert --input W --output out.pth --to-official

(`python -m vmae2.convert` is the same command under its first name.) The model
size is read from the weights' shapes when --model is not given; `--override
width=64` (repeatable) changes size fields for small test models. Loading is
strict: one error lists every missing, unexpected and mis-shaped key. Layouts
and file formats: vmae2/weights/keymaps.py and files.py.
"""

from __future__ import annotations

import argparse
import os
from typing import Any, Mapping, Sequence

from flax import nnx

from vmae2.core.state import param_tree
from vmae2.errors import CheckpointError
from vmae2.errors import UserError
from vmae2.models.classifier import Classifier
from vmae2.models.config import VARIANTS, ModelConfig
from vmae2.models.pretrain import PretrainModel
from vmae2.weights import files
from vmae2.weights import keymaps
from vmae2.tools.cli import run_cli
from vmae2.weights import surgery


def abstract_params(model: ModelConfig, kind: str, num_classes: int | None = None) -> dict:
    """The params pure dict of a `kind` model as jax.ShapeDtypeStruct (nothing allocated).

    Raises:
      CheckpointError: a classifier without num_classes.
    """
    if kind == keymaps.PRETRAIN:
        return param_tree(nnx.eval_shape(lambda: PretrainModel(model, rngs=nnx.Rngs(0))))
    if not num_classes:
        raise CheckpointError('a classifier needs num_classes (--num-classes)')
    return param_tree(nnx.eval_shape(lambda: Classifier(model, num_classes, rngs=nnx.Rngs(0))))


def _variant_from_shapes(params: Mapping, path: str) -> str:
    name = surgery.describe_sizes(surgery.infer_sizes(params))
    if name not in VARIANTS:
        raise CheckpointError(
            f'{path} is {name}: pass --model and --override FIELD=INT for each size that differs'
        )
    return name


def convert_to_vmae2(
    input_path: str,
    output_dir: str,
    *,
    variant: str | None = None,
    kind: str | None = None,
    num_classes: int | None = None,
    num_frames: int = 16,
    input_size: int = 224,
    tubelet_size: int = 2,
    decoder_depth: int | None = None,
    overrides: Mapping[str, int] | None = None,
    label_map: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Official/HF checkpoint file -> vmae2 params directory (strict).

    Args:
      input_path: .pth/.pt/.bin/.safetensors/.npz file.
      output_dir: directory to create (must not hold `params/` yet).
      variant: size-table row; read from the weights' shapes when None.
      kind: 'pretrain' / 'classifier'; detected from the keys when None.
      num_classes: classifier head size; the checkpoint's head rows when None, or
        len(label_map) when a label map is given.
      num_frames, input_size, tubelet_size: input geometry written to model.json.
      decoder_depth: pre-training decoder depth; counted from the weights when None.
      overrides: size fields that differ from the variant's row.
      label_map: optional K710 -> K400/600/700 row map for the head (spec 8.2).

    Returns:
      The meta dict written to model.json.

    Raises:
      CheckpointError: the checkpoint does not match the model (lists all keys),
        or its size cannot be recognised without --model.
    """
    notes: list[str] = []
    raw = files.read_state_dict(input_path, notes)
    kind = kind or keymaps.detect_kind(raw)
    params, unexpected = keymaps.map_official(raw, kind, notes)
    sizes = surgery.infer_sizes(params)
    if variant is None:
        variant = _variant_from_shapes(params, input_path)
        notes.append(f'model size {variant}, read from the weight shapes')
    if kind == keymaps.CLASSIFIER and num_classes is None:
        if label_map is not None:
            num_classes = len(label_map)
        elif 'head' in params:
            num_classes = int(params['head']['kernel'].shape[-1])
        else:
            raise CheckpointError(f'{input_path} has no head.weight; pass --num-classes')
    model = ModelConfig.create(
        variant, **(overrides or {}), num_frames=num_frames, input_size=input_size,
        tubelet_size=tubelet_size,
        decoder_depth=decoder_depth or sizes.get('decoder_depth', 4),
    )
    template = abstract_params(model, kind, num_classes)
    try:
        loaded, report = surgery.transplant(
            params, template, label_map=label_map, strict=True, unexpected=unexpected
        )
    except CheckpointError as e:
        raise CheckpointError(f'{input_path} does not match the {kind} model:\n{e}') from None
    meta = {
        'kind': kind,
        'variant': variant,
        'overrides': dict(overrides or {}),
        'num_frames': num_frames,
        'input_size': input_size,
        'tubelet_size': tubelet_size,
        'decoder_depth': model.decoder_depth,
        'num_classes': num_classes if kind == keymaps.CLASSIFIER else None,
        'source': os.path.basename(input_path),
        'notes': notes + ([report.head] if report.head else []),
    }
    files.save_params_dir(output_dir, loaded, meta)
    return meta


def convert_to_official(input_dir: str, output_path: str, *, kind: str | None = None) -> str:
    """vmae2 params directory or training workdir -> official .pth/.safetensors/.npz.

    Returns:
      The kind written.
    """
    params, meta = files.read_source(input_dir)
    kind = kind or meta['kind']
    files.write_official(output_path, keymaps.params_to_official(params, kind), kind)
    return kind


def _parse_overrides(items: Sequence[str]) -> dict[str, int]:
    out = {}
    for item in items:
        name, sep, value = item.partition('=')
        if not sep or not value.strip().lstrip('-').isdigit():
            raise UserError(f'--override {item!r}: expected FIELD=INT, e.g. width=64')
        out[name.strip()] = int(value)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog='python -m vmae2.tools.convert',
        description='Official / Hugging Face VideoMAE V2 checkpoints <-> vmae2 directories.',
    )
    parser.add_argument('--input', required=True, help='checkpoint file, or vmae2 dir')
    parser.add_argument('--output', required=True, help='vmae2 dir, or .pth/.safetensors')
    parser.add_argument('--model', default=None, help='vit_s ... vit_g (default: from the shapes)')
    parser.add_argument('--kind', choices=keymaps.KINDS, default=None, help='default: from the keys')
    parser.add_argument('--num-classes', type=int, default=None)
    parser.add_argument('--num-frames', type=int, default=16)
    parser.add_argument('--input-size', type=int, default=224)
    parser.add_argument('--tubelet-size', type=int, default=2)
    parser.add_argument('--decoder-depth', type=int, default=None)
    parser.add_argument('--label-map', default=None, help='label_710to{400,600,700}.json')
    parser.add_argument(
        '--override', action='append', default=[], metavar='FIELD=INT',
        help='change a size field, e.g. --override width=64 (repeatable)',
    )
    parser.add_argument('--to-official', action='store_true', help='vmae2 dir -> official file')
    args = parser.parse_args(argv)
    if args.to_official:
        kind = convert_to_official(args.input, args.output, kind=args.kind)
        print(f'wrote {kind} checkpoint {args.output}')
        return 0
    meta = convert_to_vmae2(
        args.input,
        args.output,
        variant=args.model,
        kind=args.kind,
        num_classes=args.num_classes,
        num_frames=args.num_frames,
        input_size=args.input_size,
        tubelet_size=args.tubelet_size,
        decoder_depth=args.decoder_depth,
        overrides=_parse_overrides(args.override),
        label_map=surgery.load_label_map(args.label_map) if args.label_map else None,
    )
    print(f'wrote {meta["kind"]} {meta["variant"]} parameters to {os.path.abspath(args.output)}')
    for note in meta['notes']:
        print('  ' + note)
    return 0


if __name__ == '__main__':
    run_cli(main)
