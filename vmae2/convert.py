"""Official PyTorch / Hugging Face VideoMAE checkpoints in and out of vmae2.

Three layouts meet here:

* **official** (OpenGVLab/VideoMAEv2, spec 9.1): flat `state_dict` keys such as
  `encoder.blocks.0.attn.qkv.weight` (pre-training) or `blocks.0.attn.qkv.weight`,
  `fc_norm.weight`, `head.weight` (fine-tuned / distilled classifiers). Torch
  layouts: Linear weight (out, in), Conv3d weight (width, 3, tubelet, p, p).
* **Hugging Face** `transformers` VideoMAE (V1 port, spec 11.2): `videomae.*` keys with
  split `query`/`key`/`value` weights and `q_bias`/`v_bias` (or, as transformers v5
  saves them, `query.bias`/`value.bias`). Read only; it is mapped onto the official
  layout (q/k/v fused into `qkv` as rows [q; k; v]).
* **vmae2 params**: the pure dict `nnx.to_pure_dict(nnx.state(model, nnx.Param))`.
  Dense kernels are [in, out] (torch weight transposed), LayerNorm `scale`/`bias`
  (torch weight/bias), PatchEmbed kernel [tubelet, p, p, 3, width] (Conv3d weight
  permuted (2, 3, 4, 1, 0)); block indices are int keys. The classifier keeps
  patch_embed/blocks under `encoder.`.

The official <-> vmae2 mapping is a rename plus a transpose, so the round trip
`params_to_official(official_to_params(sd, kind), kind) == sd` is bit-exact.

Reading rules (official `run_class_finetuning.py`, spec 9.2-9.3): weights are taken
from `'model'`, else `'module'`, else the top level; a leading `_orig_mod.` (torch
compile) or `module.` (DDP) is stripped; for classifiers a leading `encoder.` or
`backbone.` is stripped. Fixed sinusoid tables (`pos_embed`, `position_embeddings`)
are ignored: they are recomputed by the model (spec 1.5). Files are opened safely:
`.safetensors` with safetensors, `.pth`/`.pt`/`.bin` only with
`torch.load(weights_only=True)` (never plain pickle), `.npz` with
`allow_pickle=False`.

Strict loading (the default) raises one `ConversionError` listing every missing,
unexpected and mis-shaped key. Non-strict loading (`load_params(..., strict=False)`,
what fine-tuning from a pre-training checkpoint needs, spec 9.3) drops what the
target model does not have (decoder, encoder_to_decoder, mask_token, encoder.norm),
keeps missing parameters (fc_norm, head) at their fresh initial values, maps a
710-row head to K400/600/700 by row index when a label map is given (spec 8.2) and
otherwise drops a head whose shape differs; the returned `LoadReport` says which.
Any other shape mismatch is an error even then (as torch's load_state_dict).

vmae2 checkpoint directory (what `python -m vmae2.convert` writes and what
`--config.init_from=W` should read, via `load_params(W, kind, fresh_params,
strict=False)` or `read_params_dir(W)`):

    W/params/      Orbax StandardCheckpointer tree = the params pure dict
                   (block indices stored as strings; read_params_dir turns them back
                   into ints)
    W/model.json   {"format": "vmae2.params", "version": 1, "kind": "pretrain" |
                    "classifier", "variant": "vit_b", "overrides": {...},
                    "num_frames": 16, "input_size": 224, "tubelet_size": 2,
                    "decoder_depth": 4, "num_classes": 710 | null, "source": "..."}

`read_params_dir` also reads a training workdir: the latest
`W/checkpoints/<step>/state` (the train state {'step', 'params', 'opt_state'}
written by vmae2.checkpointing) and restores only its 'params' (Orbax partial
restore: the optimiser state is not read).

CLI:

    python -m vmae2.convert --input vit_b_k710_dl_from_giant.pth --output W \\
        --model vit_b [--num-classes 710] [--kind classifier]
    python -m vmae2.convert --input W --output out.pth --to-official

`--override width=64` (repeatable) changes Variant fields for small test models;
programmatically: convert_to_vmae2(..., overrides={'width': 64}).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

PRETRAIN = 'pretrain'
CLASSIFIER = 'classifier'
KINDS = (PRETRAIN, CLASSIFIER)

FORMAT = 'vmae2.params'
FORMAT_VERSION = 1

_TORCH_HINT = "reading or writing .pth files needs PyTorch: pip install -e '.[torch]'"

# Module names whose `.weight` is a LayerNorm scale (everything else with a
# `.weight` is a Linear, except the Conv3d patch_embed.proj).
_LAYERNORMS = ('norm1', 'norm2', 'norm', 'fc_norm')

# The 12 tensors of one official block (spec 9.1).
_BLOCK_KEYS = (
    'norm1.weight',
    'norm1.bias',
    'attn.q_bias',
    'attn.v_bias',
    'attn.qkv.weight',
    'attn.proj.weight',
    'attn.proj.bias',
    'norm2.weight',
    'norm2.bias',
    'mlp.fc1.weight',
    'mlp.fc1.bias',
    'mlp.fc2.weight',
    'mlp.fc2.bias',
)

# Keys that are fixed sinusoid tables, never parameters (spec 1.5, 11).
_FIXED_TABLES = re.compile(r'(^|\.)(pos_embed|position_embeddings)$')

# Pre-training-only official keys, dropped when a classifier loads a pre-training
# checkpoint (after the `encoder.` prefix is stripped; spec 9.3 step 5).
_PRETRAIN_ONLY = re.compile(r'^(decoder\.|encoder_to_decoder\.|mask_token$|norm\.)')


class ConversionError(ValueError):
    """A checkpoint does not fit the model; the message lists every problem."""


# --------------------------------------------------------------------------- #
# Key mapping official <-> vmae2 params.
# --------------------------------------------------------------------------- #


def _to_int(part: str) -> int | str:
    return int(part) if part.isdigit() else part


def _official_to_path(key: str, kind: str) -> tuple[tuple[Any, ...], str] | None:
    """Official key -> (params path, transform) or None if it has no home.

    transform: 'id', 'T' (Linear weight (out, in) -> kernel [in, out]) or 'conv'
    (Conv3d weight (width, 3, kt, p, p) -> [kt, p, p, 3, width]).
    """
    parts = key.split('.')
    if kind == CLASSIFIER:
        if parts[0] in ('patch_embed', 'blocks'):
            parts = ['encoder'] + parts
        elif parts[0] not in ('fc_norm', 'head'):
            return None
    else:
        if parts[0] not in ('encoder', 'decoder', 'encoder_to_decoder', 'mask_token'):
            return None
    if not _official_key_ok(parts, kind):
        return None
    leaf = parts[-1]
    if parts[-3:-1] == ['patch_embed', 'proj']:
        path = parts[:-2] + (['kernel'] if leaf == 'weight' else ['bias'])
        transform = 'conv' if leaf == 'weight' else 'id'
    elif leaf == 'weight' and parts[-2] in _LAYERNORMS:
        path, transform = parts[:-1] + ['scale'], 'id'
    elif leaf == 'weight':
        path, transform = parts[:-1] + ['kernel'], 'T'
    else:
        path, transform = parts, 'id'
    return tuple(_to_int(p) for p in path), transform


_BLOCK_RE = r'blocks\.\d+\.(' + '|'.join(re.escape(k) for k in _BLOCK_KEYS) + r')'
_OFFICIAL_RE = {
    PRETRAIN: re.compile(
        r'^(encoder\.patch_embed\.proj\.(weight|bias)'
        rf'|(encoder|decoder)\.{_BLOCK_RE}'
        r'|(encoder|decoder)\.norm\.(weight|bias)'
        r'|decoder\.head\.(weight|bias)'
        r'|encoder_to_decoder\.weight|mask_token)$'
    ),
    CLASSIFIER: re.compile(
        r'^(encoder\.patch_embed\.proj\.(weight|bias)'
        rf'|encoder\.{_BLOCK_RE}'
        r'|fc_norm\.(weight|bias)|head\.(weight|bias))$'
    ),
}


def _official_key_ok(parts: list[str], kind: str) -> bool:
    return bool(_OFFICIAL_RE[kind].match('.'.join(parts)))


def _path_to_official(path: Sequence[Any], kind: str) -> tuple[str, str]:
    """Inverse of _official_to_path: params path -> (official key, transform)."""
    parts = [str(p) for p in path]
    leaf = parts[-1]
    if len(parts) > 1 and parts[-2] == 'patch_embed':
        parts = parts[:-1] + ['proj', 'weight' if leaf == 'kernel' else 'bias']
        transform = 'conv' if leaf == 'kernel' else 'id'
    elif leaf == 'scale':
        parts, transform = parts[:-1] + ['weight'], 'id'
    elif leaf == 'kernel':
        parts, transform = parts[:-1] + ['weight'], 'T'
    else:
        transform = 'id'
    if kind == CLASSIFIER and parts[0] == 'encoder':
        parts = parts[1:]
    return '.'.join(parts), transform


def _forward(x: np.ndarray, transform: str) -> np.ndarray:
    if transform == 'T':
        return np.ascontiguousarray(x.T)
    if transform == 'conv':
        return np.ascontiguousarray(x.transpose(2, 3, 4, 1, 0))
    return x


def _backward(x: np.ndarray, transform: str) -> np.ndarray:
    if transform == 'T':
        return np.ascontiguousarray(x.T)
    if transform == 'conv':
        return np.ascontiguousarray(x.transpose(4, 3, 0, 1, 2))
    return np.ascontiguousarray(x)


def _official_shape(shape: tuple[int, ...], transform: str) -> tuple[int, ...]:
    """vmae2 parameter shape -> the torch shape of its official tensor."""
    if transform == 'T':
        return tuple(reversed(shape))
    if transform == 'conv':
        return tuple(shape[i] for i in (4, 3, 0, 1, 2))
    return tuple(shape)


def flatten(tree: Mapping[Any, Any], prefix: tuple[Any, ...] = ()) -> dict[tuple[Any, ...], Any]:
    """Nested dict -> {path tuple: leaf}."""
    out = {}
    for k, v in tree.items():
        if isinstance(v, Mapping):
            out.update(flatten(v, prefix + (k,)))
        else:
            out[prefix + (k,)] = v
    return out


def unflatten(flat: Mapping[tuple[Any, ...], Any]) -> dict[Any, Any]:
    """{path tuple: leaf} -> nested dict."""
    out: dict[Any, Any] = {}
    for path, v in flat.items():
        d = out
        for k in path[:-1]:
            d = d.setdefault(k, {})
        d[path[-1]] = v
    return out


def _path_str(path: Sequence[Any]) -> str:
    return '.'.join(str(p) for p in path)


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f'kind {kind!r}: choose one of {KINDS}')


def _required_official_keys(keys: Iterable[str], kind: str) -> set[str]:
    """Keys a complete official checkpoint of `kind` must have, given the block
    indices present (depths are inferred as max index + 1)."""
    keys = list(keys)
    req: set[str] = set()
    prefixes = [''] if kind == CLASSIFIER else ['encoder.', 'decoder.']
    for pre in prefixes:
        n = _count_blocks(keys, pre)
        req.update(f'{pre}blocks.{i}.{s}' for i in range(n) for s in _BLOCK_KEYS)
    if kind == CLASSIFIER:
        req.update(
            ['patch_embed.proj.weight', 'patch_embed.proj.bias', 'fc_norm.weight', 'fc_norm.bias']
            + ['head.weight', 'head.bias']
        )
    else:
        req.update(
            ['encoder.patch_embed.proj.weight', 'encoder.patch_embed.proj.bias']
            + ['encoder.norm.weight', 'encoder.norm.bias', 'decoder.norm.weight']
            + ['decoder.norm.bias', 'decoder.head.weight', 'decoder.head.bias']
            + ['encoder_to_decoder.weight', 'mask_token']
        )
    return req


def _count_blocks(keys: Iterable[str], prefix: str) -> int:
    """Number of blocks under `prefix` ('encoder.', 'decoder.' or ''): max index + 1."""
    pat = re.compile(rf'^{re.escape(prefix)}blocks\.(\d+)\.')
    idx = [int(m.group(1)) for k in keys if (m := pat.match(k))]
    return max(idx) + 1 if idx else 0


# --------------------------------------------------------------------------- #
# Canonicalisation: unwrap, strip prefixes, Hugging Face -> official.
# --------------------------------------------------------------------------- #

_HF_BLOCK_RENAMES = (
    ('attention.output.dense.', 'attn.proj.'),
    ('layernorm_before.', 'norm1.'),
    ('layernorm_after.', 'norm2.'),
    ('intermediate.dense.', 'mlp.fc1.'),
    ('output.dense.', 'mlp.fc2.'),
)


def is_hf_layout(state_dict: Mapping[str, Any]) -> bool:
    """True for a Hugging Face transformers VideoMAE state dict (spec 11.2)."""
    return any(
        k.startswith('videomae.') or '.attention.attention.' in k or 'decoder_layers.' in k
        for k in state_dict
    )


def hf_to_official(state_dict: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Maps a transformers VideoMAE state dict onto the official pre-training names.

    Encoder keys get the `encoder.` prefix (a classifier strips it again), the HF
    `classifier` becomes `head`, `videomae.layernorm` becomes `encoder.norm`; the
    split q/k/v weights (each (d, d), torch layout) are fused into `attn.qkv.weight`
    (3d, d) = concat([q, k, v], 0) (the inverse of the HF converter's row split,
    spec 11.2). Both `q_bias`/`v_bias` (hub files) and `query.bias`/`value.bias`
    (transformers v5 in memory) are accepted.

    Raises:
      ConversionError: a block lacks one of query/key/value, or `key.bias` is non-zero
        (the official key has no bias, spec 1.3).
    """
    out: dict[str, np.ndarray] = {}
    qkv: dict[str, dict[str, np.ndarray]] = {}
    errors = []
    for key, v in state_dict.items():
        m = re.match(r'^(videomae\.encoder\.layer|decoder\.decoder_layers)\.(\d+)\.(.*)$', key)
        if m:
            pre = 'encoder' if m.group(1).startswith('videomae') else 'decoder'
            block = f'{pre}.blocks.{m.group(2)}.'
            rest = m.group(3)
            a = re.match(r'^attention\.attention\.(query|key|value)\.weight$', rest)
            if a:
                qkv.setdefault(block, {})[a.group(1)] = v
                continue
            b = re.match(r'^attention\.attention\.(q_bias|v_bias|query\.bias|value\.bias)$', rest)
            if b:
                name = 'q_bias' if b.group(1).startswith('q') else 'v_bias'
                out[block + 'attn.' + name] = v
                continue
            if rest == 'attention.attention.key.bias':
                if np.any(np.asarray(v) != 0):
                    errors.append(f'{key}: non-zero key bias (official attention has none)')
                continue
            for old, new in _HF_BLOCK_RENAMES:
                if rest.startswith(old):
                    rest = new + rest[len(old) :]
                    break
            out[block + rest] = v
            continue
        if key.startswith('videomae.embeddings.patch_embeddings.projection.'):
            out['encoder.patch_embed.proj.' + key.rsplit('.', 1)[1]] = v
        elif key.startswith('videomae.layernorm.'):
            out['encoder.norm.' + key.rsplit('.', 1)[1]] = v
        elif key.startswith('classifier.'):
            out['head.' + key.rsplit('.', 1)[1]] = v
        else:
            out[key] = v
    for block, parts in sorted(qkv.items()):
        missing = [n for n in ('query', 'key', 'value') if n not in parts]
        if missing:
            errors.append(f'{block}attention: missing {missing} weights')
            continue
        out[block + 'attn.qkv.weight'] = np.concatenate(
            [np.asarray(parts[n]) for n in ('query', 'key', 'value')], axis=0
        )
    if errors:
        raise ConversionError('Hugging Face checkpoint:\n  ' + '\n  '.join(errors))
    return out


