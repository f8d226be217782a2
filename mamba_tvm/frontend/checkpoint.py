"""Checkpoint loading and validation.

The model family is MambaLite-Micro's TinyMamba: `linear_in` -> one or more
mamba_simple-style blocks (`mamba.*`, or `mamba.0.*`, `mamba.1.*`, ... when stacked) ->
mean over time -> `classifier`. Every dimension is read from the weight shapes; every
later stage trusts the ModelSpec built here, so all checks live in this file.
"""
from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import CheckpointError

#: tensors of one Mamba block, relative to its prefix
BLOCK_KEYS = ("A_log", "D", "in_proj.weight", "conv1d.weight", "conv1d.bias", "x_proj.weight",
              "dt_proj.weight", "dt_proj.bias", "out_proj.weight")
HEAD_KEYS = ("linear_in.weight", "linear_in.bias", "classifier.weight", "classifier.bias")
#: exp(A_LOG_MAX) is float32's largest finite value: beyond it A = -exp(A_log) is -inf
A_LOG_MAX = float(np.log(np.finfo(np.float32).max))
#: non-weight arrays an .npz may carry beside the state_dict
EXTRA_KEYS = ("sample_input", "mambalite_c_logits")


@dataclass
class ModelSpec:
    """Dimensions and float32 weights of a validated TinyMamba checkpoint."""

    name: str
    n_features: int
    d_model: int
    d_inner: int
    d_state: int
    d_conv: int
    dt_rank: int
    n_classes: int
    n_blocks: int
    weights: dict[str, np.ndarray]
    sample_input: np.ndarray | None = None
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what loading changed (dtype casts), for the report

    def block_prefix(self, i: int) -> str:
        return "mamba." if self._single_block_names else f"mamba.{i}."

    @property
    def _single_block_names(self) -> bool:
        return "mamba.A_log" in self.weights

    @property
    def weight_bytes(self) -> int:
        return sum(w.nbytes for w in self.weights.values())

    def dims(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in ("n_features", "d_model", "d_inner", "d_state", "d_conv",
                                              "dt_rank", "n_classes", "n_blocks")}


