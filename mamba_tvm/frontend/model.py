"""What the compiler compiles: the user's model, whatever form it came in.

A Model is an nn.Module taking (batch, T, features) plus what the build needs to check and
demonstrate it (a sample input, its name, notes on what loading changed). Every route ends
here: a TinyMamba state_dict (.npz/.pt/.pth) becomes the TinyMamba module; a saved
torch.export program (.pt2) becomes its module; a whole pickled module (.pt/.pth, only
with trust_pickle) is used as it is; the Python API passes the module itself. Known Mamba
mixers from other libraries are swapped for mamba_tvm.nn.Mamba before export (mixers.py).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import CheckpointError
from .checkpoint import ModelSpec, load_checkpoint


@dataclass
class Model:
    name: str
    module: torch.nn.Module  # the user's module: what the C must compute
    n_features: int
    sample_input: np.ndarray | None = None  # (1, T, n_features)
    extras: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    spec: ModelSpec | None = None  # set when the model came from a TinyMamba state_dict
    source: str = "module"  # state_dict | module | pt2 | onnx
    onnx_model: object | None = None  # the ONNX ModelProto of the onnx route

    @property
    def weight_bytes(self) -> int:
        """Bytes of the module's parameters and buffers as float32 (what fp32 weights cost)."""
        tensors = list(self.module.state_dict().values())
        return sum(t.numel() * 4 for t in tensors if t.is_floating_point())

    def estimated_weight_bytes(self, weights: str) -> int:
        """An early estimate of the stored weights: int8 matrices take a byte an element plus a
        float scale a row; everything else stays float32. The build checks the exact figure."""
        if weights != "int8":
            return self.weight_bytes
        total = 0
        for t in self.module.state_dict().values():
            if not t.is_floating_point():
                continue
            total += t.numel() + 4 * t.shape[0] if t.dim() == 2 else 4 * t.numel()
        return total


def model_from_spec(spec: ModelSpec) -> Model:
    from .tinymamba import tinymamba_module

    return Model(spec.name, tinymamba_module(spec), spec.n_features, spec.sample_input, dict(spec.extras),
                 list(spec.notes), spec, "state_dict")


def model_from_module(module: torch.nn.Module, example_input, name: str = "model") -> Model:
    """The Python API's route: the user's module and an example input (1, T, features)."""
    from .mixers import swap_mixers

    x = example_input[0] if isinstance(example_input, (tuple, list)) else example_input
    x = np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x, dtype=np.float32)
    if x.ndim != 3 or x.shape[0] != 1:
        raise CheckpointError(f"the example input has shape {tuple(x.shape)}; expected (1, T, features)")
    notes = []
    module = swap_mixers(module.eval(), notes)
    return Model(name, module, int(x.shape[2]), x, notes=notes, source="module")


def load_model(path: str | Path, trust_pickle: bool = False) -> Model:
    """A model file by its kind: .npz/.pt/.pth state_dict, .pt2 (torch.export.save), .onnx, or a
    whole pickled module (.pt/.pth) when trust_pickle is given (unpickling runs its code)."""
    path = Path(path)
    if path.is_file() and path.suffix == ".pt2":
        return _load_pt2(path)
    if path.is_file() and path.suffix == ".onnx":
        from .onnx_import import load_onnx

        return load_onnx(path)
    if trust_pickle and path.is_file() and path.suffix in (".pt", ".pth"):
        module = _load_pickled_module(path)
        if module is not None:
            return _module_model(module, path)
    return model_from_spec(load_checkpoint(path))


def _load_pickled_module(path: Path) -> torch.nn.Module | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        from .checkpoint import _first_line

        raise CheckpointError(f"{path}: not a readable PyTorch file ({_first_line(exc)})") from None
    return obj if isinstance(obj, torch.nn.Module) else None


def _module_model(module: torch.nn.Module, path: Path) -> Model:
    from .mixers import swap_mixers

    notes = []
    module = swap_mixers(module.eval(), notes)
    n_features = _input_features(module)
    return Model(path.stem, module, n_features, notes=notes, source="module")


def _input_features(module: torch.nn.Module) -> int:
    """The feature count of a module's (batch, T, features) input: its first layer's input size."""
    for m in module.modules():
        if isinstance(m, torch.nn.Linear):
            return m.in_features
        if isinstance(m, torch.nn.Conv1d):
            return m.in_channels
    raise CheckpointError("cannot tell the model's input size (no Linear or Conv1d layer): use the Python API "
                          "mamba_tvm.compile(module, example_inputs) or save it with torch.export (.pt2)")


def _load_pt2(path: Path) -> Model:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ep = torch.export.load(path)
    except Exception as exc:
        from .checkpoint import _first_line

        raise CheckpointError(f"{path}: not a readable torch.export program ({_first_line(exc)})") from None
    inputs = [s for s in ep.graph_signature.input_specs if s.kind == torch.export.graph_signature.InputKind.USER_INPUT]
    if len(inputs) != 1:
        raise CheckpointError(f"{path}: the program takes {len(inputs)} inputs; mamba_tvm compiles models of one "
                              "(1, T, features) input")
    node = next(n for n in ep.graph.nodes if n.op == "placeholder" and n.name == inputs[0].arg.name)
    shape = [int(d) for d in node.meta["val"].shape]
    if len(shape) != 3 or shape[0] != 1:
        raise CheckpointError(f"{path}: the program's input has shape {tuple(shape)}; expected (1, T, features)")
    module = ep.module()
    sample = None
    return Model(path.stem, module, shape[2], sample, extras={"exported_seq_len": shape[1]}, source="pt2")