def canonicalize(
    state_dict: Mapping[str, Any], kind: str, notes: list[str] | None = None
) -> dict[str, np.ndarray]:
    """Any supported state dict -> official key layout for `kind`.

    Strips `_orig_mod.` / `module.` prefixes, maps the Hugging Face layout, drops
    fixed sinusoid tables, then for a classifier strips a leading `encoder.` or
    `backbone.` (official step 3, spec 9.3) and for a pre-training model adds the
    `encoder.` prefix to bare `patch_embed.`/`blocks.` keys.

    Args:
      state_dict: flat {key: array} (numpy or anything np.asarray accepts).
      kind: 'pretrain' or 'classifier'.
      notes: if given, human-readable notes on what was changed are appended.

    Returns:
      {official key: np.ndarray}.
    """
    _check_kind(kind)
    notes = notes if notes is not None else []
    sd: dict[str, np.ndarray] = {}
    for k, v in state_dict.items():
        k2 = k
        for pre in ('_orig_mod.', 'module.'):
            if k2.startswith(pre):
                k2 = k2[len(pre) :]
        sd[k2] = np.asarray(v)
    if any(k.startswith(('_orig_mod.', 'module.')) for k in state_dict):
        notes.append('stripped _orig_mod./module. prefixes')
    if is_hf_layout(sd):
        sd = hf_to_official(sd)
        notes.append('mapped the Hugging Face transformers layout (q/k/v fused into qkv)')
    for k in [k for k in sd if _FIXED_TABLES.search(k)]:
        del sd[k]
        notes.append(f'ignored {k} (fixed sinusoid table, recomputed by the model)')
    out = {}
    for k, v in sd.items():
        if kind == CLASSIFIER:
            for pre in ('backbone.', 'encoder.'):
                if k.startswith(pre):
                    k = k[len(pre) :]
                    break
        elif k.startswith(('patch_embed.', 'blocks.')):
            k = 'encoder.' + k
        out[k] = v
    return out