def load_checkpoint(path: str | Path) -> ModelSpec:
    """Load a `.npz`, `.pt` or `.pth` file into a validated ModelSpec."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder: give the checkpoint file (.npz, .pt or .pth)")
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    notes: list[str] = []
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except Exception as exc:  # corrupt zip, pickled objects, bad headers, ...
            raise CheckpointError(f"{path}: not a readable .npz file ({_first_line(exc)})") from None
    elif path.suffix in (".pt", ".pth"):
        arrays = _load_torch(path, notes)
    else:
        raise CheckpointError(f"{path}: unsupported checkpoint type '{path.suffix}' (use .npz, .pt or .pth)")
    extras = {k: arrays.pop(k) for k in EXTRA_KEYS if k in arrays}
    return spec_from_state_dict(arrays, name=path.stem, extras=extras, notes=notes)


#: dict keys under which training scripts commonly nest the state_dict
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net", "module", "weights")
#: key prefixes added by DataParallel/DistributedDataParallel and torch.compile
WRAPPER_PREFIXES = ("module.", "_orig_mod.")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _first_line(exc: BaseException, limit: int = 200) -> str:
    """An exception's first non-empty line without terminal escapes (PyTorch colours some)."""
    lines = [ln.strip() for ln in _ANSI.sub("", str(exc)).splitlines() if ln.strip()]
    text = lines[0] if lines else type(exc).__name__
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _is_torchscript(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as z:
            return any(n.split("/", 1)[-1].startswith(("code/", "constants.pkl")) for n in z.namelist())
    except Exception:  # not a zip, or a damaged one: torch.load will say what is wrong
        return False


def _load_torch(path: Path, notes: list[str]) -> dict[str, np.ndarray]:
    import pickle
    import warnings

    import torch

    if _is_torchscript(path):
        raise CheckpointError(f"{path} is a TorchScript archive, which mamba_tvm does not read: save "
                              "model.state_dict() with torch.save instead")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights only load failed" in str(exc).lower() or "unsupported global" in str(exc).lower():
            raise CheckpointError(f"{path} holds pickled Python objects (e.g. torch.save(model)), not a state_dict; "
                                  "save model.state_dict() instead (loading a whole module would run its code)") from None
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({_first_line(exc)})") from None
    except Exception as exc:
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({_first_line(exc)})") from None
    state = unwrap_state_dict(obj, path)
    arrays = {}
    for key, value in state.items():
        if isinstance(value, torch.Tensor):
            if value.is_floating_point() and value.dtype not in (torch.float32, torch.float64):
                notes.append(f"{key}: {str(value.dtype).replace('torch.', '')} cast to float32")
                value = value.float()
            try:
                arrays[key] = value.detach().cpu().numpy()
            except (TypeError, RuntimeError) as exc:
                raise CheckpointError(f"tensor '{key}' cannot be read ({_first_line(exc)})") from None
        else:
            arrays[key] = np.asarray(value)
    return arrays


def unwrap_state_dict(obj, path: Path | str = "checkpoint") -> dict:
    """The state_dict inside common wrappers: {'state_dict': ...}, {'model_state_dict': ...},
    {'model': ...}, and `module.` / `_orig_mod.` key prefixes."""
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a state_dict (a dict of tensors), found {type(obj).__name__}")
    for key in WRAPPER_KEYS:
        inner = obj.get(key)
        if isinstance(inner, dict) and inner and all(isinstance(k, str) for k in inner):
            obj = inner
            break
    bad = [k for k in obj if not isinstance(k, str)]
    if bad:
        raise CheckpointError(f"{path}: expected a state_dict with string keys, found key {bad[0]!r}")
    for prefix in WRAPPER_PREFIXES:
        if obj and all(k.startswith(prefix) for k in obj):
            obj = {k[len(prefix):]: v for k, v in obj.items()}
    return obj


def spec_from_state_dict(state: dict, name: str = "model", extras: dict | None = None,
                         notes: list[str] | None = None) -> ModelSpec:
    """Validate a state_dict (torch tensors or arrays) and read the dimensions off it."""
    notes = list(notes or [])
    state = unwrap_state_dict(state)
    weights = {}
    for k, v in state.items():
        if hasattr(v, "detach"):
            v = v.detach().cpu()
            if v.is_floating_point() and str(v.dtype) not in ("torch.float32", "torch.float64"):
                notes.append(f"{k}: {str(v.dtype).replace('torch.', '')} cast to float32")
                v = v.float()
            v = v.numpy()
        weights[k] = np.asarray(v)
    prefixes = _block_prefixes(weights)
    expected = set(HEAD_KEYS) | {p + k for p in prefixes for k in BLOCK_KEYS}
    missing = sorted(expected - weights.keys())
    if missing:
        raise CheckpointError(f"missing tensor '{missing[0]}'" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
                              + f"; {_holds(weights)}")
    extra = sorted(weights.keys() - expected)
    if extra:
        raise CheckpointError(f"unexpected tensor '{extra[0]}': not part of a TinyMamba checkpoint "
                              f"(linear_in -> mamba blocks -> mean -> classifier); {_holds(weights)}")

    for key, w in weights.items():
        if not np.issubdtype(w.dtype, np.floating):
            raise CheckpointError(f"tensor '{key}' has dtype {w.dtype}, expected floating point")
        if w.dtype == np.float16:
            notes.append(f"{key}: float16 cast to float32")
        if not np.all(np.isfinite(w)):
            bad = int(np.size(w) - np.count_nonzero(np.isfinite(w)))
            raise CheckpointError(f"tensor '{key}' has {bad} non-finite value(s) (NaN or Inf)")
        as_f32 = w.astype(np.float32)
        if not np.all(np.isfinite(as_f32)):
            raise CheckpointError(f"tensor '{key}' has values beyond float32's range (max |value| "
                                  f"{float(np.max(np.abs(w))):.3g})")
    for p in prefixes:
        a_log = weights[p + "A_log"].astype(np.float64)
        if a_log.size and a_log.max() > A_LOG_MAX:
            raise CheckpointError(f"tensor '{p}A_log' has values up to {a_log.max():.4g}: A = -exp(A_log) "
                                  f"overflows float32 above {A_LOG_MAX:.4g}")
    weights = {k: np.ascontiguousarray(w, dtype=np.float32) for k, w in weights.items()}

    d_model, n_features = _shape(weights, "linear_in.weight", 2)
    first = prefixes[0]
    d_inner, d_state = _shape(weights, first + "A_log", 2)
    d_conv = _shape(weights, first + "conv1d.weight", 3)[2]
    dt_rank = _shape(weights, first + "dt_proj.weight", 2)[1]
    n_classes = _shape(weights, "classifier.weight", 2)[0]
    dims = {"n_features": n_features, "d_model": d_model, "d_inner": d_inner, "d_state": d_state, "d_conv": d_conv,
            "dt_rank": dt_rank, "n_classes": n_classes}
    empty = [k for k, v in dims.items() if v < 1]
    if empty:
        raise CheckpointError(f"the checkpoint's weights give {empty[0]} = 0: every dimension must be at least 1")
    want = {"linear_in.bias": (d_model,), "classifier.weight": (n_classes, d_model), "classifier.bias": (n_classes,)}
    for p in prefixes:
        want.update({
            p + "A_log": (d_inner, d_state), p + "D": (d_inner,),
            p + "in_proj.weight": (2 * d_inner, d_model),
            p + "conv1d.weight": (d_inner, 1, d_conv), p + "conv1d.bias": (d_inner,),
            p + "x_proj.weight": (dt_rank + 2 * d_state, d_inner),
            p + "dt_proj.weight": (d_inner, dt_rank), p + "dt_proj.bias": (d_inner,),
            p + "out_proj.weight": (d_model, d_inner),
        })
    for key, shape in want.items():
        if weights[key].shape != shape:
            raise CheckpointError(f"tensor '{key}' has shape {tuple(weights[key].shape)}, expected {shape} "
                                  f"(d_model={d_model}, d_inner={d_inner}, d_state={d_state}, dt_rank={dt_rank})")

    extras = dict(extras or {})
    sample = extras.get("sample_input")
    if sample is not None:
        try:
            sample = np.asarray(sample, dtype=np.float32)
        except (TypeError, ValueError):
            raise CheckpointError(f"sample_input has dtype {np.asarray(sample).dtype}, expected floating point") from None
        if sample.ndim == 2:
            sample = sample[None]
        if sample.ndim != 3 or sample.shape[0] != 1 or sample.shape[2] != n_features or sample.shape[1] < 1:
            raise CheckpointError(f"sample_input has shape {tuple(sample.shape)}, expected (1, T, {n_features})")
        if not np.all(np.isfinite(sample)):
            raise CheckpointError("sample_input has non-finite values")
    published = extras.get("mambalite_c_logits")
    if published is not None and np.shape(published) != (n_classes,):
        raise CheckpointError(f"mambalite_c_logits has shape {np.shape(published)}, expected ({n_classes},)")
    return ModelSpec(name=name, n_features=n_features, d_model=d_model, d_inner=d_inner, d_state=d_state,
                     d_conv=d_conv, dt_rank=dt_rank, n_classes=n_classes, n_blocks=len(prefixes),
                     weights=weights, sample_input=sample, extras=extras, notes=notes)


def _holds(weights: dict, shown: int = 6) -> str:
    keys = list(weights)
    listed = ", ".join(keys[:shown]) + (", ..." if len(keys) > shown else "")
    return f"the file holds {len(keys)} tensor(s): {listed or 'none'}"


def _block_prefixes(weights: dict) -> list[str]:
    if any(k.startswith("mamba.") and not re.match(r"mamba\.\d+\.", k) for k in weights):
        return ["mamba."]
    indices = sorted({int(m.group(1)) for k in weights if (m := re.match(r"mamba\.(\d+)\.", k))})
    if not indices:
        raise CheckpointError("no Mamba block in the checkpoint (expected keys like 'mamba.A_log' or "
                              f"'mamba.0.A_log'); {_holds(weights)}")
    if indices != list(range(len(indices))):
        raise CheckpointError(f"Mamba blocks are numbered {indices}, expected 0..{len(indices) - 1}")
    return [f"mamba.{i}." for i in indices]


def _shape(weights: dict, key: str, ndim: int) -> tuple[int, ...]:
    shape = weights[key].shape
    if len(shape) != ndim:
        raise CheckpointError(f"tensor '{key}' has shape {tuple(shape)}, expected {ndim} dimensions")
    return shape
