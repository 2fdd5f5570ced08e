"""Official PyTorch and Hugging Face VideoMAE key layouts <-> vmae2 parameter trees.

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
Canonicalisation follows the official loader (`run_class_finetuning.py`, spec
9.2-9.3): a leading `_orig_mod.` (torch compile) or `module.` (DDP) is stripped;
for classifiers a leading `encoder.` or `backbone.` is stripped; fixed sinusoid
tables (`pos_embed`, `position_embeddings`) are ignored (recomputed, spec 1.5).
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from vmae2.errors import CheckpointError

PRETRAIN = 'pretrain'
CLASSIFIER = 'classifier'
KINDS = (PRETRAIN, CLASSIFIER)

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


# --------------------------------------------------------------------------- #
# Key mapping official <-> vmae2 params.
# --------------------------------------------------------------------------- #


def to_int(part: str) -> int | str:
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
    return tuple(to_int(p) for p in path), transform


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


def flatten(tree: Mapping[Any, Any], prefix: tuple[Any, ...] = ()) -> dict[tuple[Any, ...], Any]:
    """Nested dict -> {path tuple: leaf}; digit-string keys (as Orbax stores block
    indices) become ints."""
    out = {}
    for k, v in tree.items():
        path = prefix + (to_int(k) if isinstance(k, str) else k,)
        if isinstance(v, Mapping):
            out.update(flatten(v, path))
        else:
            out[path] = v
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


def dotted(path: Sequence[Any]) -> str:
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
      CheckpointError: a block lacks one of query/key/value, or `key.bias` is non-zero
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
        raise CheckpointError('Hugging Face checkpoint:\n  ' + '\n  '.join(errors))
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


def map_official(state_dict: Mapping[str, Any], kind: str, notes: list[str] | None = None):
    """Official (or HF) state dict -> (vmae2 params pure dict, unexpected keys).

    Keys with no home in a `kind` model are returned, not raised, so a caller can
    report them with every other problem at once.

    Returns:
      (nested dict of np.ndarray with int block keys, sorted unexpected keys).
    """
    sd = canonicalize(state_dict, kind, notes)
    flat, unexpected = {}, []
    for key, v in sd.items():
        m = _official_to_path(key, kind)
        if m is None:
            unexpected.append(key)
            continue
        path, transform = m
        flat[path] = _forward(np.asarray(v), transform)
    return unflatten(flat), sorted(unexpected)


def official_to_params(state_dict: Mapping[str, Any], kind: str) -> dict[Any, Any]:
    """Official (or HF) state dict -> vmae2 params pure dict, strictly.

    Args:
      state_dict: flat {key: array}, torch layouts (see module docstring), any
        prefixes/layout `canonicalize` understands.
      kind: 'pretrain' (PretrainModel) or 'classifier' (Classifier).

    Returns:
      Nested dict of np.ndarray (same dtypes as the input), block indices as ints.

    Raises:
      CheckpointError: listing every key that has no home in `kind` and every key
        a complete checkpoint must have but lacks (depths inferred from the block
        indices present). Shapes are checked against a model by the surgery.
    """
    params, unexpected = map_official(state_dict, kind)
    sd = canonicalize(state_dict, kind)
    missing = sorted(_required_official_keys(sd, kind) - set(sd))
    raise_problems(kind, missing=missing, unexpected=unexpected)
    return params


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


def raise_problems(
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
            'this looks like a pre-training checkpoint: start a classifier from it with '
            '--config.init_from, which drops the decoder and keeps fc_norm/head fresh (spec 9.3)'
        )
    if lines:
        raise CheckpointError(
            f'checkpoint does not match the {kind} model:\n  ' + '\n  '.join(lines)
        )