def detect_kind(state_dict: Mapping[str, Any]) -> str:
    """'classifier' if the (canonical or HF) state dict has a head/fc_norm, else 'pretrain'."""
    keys = [k.removeprefix('_orig_mod.').removeprefix('module.') for k in state_dict]
    if any(k.startswith(('head.', 'fc_norm.', 'classifier.')) for k in keys):
        return CLASSIFIER
    return PRETRAIN


# --------------------------------------------------------------------------- #
# Strict conversion both ways.
# --------------------------------------------------------------------------- #


def official_to_params(state_dict: Mapping[str, Any], kind: str) -> dict[Any, Any]:
    """Official (or HF) state dict -> vmae2 params pure dict, strictly.

    Args:
      state_dict: flat {key: array}, torch layouts (see module docstring), any
        prefixes/layout `canonicalize` understands.
      kind: 'pretrain' (PretrainModel) or 'classifier' (Classifier).

    Returns:
      Nested dict of np.ndarray (same dtypes as the input), block indices as ints.

    Raises:
      ConversionError: listing every key that has no home in `kind` and every key
        a complete checkpoint must have but lacks (depths inferred from the block
        indices present). Shapes are checked against a model by `load_params`.
    """
    sd = canonicalize(state_dict, kind)
    flat, unexpected = {}, []
    for key, v in sd.items():
        m = _official_to_path(key, kind)
        if m is None:
            unexpected.append(key)
            continue
        path, transform = m
        flat[path] = _forward(np.asarray(v), transform)
    missing = sorted(_required_official_keys(sd, kind) - set(sd))
    _raise_if(kind, missing=missing, unexpected=sorted(unexpected))
    return unflatten(flat)


