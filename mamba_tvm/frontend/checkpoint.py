"""Checkpoint loading and validation.

The model family is MambaLite-Micro's TinyMamba: `linear_in` -> one or more
mamba_simple-style blocks (`mamba.*`, or `mamba.0.*`, `mamba.1.*`, ... when stacked) ->
mean over time -> `classifier`. Every dimension is read from the weight shapes; every
later stage trusts the ModelSpec built here, so all checks live in this file.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import CheckpointError

#: tensors of one Mamba block, relative to its prefix
BLOCK_KEYS = ("A_log", "D", "in_proj.weight", "conv1d.weight", "conv1d.bias", "x_proj.weight",
              "dt_proj.weight", "dt_proj.bias", "out_proj.weight")
HEAD_KEYS = ("linear_in.weight", "linear_in.bias", "classifier.weight", "classifier.bias")
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
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.suffix == ".npz":
        try:
            with np.load(path) as data:
                arrays = {k: data[k] for k in data.files}
        except Exception as exc:  # corrupt zip, pickled objects, ...
            raise CheckpointError(f"{path}: not a readable .npz file ({exc})") from None
    elif path.suffix in (".pt", ".pth"):
        arrays = _load_torch(path)
    else:
        raise CheckpointError(f"{path}: unsupported checkpoint type '{path.suffix}' (use .npz, .pt or .pth)")
    extras = {k: arrays.pop(k) for k in EXTRA_KEYS if k in arrays}
    return spec_from_state_dict(arrays, name=path.stem, extras=extras)


def _load_torch(path: Path) -> dict[str, np.ndarray]:
    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({exc})") from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a state_dict, found {type(obj).__name__}")
    return {k: (v.detach().cpu().numpy() if hasattr(v, "detach") else np.asarray(v)) for k, v in obj.items()}


def spec_from_state_dict(state: dict, name: str = "model", extras: dict | None = None) -> ModelSpec:
    """Validate a state_dict (torch tensors or arrays) and read the dimensions off it."""
    weights = {k: np.asarray(v.detach().cpu().numpy() if hasattr(v, "detach") else v) for k, v in state.items()}
    prefixes = _block_prefixes(weights)
    expected = set(HEAD_KEYS) | {p + k for p in prefixes for k in BLOCK_KEYS}
    missing = sorted(expected - weights.keys())
    if missing:
        raise CheckpointError(f"missing tensor '{missing[0]}'" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    extra = sorted(weights.keys() - expected)
    if extra:
        raise CheckpointError(f"unexpected tensor '{extra[0]}': not part of a TinyMamba checkpoint")

    for key, w in weights.items():
        if not np.issubdtype(w.dtype, np.floating):
            raise CheckpointError(f"tensor '{key}' has dtype {w.dtype}, expected floating point")
        if not np.all(np.isfinite(w)):
            bad = int(np.size(w) - np.count_nonzero(np.isfinite(w)))
            raise CheckpointError(f"tensor '{key}' has {bad} non-finite value(s) (NaN or Inf)")
    weights = {k: np.ascontiguousarray(w, dtype=np.float32) for k, w in weights.items()}

    d_model, n_features = _shape(weights, "linear_in.weight", 2)
    first = prefixes[0]
    d_inner, d_state = _shape(weights, first + "A_log", 2)
    d_conv = _shape(weights, first + "conv1d.weight", 3)[2]
    dt_rank = _shape(weights, first + "dt_proj.weight", 2)[1]
    n_classes = _shape(weights, "classifier.weight", 2)[0]
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
        sample = np.asarray(sample, dtype=np.float32)
        if sample.ndim == 2:
            sample = sample[None]
        if sample.ndim != 3 or sample.shape[0] != 1 or sample.shape[2] != n_features:
            raise CheckpointError(f"sample_input has shape {tuple(sample.shape)}, expected (1, T, {n_features})")
        if not np.all(np.isfinite(sample)):
            raise CheckpointError("sample_input has non-finite values")
    return ModelSpec(name=name, n_features=n_features, d_model=d_model, d_inner=d_inner, d_state=d_state,
                     d_conv=d_conv, dt_rank=dt_rank, n_classes=n_classes, n_blocks=len(prefixes),
                     weights=weights, sample_input=sample, extras=extras)


def _block_prefixes(weights: dict) -> list[str]:
    if any(k.startswith("mamba.") and not re.match(r"mamba\.\d+\.", k) for k in weights):
        return ["mamba."]
    indices = sorted({int(m.group(1)) for k in weights if (m := re.match(r"mamba\.(\d+)\.", k))})
    if not indices:
        raise CheckpointError("missing tensor 'mamba.A_log': no Mamba block in the checkpoint")
    if indices != list(range(len(indices))):
        raise CheckpointError(f"Mamba blocks are numbered {indices}, expected 0..{len(indices) - 1}")
    return [f"mamba.{i}." for i in indices]


def _shape(weights: dict, key: str, ndim: int) -> tuple[int, ...]:
    shape = weights[key].shape
    if len(shape) != ndim:
        raise CheckpointError(f"tensor '{key}' has shape {tuple(shape)}, expected {ndim} dimensions")
    return shape
