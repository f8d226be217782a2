"""ONNX -> Relax: `tvm.relax.frontend.onnx` with the `mamba_tvm` custom nodes mapped back to
the compiler's Mamba operators (the same graph-level calls as the torch.export route)."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import tvm
from tvm.relax.frontend.onnx import onnx_frontend

from relay_ops.mamba_ops import mamba_call

from ..errors import CheckpointError, CompileError
from .onnx_ops import DOMAIN, register_schemas

_OPS = {"CausalConv1dSiLU": "causal_conv1d_silu", "SelectiveScan": "selective_scan"}


class _Importer(onnx_frontend.ONNXGraphImporter):
    def _check_for_unsupported_ops(self, graph):
        plain = onnx.GraphProto()
        plain.CopyFrom(graph)
        keep = [n for n in plain.node if n.op_type not in _OPS]
        del plain.node[:]
        plain.node.extend(keep)
        try:
            super()._check_for_unsupported_ops(plain)
        except tvm.error.OpNotImplemented as exc:
            raise CompileError(str(exc)) from None

    def _convert_operator(self, op_name, inputs, attrs, opset):
        if op_name in _OPS:
            return mamba_call(_OPS[op_name], list(inputs), inputs[0].ty)
        return super()._convert_operator(op_name, inputs, attrs, opset)


def load_onnx(path: Path):
    """An .onnx file as a frontend Model (its reference: onnx's evaluator, onnx_ops.py)."""
    from .model import Model

    register_schemas()
    try:
        model = onnx.load(str(path))
    except Exception as exc:
        raise CheckpointError(f"{path}: not a readable ONNX model ({str(exc).splitlines()[0][:200]})") from None
    graph_inputs = [i for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    if len(graph_inputs) != 1:
        raise CheckpointError(f"{path}: the model takes {len(graph_inputs)} inputs; mamba_tvm compiles models of one "
                              "(1, T, features) input")
    dims = graph_inputs[0].type.tensor_type.shape.dim
    shape = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    if len(shape) != 3 or shape[2] is None:
        raise CheckpointError(f"{path}: the model's input has shape {shape}; expected (1, T, features)")
    extras = {"exported_seq_len": shape[1]} if shape[1] else {}
    return Model(path.stem, None, int(shape[2]), extras=extras, source="onnx", onnx_model=model)


def import_onnx(model: onnx.ModelProto, seq_len: int) -> tvm.IRModule:
    register_schemas()
    name = [i for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}][0].name
    n_features = model.graph.input[0].type.tensor_type.shape.dim[2].dim_value
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=18)
    importer = _Importer({name: [1, seq_len, n_features]}, "float32")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            mod = importer.from_onnx(model.graph, opset)
        except CompileError:
            raise
        except Exception as exc:
            raise CompileError(f"the ONNX model could not be imported: {str(exc).splitlines()[0][:300]}") from None
    return mod