def params_to_official(params: Mapping[Any, Any], kind: str) -> dict[str, np.ndarray]:
    """vmae2 params pure dict -> official state dict (spec 9.1 key layout).

    Args:
      params: nested dict of arrays (numpy or jax), as nnx.to_pure_dict gives.
      kind: 'pretrain' or 'classifier'.

    Returns:
      {official key: C-contiguous np.ndarray in torch layout}; bit-exact inverse of
      official_to_params.
    """
    _check_kind(kind)
    out = {}
    for path, v in flatten(params).items():
        key, transform = _path_to_official(path, kind)
        out[key] = _backward(np.asarray(v), transform)
    return out


def _raise_if(
    kind: str,
    *,
    missing: Sequence[str] = (),
    unexpected: Sequence[str] = (),
    mis_shaped: Sequence[str] = (),
) -> None:
    lines = []
    if missing:
        lines.append(f'missing keys ({len(missing)}): ' + ', '.join(missing))
    if unexpected:
        lines.append(f'unexpected keys ({len(unexpected)}): ' + ', '.join(unexpected))
    if mis_shaped:
        lines.append(f'mis-shaped keys ({len(mis_shaped)}): ' + '; '.join(mis_shaped))
    if kind == CLASSIFIER and any(_PRETRAIN_ONLY.match(k) for k in unexpected):
        lines.append(
            'this looks like a pre-training checkpoint: load it with strict=False to drop the '
            'decoder and keep fc_norm/head freshly initialised (spec 9.3)'
        )
    if lines:
        raise ConversionError(
            f'checkpoint does not match the {kind} model:\n  ' + '\n  '.join(lines)
        )


