"""Canonicalizing rewrites of what TVM's PyTorch importer emits, so later passes see one form.

- NormalizeTakeIndices: `take(x, -1, axis)` (PyTorch's `x[:, -1]`) becomes `take(x, n-1, axis)`.
  The importer emits take in "fast" mode, where a negative index reads out of bounds: the
  last-frame pooling computed garbage before this pass.
- PowerToSquare: `x ** 2` (RMSNorm's mean of squares) is `square(x)` and `x ** 0.5` is `sqrt(x)`,
  not a call to the C library's powf (which the LX7 has no implementation of, and which costs
  far more anywhere).
- TopKToMax: `x.max(dim).values` arrives as `topk(x, k=1)` with values and indices; when only
  the values are used it is `max(x, dim)`, which every later stage (the time-step split, the
  planner) knows.
"""
from __future__ import annotations

import numpy as np
import tvm
from tvm import ir, relax


def _shape(expr) -> list[int]:
    return [int(s) for s in expr.ty.shape]


@relax.expr_functor.mutator
class _Canonicalize(relax.PyExprMutator):
    def __init__(self, mod):
        super().__init__(mod)
        self.topk_values: dict = {}  # topk binding var -> the max that replaces its values

    def visit_var_binding_(self, binding):
        value = binding.value
        op = getattr(value.op, "name", "") if isinstance(value, relax.Call) else ""
        if op == "relax.take" and isinstance(value.args[1], ir.Constant):
            idx = value.args[1].value.numpy()
            axis = int(value.attrs.axis) % len(_shape(value.args[0]))
            if np.any(idx < 0):
                fixed = np.where(idx < 0, idx + _shape(value.args[0])[axis], idx).astype(idx.dtype)
                value = relax.Call(value.op, [self.visit_expr(value.args[0]), relax.const(fixed)], value.attrs)
                self._emit(binding, value)
                return
        if op == "relax.power" and isinstance(value.args[1], ir.Constant) and value.args[1].value.numpy().size == 1:
            exponent = float(value.args[1].value.numpy().reshape(-1)[0])
            if exponent in (2.0, 0.5):  # x**2 (RMSNorm's mean of squares) is a multiply, not powf
                x = self.visit_expr(value.args[0])
                self._emit(binding, relax.op.square(x) if exponent == 2.0 else relax.op.sqrt(x))
                return
        if op == "relax.topk" and int(value.attrs.k) == 1 and bool(value.attrs.largest):
            x = self.visit_expr(value.args[0])
            reducer = relax.op.max
            self.topk_values[binding.var] = self.builder_.emit(
                reducer(x, axis=[int(value.attrs.axis)], keepdims=True), name_hint=binding.var.name)
        if isinstance(value, relax.TupleGetItem) and value.tuple_value in self.topk_values and value.index == 0:
            self.set_var_remap(binding.var, self.topk_values[value.tuple_value])
            return
        super().visit_var_binding_(binding)

    def _emit(self, binding, value):
        emit = self.builder_.emit if isinstance(binding.var, relax.DataflowVar) else self.builder_.emit_output
        self.set_var_remap(binding.var, emit(value, name_hint=binding.var.name))


@tvm.transform.module_pass(opt_level=0, name="CanonicalizeImport")
def CanonicalizeImport(mod: tvm.IRModule, _ctx) -> tvm.IRModule:
    """NormalizeTakeIndices and TopKToMax in one walk; the topk itself is left for DCE."""
    rewriter = _Canonicalize(mod)
    for gv, func in list(mod.functions_items()):
        if isinstance(func, relax.Function):
            rewriter.builder_.update_func(gv, rewriter.visit_expr(func))
    mod = relax.transform.CanonicalizeBindings()(rewriter.builder_.get())  # tuple(a, b)[0] -> a
    return relax.transform.DeadCodeElimination()(mod)
