"""Weight files in and out: official/HF files, converted vmae2 directories, training workdirs.

* `.safetensors` with safetensors, `.pth`/`.pt`/`.bin` only with
  `torch.load(weights_only=True)` (never plain pickle: a file that holds code is
  refused with vmae2's own message), `.npz` with `allow_pickle=False`;
* a converted directory (`python -m vmae2.tools.convert`): `W/params/` (the params
  tree, written through vmae2.runtime.checkpointing) + `W/model.json`
  {"format": "vmae2.params", "version": 1, "kind", "variant", "overrides",
  "num_frames", "input_size", "tubelet_size", "decoder_depth", "num_classes", ...};
* a training workdir: the 'params' of the latest `W/checkpoints/<step>/state`
  (the optimiser state is not read) and the model record in `W/config.json`.

`read_source` reads any of them into one form: a vmae2 params tree plus what is
known about the model (`meta`).
"""

from __future__ import annotations

import json
import os
import pickle
from typing import Any, Mapping

import numpy as np

from vmae2.errors import CheckpointError
from vmae2.runtime import checkpointing
from vmae2.weights import keymaps

FORMAT = 'vmae2.params'
FORMAT_VERSION = 1
WEIGHT_SUFFIXES = ('.pth', '.pt', '.bin', '.safetensors', '.npz')
_TORCH_HINT = "reading or writing .pth files needs PyTorch: pip install -e '.[torch]'"


def _import_torch():
    try:
        import torch  # noqa: PLC0415
    except ImportError as e:
        raise ImportError(_TORCH_HINT) from e
    return torch


def _unwrap(obj: Any, notes: list[str]) -> Mapping[str, Any]:
    """The weights of an official file: under 'model', else 'module', else the top level."""
    if isinstance(obj, Mapping):
        for name in ('model', 'module'):
            if name in obj and isinstance(obj[name], Mapping):
                notes.append(f"weights read from '{name}'")
                return obj[name]
        return obj
    raise CheckpointError(f'checkpoint holds a {type(obj).__name__}, not a state dict')


def _torch_to_numpy(t, torch) -> np.ndarray:
    t = t.detach().cpu()
    if t.dtype == torch.bfloat16:
        t = t.float()
    return t.numpy()


def _load_pth(path: str, notes: list[str]) -> dict[str, np.ndarray]:
    torch = _import_torch()
    try:
        obj = torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f'{path} holds Python objects besides tensors, and unpickling them could run code '
            'from the file; vmae2 reads weights only and refused it. Ask for the state dict '
            '(torch.save(model.state_dict(), ...)) or a .safetensors file.'
        ) from e
    except (RuntimeError, EOFError, OSError) as e:
        raise CheckpointError(f'{path} cannot be read as a PyTorch file: {e}') from e
    sd = _unwrap(obj, notes)
    return {k: _torch_to_numpy(v, torch) for k, v in sd.items() if isinstance(v, torch.Tensor)}