# --------------------------------------------------------------------------- #
# Loading into a model's parameters (strict or not).
# --------------------------------------------------------------------------- #


@dataclasses.dataclass
class LoadReport:
    """What load_params did.

    Attributes:
      loaded: official keys copied into the parameters.
      dropped: {official key: reason} for checkpoint tensors that were not used.
      fresh: parameter paths ('fc_norm.scale', ...) left at their initial values.
      head: a note when the head was converted by a label map, else ''.
      notes: canonicalisation notes (prefixes stripped, HF layout mapped, ...).
    """

    loaded: list[str] = dataclasses.field(default_factory=list)
    dropped: dict[str, str] = dataclasses.field(default_factory=dict)
    fresh: list[str] = dataclasses.field(default_factory=list)
    head: str = ''
    notes: list[str] = dataclasses.field(default_factory=list)

    def summary(self) -> str:
        lines = [f'loaded {len(self.loaded)} tensors']
        lines += self.notes
        if self.head:
            lines.append(self.head)
        if self.dropped:
            lines.append(f'dropped {len(self.dropped)}:')
            lines += [f'  {k}: {r}' for k, r in sorted(self.dropped.items())]
        if self.fresh:
            lines.append(f'freshly initialised {len(self.fresh)}: ' + ', '.join(self.fresh))
        return '\n'.join(lines)


def load_label_map(path: str) -> list[int]:
    """Reads misc/label_710to{400,600,700}.json: a JSON list, element j = K710 row of class j."""
    with open(path) as f:
        data = json.load(f)
    if not isinstance(data, list) or not all(isinstance(i, int) for i in data):
        raise ValueError(f'{path}: expected a JSON list of ints (spec 8.2)')
    return data


def load_params(
    source: str | os.PathLike | Mapping[str, Any],
    kind: str,
    init_params: Mapping[Any, Any],
    *,
    strict: bool = True,
    label_map: Sequence[int] | None = None,
) -> tuple[dict[Any, Any], LoadReport]:
    """Loads a checkpoint into the parameters of a `kind` model.

    Args:
      source: an official/HF file (.pth, .pt, .bin, .safetensors, .npz), a vmae2
        directory (see module docstring) or a flat state dict.
      kind: the target model, 'pretrain' or 'classifier'.
      init_params: the target's freshly initialised params pure dict (arrays), or
        jax.ShapeDtypeStruct leaves when strict (nothing is kept fresh then).
      strict: raise on any missing, unexpected or mis-shaped key (default). When
        False: follow the official fine-tuning loader (spec 9.3).
      label_map: for a classifier: maps a checkpoint head with len(label_map) !=
        its rows by row index (`head.weight[label_map]`, spec 8.2, e.g. K710 ->
        K400 with misc/label_710to400.json). Applied in strict mode too.

    Returns:
      (params, report): params has init_params' structure, loaded leaves as numpy
      arrays cast to init_params' dtypes, fresh leaves taken from init_params.

    Raises:
      ConversionError: strict and anything does not match; or (either mode) a
        non-head tensor has the wrong shape, or a label map does not fit.
    """
    _check_kind(kind)
    report = LoadReport()
    if isinstance(source, Mapping):
        raw = dict(source)
    else:
        raw = read_any(str(source), report.notes)
    sd = canonicalize(raw, kind, report.notes)
    template = flatten(init_params)
    expected = {}
    for path, leaf in template.items():
        key, transform = _path_to_official(path, kind)
        expected[key] = (path, transform, leaf)

    if kind == CLASSIFIER and 'head.weight' in sd and 'head.weight' in expected:
        rows = expected['head.weight'][2].shape[1]
        have = sd['head.weight'].shape[0]
        if label_map is not None and have != rows:
            lm = np.asarray(label_map, np.int64)
            if lm.shape != (rows,) or lm.min() < 0 or lm.max() >= have:
                raise ConversionError(
                    f'label map of length {lm.size} (values {lm.min()}..{lm.max()}) cannot map a '
                    f'{have}-class head to {rows} classes'
                )
            sd['head.weight'] = sd['head.weight'][lm]
            if 'head.bias' in sd:
                sd['head.bias'] = sd['head.bias'][lm]
            report.head = f'head: {have} classes -> {rows} by label map (spec 8.2)'
        elif have != rows and not strict:
            for k in ('head.weight', 'head.bias'):
                if k in sd:
                    report.dropped[k] = f'head has {have} classes, the model {rows}'
                    del sd[k]

    unexpected, mis_shaped, bad = [], [], set()
    loaded: dict[tuple[Any, ...], np.ndarray] = {}
    for key, v in sd.items():
        if key not in expected:
            if strict:
                unexpected.append(key)
            else:
                reason = (
                    'pre-training only, not used by the classifier (spec 9.3)'
                    if kind == CLASSIFIER and _PRETRAIN_ONLY.match(key)
                    else 'not in the model'
                )
                report.dropped[key] = reason
            continue
        path, transform, leaf = expected[key]
        want = _official_shape(tuple(leaf.shape), transform)
        if tuple(v.shape) != want:
            mis_shaped.append(f'{key}: checkpoint {tuple(v.shape)}, model {want}')
            bad.add(key)
            continue
        loaded[path] = _forward(v, transform).astype(leaf.dtype, copy=False)
        report.loaded.append(key)
    missing = [k for k, (path, _, _) in expected.items() if path not in loaded and k not in bad]
    if strict:
        _raise_if(
            kind, missing=sorted(missing), unexpected=sorted(unexpected), mis_shaped=mis_shaped
        )
    elif mis_shaped:
        _raise_if(kind, mis_shaped=mis_shaped)
    out = {}
    for path, leaf in template.items():
        if path in loaded:
            out[path] = loaded[path]
        else:
            if not hasattr(leaf, '__array__'):
                raise ConversionError(
                    f'{_path_str(path)} is missing from the checkpoint and init_params holds no '
                    'values to keep'
                )
            out[path] = leaf
            report.fresh.append(_path_str(path))
    return unflatten(out), report


