"""Parameter surgery: one function moves weights from any source tree onto a model.

The rules follow the official fine-tuning loader (`run_class_finetuning.py`,
spec 9.3), on vmae2 parameter trees:

* classifier from a pre-training tree: `encoder.patch_embed` and
  `encoder.blocks` are loaded; `encoder.norm`, `decoder`, `encoder_to_decoder`
  and `mask_token` are dropped; `fc_norm` and `head` stay freshly initialised;
* classifier from a classifier: everything is loaded. If the head's class count
  differs, a label map (a JSON list, element j = source row of target class j,
  spec 8.2 `label_710to{400,600,700}.json`) selects the rows, else the head is
  dropped and re-initialised;
* pre-training model from a pre-training tree (continuing a run from weights):
  everything is loaded; a classifier tree cannot, it has no decoder;
* strict (the converter): nothing may be dropped, missing or fresh.

Any shape mismatch is an error, summarised by the model sizes both trees imply
("a vit_b checkpoint for a vit_s model"). A different num_frames / input_size
needs nothing: the sinusoid table is not a parameter and is recomputed for the new
token count (spec 1.5; official issue #58 is the crash this avoids).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Mapping, Sequence

import numpy as np

from vmae2.errors import CheckpointError
from vmae2.models.config import VARIANTS, SIZE_FIELDS
from vmae2.weights import files
from vmae2.weights import keymaps

log = logging.getLogger('vmae2')

PRETRAIN_ONLY = ('decoder', 'encoder_to_decoder', 'mask_token')
HEAD = ('fc_norm', 'head')


@dataclasses.dataclass
class Report:
    """What `transplant` did (dotted parameter paths)."""

    source_kind: str = ''
    loaded: list[str] = dataclasses.field(default_factory=list)
    dropped: dict[str, str] = dataclasses.field(default_factory=dict)
    fresh: list[str] = dataclasses.field(default_factory=list)
    head: str = ''
    notes: list[str] = dataclasses.field(default_factory=list)

    def summary(self) -> str:
        lines = [f'{self.source_kind} checkpoint: loaded {len(self.loaded)} tensors'] + self.notes
        if self.head:
            lines.append(self.head)
        groups: dict[str, list[str]] = {}
        for k, r in self.dropped.items():
            groups.setdefault(r, []).append(k)
        for reason, keys in sorted(groups.items()):
            lines.append(f'dropped {len(keys)} ({reason}): {_short(keys)}')
        if self.fresh:
            lines.append(f'freshly initialised {len(self.fresh)}: {", ".join(self.fresh)}')
        return '\n'.join(lines)


def _short(keys: Sequence[str], n: int = 6) -> str:
    keys = sorted(keys)
    return ', '.join(keys[:n]) + (f', ... (+{len(keys) - n})' if len(keys) > n else '')


def load_label_map(path: str) -> list[int]:
    """A JSON list of ints (spec 8.2: element j = K710 index of target class j).

    Raises:
      CheckpointError: not a list of non-negative ints.
    """
    with open(path) as f:
        data = json.load(f)
    if not isinstance(data, list) or not all(isinstance(i, int) and i >= 0 for i in data):
        raise CheckpointError(f'{path}: expected a JSON list of non-negative ints (spec 8.2)')
    return data


def infer_sizes(params: Mapping) -> dict[str, int]:
    """Model sizes implied by a params tree's shapes (those that are present)."""
    flat = keymaps.flatten(params)
    out: dict[str, int] = {}
    kernel = flat.get(('encoder', 'patch_embed', 'kernel'))
    if kernel is not None:
        out.update(tubelet_size=kernel.shape[0], patch_size=kernel.shape[1], width=kernel.shape[-1])
    for part, prefix in (('encoder', ''), ('decoder', 'decoder_')):
        blocks = {p[2] for p in flat if p[:2] == (part, 'blocks')}
        if blocks:
            out[f'{prefix}depth'] = len(blocks)
            fc1 = flat.get((part, 'blocks', min(blocks), 'mlp', 'fc1', 'kernel'))
            if fc1 is not None:
                out[f'{prefix}mlp_dim'] = fc1.shape[1]
                if prefix:
                    out['decoder_width'] = fc1.shape[0]
    return out