def read_state_dict(path: str, notes: list[str] | None = None) -> dict[str, np.ndarray]:
    """Reads a flat {key: np.ndarray} from an official, HF or converted file.

    bfloat16 tensors become float32 (numpy has no bfloat16); other dtypes are kept.

    Raises:
      ImportError: a .pth without torch installed (names the extra to install).
      CheckpointError: an unknown extension, a file that holds code, a damaged file.
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
        return _load_pth(path, notes)
    if ext == '.npz':
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    raise CheckpointError(
        f'{path}: unknown checkpoint type {ext!r}; use one of {", ".join(WEIGHT_SUFFIXES)}'
    )


def write_official(path: str, state_dict: Mapping[str, np.ndarray], kind: str) -> None:
    """Writes an official-layout state dict.

    `.pth`/`.pt`: torch.save({'model': sd}) for pre-training, {'module': sd} for a
    classifier (the released files' nesting, spec 9.2; the official loaders then
    load it with strict=True). `.safetensors`: the flat dict. `.npz`: np.savez.

    Raises:
      ImportError: .pth without torch. CheckpointError: unknown extension.
    """
    ext = os.path.splitext(path)[1].lower()
    arrays = {k: np.ascontiguousarray(v) for k, v in state_dict.items()}
    if ext in ('.pth', '.pt'):
        torch = _import_torch()
        tensors = {k: torch.from_numpy(v.copy()) for k, v in arrays.items()}
        torch.save({'model' if kind == keymaps.PRETRAIN else 'module': tensors}, path)
    elif ext == '.safetensors':
        import safetensors.numpy  # noqa: PLC0415

        safetensors.numpy.save_file(arrays, path, metadata={'format': 'pt', 'vmae2_kind': kind})
    elif ext == '.npz':
        np.savez(path, **arrays)
    else:
        raise CheckpointError(f'{path}: unknown output type {ext!r}; use .pth, .safetensors or .npz')


def _str_keys(tree: Any) -> Any:
    """Orbax stores dict keys as strings; make that explicit (ints -> str)."""
    if isinstance(tree, Mapping):
        return {str(k): _str_keys(v) for k, v in tree.items()}
    return np.asarray(tree)


def save_params_dir(directory: str, params: Mapping[Any, Any], meta: Mapping[str, Any]) -> None:
    """Writes `directory/params` and `directory/model.json` (module docstring).

    Raises:
      FileExistsError: directory/params already exists.
    """
    directory = os.path.abspath(directory)
    os.makedirs(directory, exist_ok=True)
    checkpointing.save_tree(os.path.join(directory, 'params'), _str_keys(params))
    with open(os.path.join(directory, 'model.json'), 'w') as f:
        json.dump({'format': FORMAT, 'version': FORMAT_VERSION, **meta}, f, indent=2)


def _workdir_meta(directory: str) -> dict[str, Any]:
    """The model record of a training workdir's config.json, and its latest step."""
    meta: dict[str, Any] = {'step': checkpointing.latest_step_number(directory)}
    cfg_path = os.path.join(directory, 'config.json')
    if os.path.exists(cfg_path):
        with open(cfg_path) as f:
            model = json.load(f).get('model', {})
        for k in ('variant', 'num_frames', 'input_size', 'tubelet_size', 'decoder_depth'):
            if k in model:
                meta[k] = model[k]
        if model.get('overrides'):
            meta['overrides'] = dict(model['overrides'])
    return meta


def _read_dir(directory: str) -> tuple[dict, dict]:
    if os.path.isdir(os.path.join(directory, 'params')):
        params = checkpointing.load_tree(os.path.join(directory, 'params'))
        meta_path = os.path.join(directory, 'model.json')
        meta = {}
        if os.path.exists(meta_path):
            with open(meta_path) as f:
                meta = json.load(f)
        return params, meta
    if checkpointing.has_checkpoint(directory):
        return checkpointing.load_params(directory), _workdir_meta(directory)
    raise CheckpointError(
        f'{directory}: neither a converted checkpoint (params/ + model.json) nor a training '
        'workdir with a finished checkpoint (checkpoints/<step>/)'
    )


def params_kind(params: Mapping) -> str:
    """'pretrain' (has a decoder or mask token) or 'classifier' (has a head or fc_norm).

    Raises:
      CheckpointError: neither.
    """
    if any(k in params for k in ('decoder', 'encoder_to_decoder', 'mask_token')):
        return keymaps.PRETRAIN
    if 'head' in params or 'fc_norm' in params:
        return keymaps.CLASSIFIER
    raise CheckpointError(
        f'cannot tell the checkpoint kind from its top-level keys {sorted(map(str, params))}'
    )


def read_source(path: str) -> tuple[dict, dict]:
    """(params tree of numpy arrays with int block keys, meta) from any weight source.

    `path`: a training workdir, a converted directory, or an official/HF weight
    file. meta holds what is known: 'kind', 'notes', 'unexpected' (official keys
    with no home in the model, for the surgery to report) and, where recorded,
    'variant', 'overrides', 'num_classes', 'num_frames', 'input_size',
    'tubelet_size', 'decoder_depth', 'step'.

    Raises:
      FileNotFoundError: nothing at `path`.
      CheckpointError: a file or directory that cannot be read as weights.
    """
    path = os.path.abspath(os.path.expanduser(path))
    if os.path.isdir(path):
        params, meta = _read_dir(path)
        params = _numpy(keymaps.unflatten(keymaps.flatten(params)))
        meta = {**meta, 'notes': list(meta.get('notes', [])), 'unexpected': []}
    elif not os.path.exists(path):
        raise FileNotFoundError(f'{path} does not exist')
    else:
        notes: list[str] = []
        raw = read_state_dict(path, notes)
        kind = keymaps.detect_kind(raw)
        params, unexpected = keymaps.map_official(raw, kind, notes)
        meta = {'kind': kind, 'notes': notes, 'unexpected': unexpected}
    meta.setdefault('kind', params_kind(params))
    if 'head' in params:
        meta.setdefault('num_classes', int(params['head']['kernel'].shape[-1]))
    return params, meta


def _numpy(tree: Any) -> Any:
    if isinstance(tree, Mapping):
        return {k: _numpy(v) for k, v in tree.items()}
    return np.asarray(tree)