# --------------------------------------------------------------------------- #
# Files.
# --------------------------------------------------------------------------- #


def _import_torch():
    try:
        import torch  # noqa: PLC0415
    except ImportError as e:
        raise ImportError(_TORCH_HINT) from e
    return torch


def _unwrap(obj: Any, notes: list[str]) -> Mapping[str, Any]:
    if isinstance(obj, Mapping):
        for name in ('model', 'module'):
            if name in obj and isinstance(obj[name], Mapping):
                notes.append(f"weights read from '{name}'")
                return obj[name]
        return obj
    raise ConversionError(f'checkpoint holds a {type(obj).__name__}, not a state dict')


def read_state_dict(path: str, notes: list[str] | None = None) -> dict[str, np.ndarray]:
    """Reads a flat {key: np.ndarray} from an official, HF or converted file.

    `.safetensors` via safetensors.numpy (bfloat16 files via torch if installed),
    `.pth`/`.pt`/`.bin` via torch.load(map_location='cpu', weights_only=True) then
    'model' / 'module' / top level, `.npz` via np.load(allow_pickle=False).
    bfloat16 tensors become float32 (numpy has no bfloat16); other dtypes are kept.

    Raises:
      ImportError: a .pth without torch installed (names the extra to install).
      ValueError: an unknown file extension.
      FileNotFoundError: no such file.
    """
    notes = notes if notes is not None else []
    if not os.path.exists(path):
        raise FileNotFoundError(path)
    ext = os.path.splitext(path)[1].lower()
    if ext == '.safetensors':
        import safetensors.numpy  # noqa: PLC0415

        try:
            return dict(safetensors.numpy.load_file(path))
        except (TypeError, ValueError):  # e.g. bfloat16, which numpy lacks
            torch = _import_torch()
            import safetensors.torch  # noqa: PLC0415

            sd = safetensors.torch.load_file(path, device='cpu')
            return {k: _torch_to_numpy(v, torch) for k, v in sd.items()}
    if ext in ('.pth', '.pt', '.bin'):
        torch = _import_torch()
        obj = torch.load(path, map_location='cpu', weights_only=True)
        sd = _unwrap(obj, notes)
        return {k: _torch_to_numpy(v, torch) for k, v in sd.items() if isinstance(v, torch.Tensor)}
    if ext == '.npz':
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    raise ValueError(
        f'{path}: unknown checkpoint type {ext!r}; use .pth, .pt, .safetensors or .npz'
    )


def _torch_to_numpy(t, torch) -> np.ndarray:
    t = t.detach().cpu()
    if t.dtype == torch.bfloat16:
        t = t.float()
    return t.numpy()


def read_any(path: str, notes: list[str] | None = None) -> dict[str, np.ndarray]:
    """A file (read_state_dict) or a vmae2 directory (as an official state dict)."""
    if os.path.isdir(path):
        params, meta = read_params_dir(path)
        kind = meta['kind']
        if notes is not None:
            notes.append(f'read vmae2 {kind} parameters from {path}')
        return params_to_official(params, kind)
    return read_state_dict(path, notes)


def write_official(path: str, state_dict: Mapping[str, np.ndarray], kind: str) -> None:
    """Writes an official-layout state dict.

    `.pth`/`.pt`: torch.save({'model': sd}) for pre-training, {'module': sd} for a
    classifier (the released files' nesting, spec 9.2; the official loaders then
    load it with strict=True). `.safetensors`: the flat dict. `.npz`: np.savez.

    Raises:
      ImportError: .pth without torch. ValueError: unknown extension.
    """
    _check_kind(kind)
    ext = os.path.splitext(path)[1].lower()
    arrays = {k: np.ascontiguousarray(v) for k, v in state_dict.items()}
    if ext in ('.pth', '.pt'):
        torch = _import_torch()
        tensors = {k: torch.from_numpy(v.copy()) for k, v in arrays.items()}
        torch.save({'model' if kind == PRETRAIN else 'module': tensors}, path)
    elif ext == '.safetensors':
        import safetensors.numpy  # noqa: PLC0415

        safetensors.numpy.save_file(arrays, path, metadata={'format': 'pt', 'vmae2_kind': kind})
    elif ext == '.npz':
        np.savez(path, **arrays)
    else:
        raise ValueError(f'{path}: unknown output type {ext!r}; use .pth, .safetensors or .npz')