def describe_sizes(sizes: Mapping[str, int]) -> str:
    """'vit_b' when the encoder sizes are a table row, else the sizes themselves."""
    keys = ('width', 'depth', 'mlp_dim', 'patch_size')
    for name, row in VARIANTS.items():
        table = dict(zip(SIZE_FIELDS, row))
        if all(sizes.get(k) == table[k] for k in keys):
            return name
    known = ', '.join(f'{k} {sizes[k]}' for k in keys if k in sizes)
    return f'a non-standard size ({known})'


def _size_message(source: Mapping, target: Mapping, n: int) -> str:
    src, tgt = infer_sizes(source), infer_sizes(target)
    if src == tgt:
        return f'{n} shape mismatches'
    return (
        f'{n} shape mismatches: the checkpoint is {describe_sizes(src)} and the model is '
        f'{describe_sizes(tgt)} (set --config.model.variant / model.overrides to the '
        "checkpoint's size, or pick a checkpoint of this size)"
    )


def transplant(
    source: Mapping,
    target: Mapping,
    *,
    label_map: Sequence[int] | None = None,
    strict: bool = False,
    may_stay_fresh: Sequence[str] = HEAD,
    require_head: bool = False,
    unexpected: Sequence[str] = (),
) -> tuple[dict, Report]:
    """Moves `source` params onto a model whose params are `target` (module docstring).

    Args:
      source: params tree of a PretrainModel or a Classifier (numpy or jax leaves;
        block keys int or str).
      target: the model's params: fresh values, or jax.ShapeDtypeStruct leaves
        when nothing may stay fresh (strict).
      label_map: head row selection when the class counts differ (spec 8.2).
      strict: every target parameter must come from the source and every source
        parameter must be used.
      may_stay_fresh: top-level target names that may keep their fresh values.
      require_head: fail if fc_norm/head would stay fresh (evaluation, teachers).
      unexpected: official keys the source file had with no home in the model
        (keymaps.map_official); reported, and fatal when strict.

    Returns:
      (params with target's structure and dtypes, numpy leaves; Report).

    Raises:
      CheckpointError: every problem at once: shape mismatches (with the sizes
        both trees imply), missing or (strict) unused parameters, a classifier
        source for a pre-training model, a label map that does not fit, or
        (require_head) a fresh head.
    """
    src_kind = files.params_kind(source)
    tgt_kind = files.params_kind(target)
    if tgt_kind == keymaps.PRETRAIN and src_kind == keymaps.CLASSIFIER:
        raise CheckpointError(
            'this is a classifier checkpoint, without the decoder pre-training needs: continue '
            'pre-training from a pre-training checkpoint (a pre-training workdir, or an official '
            'file with decoder.* keys)'
        )
    report = Report(source_kind=src_kind)
    src, tgt = keymaps.flatten(source), keymaps.flatten(target)
    use = _select(src, tgt, tgt_kind, report)
    _map_head(use, tgt, label_map, report)

    mismatched, missing, out = [], [], {}
    for path, fresh in tgt.items():
        name = keymaps.dotted(path)
        if path not in use:
            if strict or path[0] not in may_stay_fresh:
                missing.append(name)
            else:
                out[path] = np.asarray(fresh)
                report.fresh.append(name)
        elif use[path].shape != tuple(fresh.shape):
            mismatched.append(f'{name}: checkpoint {use[path].shape}, model {tuple(fresh.shape)}')
        else:
            out[path] = use[path].astype(fresh.dtype, copy=False)
            report.loaded.append(name)
    for key in unexpected:
        report.dropped[key] = 'no home in the model'
    problems = []
    if mismatched:
        problems.append(
            _size_message(source, target, len(mismatched)) + ':\n  ' + '\n  '.join(mismatched[:8])
            + (f'\n  ... (+{len(mismatched) - 8})' if len(mismatched) > 8 else '')
        )
    if missing:
        problems.append(f'{len(missing)} missing keys: {_short(missing)}')
    if strict and report.dropped:
        problems.append(f'{len(report.dropped)} unexpected keys: {_short(list(report.dropped))}')
    if require_head and any(p.startswith(HEAD) for p in report.fresh):
        problems.append(
            'the checkpoint has no usable classifier head (fc_norm/head would be random): '
            + report.summary()
        )
    if problems:
        raise CheckpointError('\n'.join(problems))
    return keymaps.unflatten(out), report


