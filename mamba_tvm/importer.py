"""torch.export -> Relax, with the custom ops mapped to their TIR kernels by R.call_tir."""
from __future__ import annotations

import warnings

import numpy as np
import torch
import tvm
from tvm import relax
from tvm.relax.frontend.torch import from_exported_program

from relay_ops import CUSTOM_CONVERT_MAP

from .errors import CompileError
from .frontend import ModelSpec, TinyMamba
from .frontend.reference import TinyMambaFinish, TinyMambaStep, state_shapes


def import_model(spec: ModelSpec, seq_len: int, int8: bool = False) -> tvm.IRModule:
    """Trace the reference model for a (1, seq_len, features) input; weights become Relax constants."""
    if seq_len < 1:
        raise CompileError(f"sequence length must be positive, got {seq_len}")
    example = torch.zeros(1, seq_len, spec.n_features, dtype=torch.float32)
    return _export(TinyMamba(spec, int8), (example,))


def _export(module: torch.nn.Module, args: tuple) -> tvm.IRModule:
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.export's own pytree deprecations
        exported = torch.export.export(module, args)
        return from_exported_program(exported, custom_convert_map=CUSTOM_CONVERT_MAP, keep_params_as_input=False)


def import_step_model(spec: ModelSpec, int8: bool = False) -> tvm.IRModule:
    """The recurrence as two Relax functions: `step` (one frame, states updated in place by
    call_tir_inplace) and `finish` (pooled sum, 1/T -> logits). The time loop around `step`
    is emitted by the AOT executor, so no tensor with a time axis is ever planned."""
    model = TinyMamba(spec, int8)
    states = [torch.zeros(shape) for _, shape in state_shapes(spec)]
    step_mod = _export(TinyMambaStep(model), (torch.zeros(1, spec.n_features), *states))
    finish_mod = _export(TinyMambaFinish(model), (states[0], torch.ones(1, 1)))
    bb = relax.BlockBuilder()
    for entry, mod in (("step", step_mod), ("finish", finish_mod)):
        # kernels of the two graphs may share a name with other shapes: add_func renames them
        renamed = {gv: bb.add_func(func, gv.name_hint) for gv, func in mod.functions.items() if gv.name_hint != "main"}
        main = _RenameGlobalVars(renamed).visit_expr(mod["main"])
        bb.add_func(main.with_attr("global_symbol", entry), entry)
    return bb.get()


@relax.expr_functor.mutator
class _RenameGlobalVars(relax.PyExprMutator):
    """Points calls at renamed kernels (IRModule has no rename of its own in TVM 0.27)."""

    def __init__(self, mapping: dict):
        super().__init__()
        self.mapping = mapping

    def visit_global_var_(self, gv):
        return self.mapping.get(gv, gv)