# --------------------------------------------------------------------------- #
# vmae2 parameter directories (Orbax).
# --------------------------------------------------------------------------- #


def _intify(tree: Any) -> Any:
    if isinstance(tree, Mapping):
        return {_to_int(k) if isinstance(k, str) else k: _intify(v) for k, v in tree.items()}
    return tree


def save_params_dir(directory: str, params: Mapping[Any, Any], meta: Mapping[str, Any]) -> None:
    """Writes `directory/params` (Orbax StandardCheckpointer) and `directory/model.json`.

    Raises:
      FileExistsError: directory/params already exists.
    """
    import orbax.checkpoint as ocp  # noqa: PLC0415

    directory = os.path.abspath(directory)
    target = os.path.join(directory, 'params')
    if os.path.exists(target):
        raise FileExistsError(f'{target} exists; choose another --output')
    os.makedirs(directory, exist_ok=True)
    tree = jax_tree_to_str_keys(params)
    ckpt = ocp.StandardCheckpointer()
    ckpt.save(target, tree)
    ckpt.wait_until_finished()
    with open(os.path.join(directory, 'model.json'), 'w') as f:
        json.dump({'format': FORMAT, 'version': FORMAT_VERSION, **meta}, f, indent=2)


def jax_tree_to_str_keys(tree: Any) -> Any:
    """Orbax stores dict keys as strings; make that explicit (ints -> str)."""
    if isinstance(tree, Mapping):
        return {str(k): jax_tree_to_str_keys(v) for k, v in tree.items()}
    return np.asarray(tree)


def read_params_dir(directory: str) -> tuple[dict[Any, Any], dict[str, Any]]:
    """Reads a vmae2 params directory or a training workdir's latest checkpoint.

    Returns:
      (params as nested dict of numpy arrays with int block keys, meta). meta
      has at least 'kind'; from model.json, or for a workdir what config.json
      (model.*) and the params tell.

    Raises:
      FileNotFoundError: neither `params/` nor `checkpoints/<step>/state` exists.
    """
    import orbax.checkpoint as ocp  # noqa: PLC0415

    directory = os.path.abspath(directory)
    ckpt = ocp.StandardCheckpointer()
    if os.path.isdir(os.path.join(directory, 'params')):
        tree = ckpt.restore(os.path.join(directory, 'params'))
        meta_path = os.path.join(directory, 'model.json')
        meta = {}
        if os.path.exists(meta_path):
            with open(meta_path) as f:
                meta = json.load(f)
        params = _intify(tree)
    else:
        ck_dir = os.path.join(directory, 'checkpoints')
        steps = (
            sorted(int(s) for s in os.listdir(ck_dir) if s.isdigit())
            if os.path.isdir(ck_dir)
            else []
        )
        if not steps:
            raise FileNotFoundError(
                f'{directory}: no params/ (converted checkpoint) and no checkpoints/<step>/ '
                '(training workdir)'
            )
        params = _intify(_restore_params_only(os.path.join(ck_dir, str(steps[-1]), 'state')))
        meta = {'step': steps[-1]}
        cfg_path = os.path.join(directory, 'config.json')
        if os.path.exists(cfg_path):
            with open(cfg_path) as f:
                model = json.load(f).get('model', {})
            for k in ('variant', 'num_frames', 'input_size', 'tubelet_size', 'decoder_depth'):
                if k in model:
                    meta[k] = model[k]
            if model.get('overrides'):
                meta['overrides'] = dict(model['overrides'])
    params = jax_tree_to_numpy(params)
    meta.setdefault('kind', PRETRAIN if 'decoder' in params else CLASSIFIER)
    if meta['kind'] == CLASSIFIER and 'head' in params:
        meta.setdefault('num_classes', int(params['head']['kernel'].shape[1]))
    return params, meta


def _restore_params_only(path: str) -> Any:
    """The 'params' subtree of a saved train state, as numpy, without reading opt_state
    (Orbax partial restore; falls back to restoring the whole state)."""
    import jax  # noqa: PLC0415
    import orbax.checkpoint as ocp  # noqa: PLC0415

    ckpt = ocp.PyTreeCheckpointer()
    try:
        meta = ckpt.metadata(path)
        tree = meta.item_metadata.tree if hasattr(meta, 'item_metadata') else meta
        abstract = jax.tree.map(
            lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype), {'params': tree['params']}
        )
        restore_args = jax.tree.map(
            lambda _: ocp.ArrayRestoreArgs(restore_type=np.ndarray), abstract
        )
        out = ckpt.restore(
            path,
            args=ocp.args.PyTreeRestore(
                item=abstract, restore_args=restore_args, partial_restore=True
            ),
        )
        return out['params']
    except (TypeError, ValueError, KeyError, AttributeError):
        return ocp.StandardCheckpointer().restore(path)['params']


def jax_tree_to_numpy(tree: Any) -> Any:
    if isinstance(tree, Mapping):
        return {k: jax_tree_to_numpy(v) for k, v in tree.items()}
    return np.asarray(tree)


# --------------------------------------------------------------------------- #
# Models and the two conversions.
# --------------------------------------------------------------------------- #


