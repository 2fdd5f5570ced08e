"""`config.init_from`: start a classifier from a pre-trained or fine-tuned checkpoint.

Sources (`read_source`):

* a vmae2 training workdir: the latest `W/checkpoints/<step>/state` (a
  pre-training or fine-tuning/distillation train state; its 'params' are used);
* a converted checkpoint directory written by `python -m vmae2.convert`
  (`W/params/` + `W/model.json`, see vmae2/convert.py);
* an official / Hugging Face weight file (.pth, .pt, .bin, .safetensors, .npz),
  read through vmae2.convert (strict key mapping, kind detected from the keys).

The surgery (`transplant`) follows the official `run_class_finetuning.py`
loader (spec 9.3) on vmae2 param trees:

* from a pre-training state: `encoder.patch_embed` and `encoder.blocks` are
  loaded; `encoder.norm`, `decoder`, `encoder_to_decoder` and `mask_token` are
  dropped; `fc_norm` and `head` stay freshly initialised (spec 9.3 step 5);
* from a classifier (fine-tuned / distilled): everything is loaded. If the
  head's class count differs: a label map (`config.head_label_map`, a JSON list,
  element j = source row of target class j, spec 8.2 `label_710to{400,600,700}.json`)
  selects the rows, else the head is dropped and re-initialised.

A shape mismatch anywhere else, or a missing encoder parameter, is an error
listing every problem. A different num_frames / input_size needs nothing: the
sinusoid table is not a parameter and is recomputed for the new token count
(spec 1.5; official issue #58 is the crash this avoids).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from typing import Any, Mapping, Sequence

import jax
import numpy as np

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

    def summary(self) -> str:
        lines = [f'init_from ({self.source_kind}): loaded {len(self.loaded)} tensors']
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


def _key(k):
    if isinstance(k, str) and k.isdigit():
        return int(k)
    return k


def flatten(tree: Mapping, prefix: tuple = ()) -> dict[tuple, Any]:
    """Nested dict -> {path tuple: leaf}; digit-string keys become ints."""
    out = {}
    for k, v in tree.items():
        path = prefix + (_key(k),)
        if isinstance(v, Mapping):
            out.update(flatten(v, path))
        else:
            out[path] = v
    return out


def unflatten(flat: Mapping[tuple, Any]) -> dict:
    out: dict = {}
    for path, v in flat.items():
        node = out
        for k in path[:-1]:
            node = node.setdefault(k, {})
        node[path[-1]] = v
    return out


def dotted(path: tuple) -> str:
    return '.'.join(str(k) for k in path)


def detect_kind(params: Mapping) -> str:
    """'pretrain' (has a decoder or mask token) or 'classifier' (has a head)."""
    if any(k in params for k in PRETRAIN_ONLY):
        return 'pretrain'
    if 'head' in params or 'fc_norm' in params:
        return 'classifier'
    raise ValueError(
        f'cannot tell the checkpoint kind from its top-level keys {sorted(map(str, params))}'
    )


def load_label_map(path: str) -> list[int]:
    """A JSON list of ints (spec 8.2: element j = K710 index of target class j).

    Raises:
      ValueError: not a list of non-negative ints.
    """
    with open(path) as f:
        data = json.load(f)
    if not isinstance(data, list) or not all(isinstance(i, int) and i >= 0 for i in data):
        raise ValueError(f'{path}: expected a JSON list of non-negative ints (spec 8.2)')
    return data


def transplant(
    source: Mapping,
    target: Mapping,
    *,
    label_map: Sequence[int] | None = None,
    require_head: bool = False,
) -> tuple[dict, Report]:
    """Spec 9.3 surgery of `source` params onto a Classifier's fresh `target` params.

    Args:
      source: params tree of a PretrainModel or a Classifier (numpy or jax leaves;
        block keys int or str).
      target: the Classifier's freshly initialised params (arrays).
      label_map: head row selection when the class counts differ (spec 8.2).
      require_head: raise if fc_norm/head would stay fresh (evaluation, teachers).

    Returns:
      (params with target's structure and dtypes, host numpy leaves; Report).

    Raises:
      ValueError: every shape mismatch outside the head, missing encoder
        parameters, a label map that does not fit, or (require_head) a fresh head.
    """
    kind = detect_kind(source)
    report = Report(source_kind=kind)
    src = flatten(source)
    tgt = flatten(target)
    use: dict[tuple, np.ndarray] = {}
    for path, v in src.items():
        name = dotted(path)
        if path[0] in PRETRAIN_ONLY:
            report.dropped[name] = 'pre-training only (spec 9.3)'
        elif kind == 'pretrain' and path[:2] == ('encoder', 'norm'):
            report.dropped[name] = 'encoder.norm, unused under mean pooling (spec 9.3)'
        elif path not in tgt:
            report.dropped[name] = 'not in the classifier'
        else:
            use[path] = np.asarray(v)

    hk, hb = ('head', 'kernel'), ('head', 'bias')
    if hk in use and hk in tgt and use[hk].shape != tuple(tgt[hk].shape):
        have, want = use[hk].shape[-1], tgt[hk].shape[-1]
        if label_map is not None:
            lm = np.asarray(label_map, np.int64)
            if lm.shape != (want,) or lm.max() >= have or lm.min() < 0:
                raise ValueError(
                    f'label map of length {lm.size} (values {lm.min()}..{lm.max()}) cannot map a '
                    f'{have}-class head to {want} classes'
                )
            use[hk] = use[hk][:, lm]
            if hb in use:
                use[hb] = use[hb][lm]
            report.head = f'head: {have} classes -> {want} by label map (spec 8.2)'
        else:
            for p in (hk, hb):
                if p in use:
                    del use[p]
                    report.dropped[dotted(p)] = f'head has {have} classes, the model {want}'

    mismatched, missing, out = [], [], {}
    for path, fresh in tgt.items():
        if path in use:
            if use[path].shape != tuple(fresh.shape):
                mismatched.append(
                    f'{dotted(path)}: checkpoint {use[path].shape}, model {tuple(fresh.shape)}'
                )
                continue
            out[path] = use[path].astype(fresh.dtype)
            report.loaded.append(dotted(path))
        else:
            if path[0] not in HEAD:
                missing.append(dotted(path))
            out[path] = np.asarray(fresh)
            report.fresh.append(dotted(path))
    problems = []
    if mismatched:
        problems.append(f'{len(mismatched)} shape mismatches:\n  ' + '\n  '.join(mismatched))
    if missing:
        problems.append(f'{len(missing)} parameters missing from the checkpoint: {_short(missing)}')
    if require_head and any(p.startswith(HEAD) for p in report.fresh):
        problems.append(
            'the checkpoint has no usable classifier head (fc_norm/head would be random): '
            + report.summary()
        )
    if problems:
        raise ValueError('init_from: ' + '\n'.join(problems))
    return unflatten(out), report


def read_source(path: str) -> tuple[dict, dict]:
    """(params tree of numpy arrays, meta) from a workdir, a converted directory or a file.

    meta holds what is known: 'kind' and, where recorded, 'variant',
    'overrides', 'num_classes', 'num_frames', 'input_size', 'tubelet_size'.

    Raises:
      FileNotFoundError: nothing readable at `path`.
    """
    path = os.path.abspath(os.path.expanduser(path))
    try:
        from vmae2 import convert  # noqa: PLC0415
    except ImportError:  # the converter is optional: workdirs still load
        convert = None
    if os.path.isdir(path):
        if convert is not None and hasattr(convert, 'read_params_dir'):
            params, meta = convert.read_params_dir(path)
        else:
            from vmae2 import checkpointing  # noqa: PLC0415

            params = checkpointing.load_state(path)['params']
            meta = _workdir_meta(path)
        params = unflatten(flatten(params))
        meta = dict(meta)
        meta.setdefault('kind', detect_kind(params))
        return params, meta
    if not os.path.exists(path):
        raise FileNotFoundError(f'init_from {path!r} does not exist')
    if convert is None:
        raise ValueError(f'{path}: reading weight files needs vmae2/convert.py')
    raw = convert.read_any(path)
    kind = convert.detect_kind(raw)
    params = convert.official_to_params(raw, kind)
    meta = {'kind': kind}
    if kind == 'classifier' and 'head' in params:
        meta['num_classes'] = int(params['head']['kernel'].shape[1])
    return params, meta


def _workdir_meta(path: str) -> dict:
    meta = {}
    cfg = os.path.join(path, 'config.json')
    if os.path.exists(cfg):
        with open(cfg) as f:
            model = json.load(f).get('model', {})
        meta.update({k: model[k] for k in ('variant', 'overrides') if k in model})
    return meta


def source_num_classes(path: str) -> int | None:
    """The head's class count of a classifier checkpoint, or None (pre-training)."""
    params, meta = read_source(path)
    if 'head' in params:
        return int(np.asarray(params['head']['kernel']).shape[-1])
    return meta.get('num_classes')


def load(
    path: str,
    target: Mapping,
    *,
    label_map_path: str = '',
    require_head: bool = False,
    what: str = 'init_from',
) -> dict:
    """read_source + transplant + a log of what was loaded, dropped, fresh.

    Returns:
      params (numpy leaves) with `target`'s structure.
    """
    source, meta = read_source(path)
    label_map = load_label_map(label_map_path) if label_map_path else None
    params, report = transplant(source, target, label_map=label_map, require_head=require_head)
    log.info('%s %s:\n%s', what, path, report.summary())
    return params


def place(params: Mapping, shardings) -> Any:
    """Host numpy params -> jax.Arrays with `shardings` (works on several processes)."""
    return jax.tree.map(
        lambda x, s: jax.make_array_from_callback(x.shape, s, lambda idx: x[idx]),
        params,
        shardings,
    )