def _select(src, tgt, tgt_kind: str, report: Report) -> dict:
    """The source tensors the target can use; the rest go to report.dropped."""
    use = {}
    for path, v in src.items():
        name = keymaps.dotted(path)
        if tgt_kind == keymaps.CLASSIFIER and path[0] in PRETRAIN_ONLY:
            report.dropped[name] = 'pre-training only (spec 9.3)'
        elif tgt_kind == keymaps.CLASSIFIER and path[:2] == ('encoder', 'norm'):
            report.dropped[name] = 'encoder.norm, unused under mean pooling (spec 9.3)'
        elif path not in tgt:
            report.dropped[name] = 'not in the model'
        else:
            use[path] = np.asarray(v)
    return use


def _map_head(use: dict, tgt: Mapping, label_map, report: Report) -> None:
    """Selects head rows by the label map, or drops a head of another class count."""
    hk, hb = ('head', 'kernel'), ('head', 'bias')
    if hk not in use or hk not in tgt or use[hk].shape == tuple(tgt[hk].shape):
        return
    have, want = use[hk].shape[-1], tgt[hk].shape[-1]
    if label_map is None:
        for p in (hk, hb):
            if p in use:
                del use[p]
                report.dropped[keymaps.dotted(p)] = f'head has {have} classes, the model {want}'
        return
    lm = np.asarray(label_map, np.int64)
    if lm.shape != (want,) or lm.max() >= have or lm.min() < 0:
        raise CheckpointError(
            f'label map of length {lm.size} (values {lm.min()}..{lm.max()}) cannot map a '
            f'{have}-class head to {want} classes'
        )
    use[hk] = use[hk][:, lm]
    if hb in use:
        use[hb] = use[hb][lm]
    report.head = f'head: {have} classes -> {want} by label map (spec 8.2)'


def init_params(
    path: str,
    target: Mapping,
    *,
    label_map_path: str = '',
    may_stay_fresh: Sequence[str] = HEAD,
    require_head: bool = False,
    what: str = 'init_from',
) -> dict:
    """read_source + transplant + a log line of what was loaded, dropped and fresh.

    Returns:
      params (numpy leaves) with `target`'s structure.

    Raises:
      CheckpointError: as `transplant`, prefixed with `what` and the path.
      FileNotFoundError: nothing at `path`.
    """
    source, meta = files.read_source(path)
    label_map = load_label_map(label_map_path) if label_map_path else None
    try:
        params, report = transplant(
            source, target, label_map=label_map, may_stay_fresh=may_stay_fresh,
            require_head=require_head, unexpected=meta['unexpected'],
        )
    except CheckpointError as e:
        raise CheckpointError(f'{what} {path}: {e}') from None
    report.notes += meta['notes']
    log.info('%s %s:\n%s', what, path, report.summary())
    return params


def source_num_classes(path: str, label_map_path: str = '') -> int | None:
    """The class count a classifier started from `path` gets: the label map's length,
    else the checkpoint head's; None for a checkpoint without a head."""
    if label_map_path:
        return len(load_label_map(label_map_path))
    return files.read_source(path)[1].get('num_classes')
