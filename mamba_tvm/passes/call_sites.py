"""Where each kernel is called from: the argument lists of its call_tir/call_tir_inplace calls.

Schedule rules that specialize a kernel to its constant operands (a weight layout, a bound
read from A) need every call site: a rule applies only if all of them pass constants.
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
