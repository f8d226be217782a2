"""Where each kernel is called from: the argument lists of its call_tir/call_tir_inplace calls.

Schedule rules that specialize a kernel to its constant operands (a weight layout, a bound
read from A) need every call site: a rule applies only if all of them pass constants, and
`replace_kernels` then rewrites those constants at every call.
"""
from __future__ import annotations

import tvm
import tvm_ffi
from tvm import ir, relax

CALL_TIR = ("relax.call_tir", "relax.call_tir_inplace")


def call_target(call) -> ir.GlobalVar | None:
    if isinstance(call.op, ir.Op) and call.op.name in CALL_TIR and isinstance(call.args[0], ir.GlobalVar):
        return call.args[0]
    return None


def kernel_call_args(mod: tvm.IRModule) -> dict[ir.GlobalVar, list[list]]:
    """kernel GlobalVar -> the argument lists it is called with, over every Relax function."""
    calls: dict = {}

    def visit(call):
        target = call_target(call)
        if target is not None:
            calls.setdefault(target, []).append(list(call.args[1].fields))
        return call

    for func in mod.functions.values():
        if isinstance(func, relax.Function):
            tvm_ffi.structural_map(func, (relax.Call, visit))
    return calls


def constant_args(mod: tvm.IRModule, gv: ir.GlobalVar, index: int) -> list | None:
    """The numpy value of argument `index` at every call of `gv`, or None if one is not a constant."""
    values = []
    for args in kernel_call_args(mod).get(gv, []):
        if not isinstance(args[index], ir.Constant):
            return None
        values.append(args[index].value.numpy())
    return values or None


@relax.expr_functor.mutator
class _ReplaceConstants(relax.PyExprMutator):
    """Calls to rewritten kernels get their weight constant in the new layout (once per constant)."""

    def __init__(self, mod: tvm.IRModule, plans: dict, renamed: dict):
        super().__init__(mod)
        self.plans = plans  # new kernel GlobalVar -> (param index, constant tensor -> numpy array)
        self.renamed = renamed  # old kernel GlobalVar -> new
        self.done: list = []  # (kernel, original constant, transformed): tied weights stay one array

    def _transformed(self, kernel, const, transform):
        for k, original, new in self.done:
            if k.same_as(kernel) and original.same_as(const):
                return new
        new = relax.const(transform(const.value))
        self.done.append((kernel, const, new))
        return new

    def visit_call_(self, call):
        call = super().visit_call_(call)
        target = self.renamed.get(call_target(call))
        if target is None:
            return call
        index, transform = self.plans[target]
        args = list(call.args[1].fields)
        args[index] = self._transformed(target, args[index], transform)
        return relax.Call(call.op, [target, relax.Tuple(args)] + list(call.args[2:]), call.attrs,
                          call.ty_args if hasattr(call, "ty_args") else None)


def replace_kernels(mod: tvm.IRModule, funcs: dict, plans: dict) -> tvm.IRModule:
    """Swap kernels whose constant operand changes layout or type: funcs maps a kernel's
    GlobalVar to its new PrimFunc, plans maps it to (parameter index, transform), and every call
    passes transform(constant) instead. A kernel whose parameter changed gets a new GlobalVar (a
    GlobalVar carries its function's type, which the call_tir type check reads)."""
    if not funcs:
        return mod
    bb = relax.BlockBuilder(tvm.IRModule({gv: f for gv, f in mod.functions.items() if gv not in funcs},
                                         attrs=mod.attrs))
    renamed = {gv: bb.add_func(func, gv.name_hint) for gv, func in funcs.items()}
    new_mod = bb.get()
    mutator = _ReplaceConstants(new_mod, {renamed[gv]: plan for gv, plan in plans.items()}, renamed)
    for gv, func in list(new_mod.functions.items()):
        if isinstance(func, relax.Function):
            new_mod[gv] = mutator.visit_expr(func)
    return new_mod