def abstract_params(spec, kind: str, num_classes: int | None = None) -> dict[Any, Any]:
    """The params pure dict of a `kind` model as jax.ShapeDtypeStruct (nothing allocated).

    Args:
      spec: vmae2.models.pretrain.PretrainSpec.
      kind: 'pretrain' or 'classifier' (then num_classes is required).
    """
    from flax import nnx  # noqa: PLC0415

    from vmae2.models import classifier as classifier_model  # noqa: PLC0415
    from vmae2.models import pretrain as pretrain_model  # noqa: PLC0415

    _check_kind(kind)
    if kind == PRETRAIN:
        model = nnx.eval_shape(lambda: pretrain_model.PretrainModel(spec, rngs=nnx.Rngs(0)))
    else:
        if not num_classes:
            raise ValueError('a classifier needs num_classes')
        model = nnx.eval_shape(
            lambda: classifier_model.Classifier(spec, num_classes, rngs=nnx.Rngs(0))
        )
    return nnx.to_pure_dict(nnx.state(model, nnx.Param))


def convert_to_vmae2(
    input_path: str,
    output_dir: str,
    *,
    variant: str = 'vit_b',
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
      variant: vmae2 variant name; `overrides` changes any Variant field (tests).
      kind: 'pretrain' / 'classifier'; detected from the keys when None.
      num_classes: classifier head size; the checkpoint's head rows when None, or
        len(label_map) when a label map is given.
      num_frames, input_size, tubelet_size: input geometry written to model.json.
      decoder_depth: pre-training decoder depth; counted from the keys when None.
      label_map: optional K710 -> K400/600/700 row map for the head (spec 8.2).

    Returns:
      The meta dict written to model.json.

    Raises:
      ConversionError: the checkpoint does not match the model (lists all keys).
    """
    from vmae2.models import pretrain as pretrain_model  # noqa: PLC0415

    notes: list[str] = []
    raw = read_state_dict(input_path, notes)
    kind = kind or detect_kind(raw)
    _check_kind(kind)
    sd = canonicalize(raw, kind, notes)
    if kind == CLASSIFIER and num_classes is None:
        if label_map is not None:
            num_classes = len(label_map)
        elif 'head.weight' in sd:
            num_classes = int(sd['head.weight'].shape[0])
        else:
            raise ConversionError(f'{input_path} has no head.weight; pass --num-classes')
    if decoder_depth is None:
        decoder_depth = _count_blocks(sd, 'decoder.') if kind == PRETRAIN else 4
    spec = pretrain_model.PretrainSpec(
        variant=variant,
        num_frames=num_frames,
        input_size=input_size,
        tubelet_size=tubelet_size,
        decoder_depth=decoder_depth or 4,
        overrides=tuple(sorted((overrides or {}).items())),
    )
    template = abstract_params(spec, kind, num_classes)
    params, report = load_params(sd, kind, template, strict=True, label_map=label_map)
    meta = {
        'kind': kind,
        'variant': variant,
        'overrides': dict(overrides or {}),
        'num_frames': num_frames,
        'input_size': input_size,
        'tubelet_size': tubelet_size,
        'decoder_depth': spec.decoder_depth,
        'num_classes': num_classes if kind == CLASSIFIER else None,
        'source': os.path.basename(input_path),
        'notes': notes + ([report.head] if report.head else []),
    }
    save_params_dir(output_dir, params, meta)
    return meta


def convert_to_official(input_dir: str, output_path: str, *, kind: str | None = None) -> str:
    """vmae2 params directory or training workdir -> official .pth/.safetensors/.npz.

    Returns:
      The kind written. Raises what read_params_dir / write_official raise.
    """
    params, meta = read_params_dir(input_dir)
    kind = kind or meta['kind']
    write_official(output_path, params_to_official(params, kind), kind)
    return kind


def _parse_overrides(items: Sequence[str]) -> dict[str, int]:
    out = {}
    for item in items:
        name, sep, value = item.partition('=')
        if not sep or not value.strip().lstrip('-').isdigit():
            raise ValueError(f'--override {item!r}: expected FIELD=INT, e.g. width=64')
        out[name.strip()] = int(value)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog='python -m vmae2.convert',
        description='Official / Hugging Face VideoMAE V2 checkpoints <-> vmae2 directories.',
    )
    parser.add_argument('--input', required=True, help='checkpoint file, or vmae2 dir')
    parser.add_argument('--output', required=True, help='vmae2 dir, or .pth/.safetensors')
    parser.add_argument('--model', default='vit_b', help='variant: vit_s, vit_b, vit_l, ...')
    parser.add_argument('--kind', choices=KINDS, default=None, help='default: from the keys')
    parser.add_argument('--num-classes', type=int, default=None)
    parser.add_argument('--num-frames', type=int, default=16)
    parser.add_argument('--input-size', type=int, default=224)
    parser.add_argument('--tubelet-size', type=int, default=2)
    parser.add_argument('--decoder-depth', type=int, default=None)
    parser.add_argument('--label-map', default=None, help='label_710to{400,600,700}.json')
    parser.add_argument(
        '--override',
        action='append',
        default=[],
        metavar='FIELD=INT',
        help='change a Variant field, e.g. --override width=64 (repeatable)',
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
        label_map=load_label_map(args.label_map) if args.label_map else None,
    )
    print(f'wrote {meta["kind"]} {meta["variant"]} parameters to {os.path.abspath(args.output)}')
    for note in meta['notes']:
        print('  ' + note)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
