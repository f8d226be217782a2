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
    module: torch.nn.Module | None  # the user's module: what the C must compute (None for ONNX)
    n_features: int
    sample_input: np.ndarray | None = None  # (1, T, n_features)
    extras: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    spec: ModelSpec | None = None  # set when the model came from a TinyMamba state_dict
    source: str = "module"  # state_dict | module | pt2 | onnx
    onnx_model: object | None = None  # the ONNX ModelProto of the onnx route
    traced: torch.nn.Module | None = None  # what torch.export traces: the module, foreign mixers swapped (a copy)

    def __post_init__(self):
        if self.traced is None:
            self.traced = self.module

    def reference(self, x: np.ndarray) -> np.ndarray:
        """The user's model on x (N, T, F): their module in float32, or the ONNX model in onnx's
        reference evaluator."""
        if self.onnx_model is not None:
            from .onnx_ops import run_reference

            return run_reference(self.onnx_model, x)
        from .reference import reference_logits

        return reference_logits(self.module, x)

    def _weights(self) -> list[np.ndarray]:
        if self.onnx_model is not None:
            from onnx import numpy_helper

            return [numpy_helper.to_array(t) for t in self.onnx_model.graph.initializer]
        return [t.detach().cpu().numpy() for t in self.module.state_dict().values()]

    @property
    def weight_bytes(self) -> int:
        """Bytes of the model's floating-point weights as float32 (what fp32 weights cost)."""
        return sum(w.size * 4 for w in self._weights() if np.issubdtype(w.dtype, np.floating))

    def estimated_weight_bytes(self, weights: str) -> int:
        """An early estimate of the stored weights: int8 matrices take a byte an element plus a
        float scale a row; everything else stays float32. The build checks the exact figure."""
        if weights != "int8":
            return self.weight_bytes
        total = 0
        for w in self._weights():
            if np.issubdtype(w.dtype, np.floating):
                total += w.size + 4 * w.shape[0] if w.ndim == 2 else 4 * w.size
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
    import copy

    notes = []
    traced = swap_mixers(copy.deepcopy(module).eval(), notes)
    return Model(name, module.eval(), int(x.shape[2]), x, notes=notes, source="module", traced=traced)


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

        hint = ": the classes of a pickled module must be importable where mamba_tvm runs" \
            if isinstance(exc, (ModuleNotFoundError, AttributeError)) else ""
        raise CheckpointError(f"{path}: not a readable PyTorch file ({_first_line(exc)}{hint})") from None
    return obj if isinstance(obj, torch.nn.Module) else None


def _module_model(module: torch.nn.Module, path: Path) -> Model:
    from .mixers import swap_mixers

    import copy

    notes = []
    traced = swap_mixers(copy.deepcopy(module).eval(), notes)
    return Model(path.stem, module.eval(), _input_features(module), notes=notes, source="module", traced=traced)


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
    import logging

    import relay_ops  # noqa: F401  (the Mamba custom ops must be registered to deserialize them)

    logging.getLogger("torch.export").setLevel(logging.CRITICAL)  # its own tracebacks; ours is one line
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
