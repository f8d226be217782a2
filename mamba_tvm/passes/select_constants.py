"""SelectFloatConstantsFromTable: `c ? 1.0f : -1.0f` becomes a read from a two-entry table.

Why: LLVM 22's Xtensa back end crashes ("Cannot select ... TargetConstantPool [2 x float]")
on any choice between two float constants, at every -O level: its DAG combiner turns the
select into a load from a constant-pool pair that the Xtensa instruction selector cannot
match, and earlier passes fold arithmetic or bit-cast workarounds back into that select.
A load from a named static table survives. So every Select / if_then_else whose two arms
are float constants becomes a call to `mamba_select_<bits of a>_<bits of b>(c)`, which
codegen/plain_c.py defines next to the kernels as a lookup in a `static const` table of
the exact bits (the name carries them, so no state passes between the two). Other
compilers see an ordinary inline function. Runs last in the plain-C lowering, after
everything that could still fold or create selects.
"""
import struct

import tvm
import tvm_ffi
from tvm import tirx

HELPER_PREFIX = "mamba_select_"


def helper_name(true_value: float, false_value: float) -> str:
    bits = [struct.unpack("<I", struct.pack("<f", v))[0] for v in (true_value, false_value)]
    return f"{HELPER_PREFIX}{bits[0]:08x}_{bits[1]:08x}"


def _float_constants(a, b) -> bool:
    return (isinstance(a, tirx.FloatImm) and isinstance(b, tirx.FloatImm)
            and str(a.ty) == "float32" and str(b.ty) == "float32")


def _on_select(expr):
    if _float_constants(expr.true_value, expr.false_value):
        return tirx.call_pure_extern("float32", helper_name(expr.true_value.value, expr.false_value.value),
                                     expr.condition)
    return expr


_IF_THEN_ELSE = tvm.ir.Op.get("prim.if_then_else")


def _on_call(expr):
    if expr.op.same_as(_IF_THEN_ELSE) and _float_constants(expr.args[1], expr.args[2]):
        return tirx.call_pure_extern("float32", helper_name(expr.args[1].value, expr.args[2].value), expr.args[0])
    return expr


def rewrite(func: tirx.PrimFunc) -> tirx.PrimFunc:
    return tvm_ffi.structural_map(func, ((tirx.Select, _on_select), (tvm.ir.Call, _on_call)))


@tvm.transform.module_pass(opt_level=0, name="SelectFloatConstantsFromTable")
def SelectFloatConstantsFromTable(mod: tvm.IRModule, _ctx) -> tvm.IRModule:
    updates = {gv: rewrite(f) for gv, f in mod.functions.items() if isinstance(f, tirx.PrimFunc)}
    for gv, func in updates.items():
        mod[gv] = func
    return mod
