"""FloatMinMax: float32 min/max as C99 `fminf`/`fmaxf` calls, which FPv5 does in one instruction.

TVM's C printer writes `max(a, b)` as `(a) > (b) ? (a) : (b)`: on the Cortex-M7 that is a
compare, a flag transfer and a conditional move, three or four instructions, where GCC turns
`fmaxf` into one VMAXNM (and `fminf` into VMINNM). The clamps of every exp, the softplus's
|x| and the running max are such selects. Same results for a NaN first operand (both return
the other one); the second operand is a constant or the same NaN at every call site here.
Cores without the instruction would call the C library (the Xtensa LX7 has none): the
schedule record's `fminmax` knob.
"""
from __future__ import annotations

import tvm
import tvm_ffi
from tvm import ir, tirx

F32 = "float32"


def _select(node):
    if str(getattr(node.ty, "dtype", "")) != F32:
        return node
    name = "fmaxf" if isinstance(node, ir.prim.expr.Max) else "fminf"
    return tirx.op.call_pure_extern(F32, name, node.a, node.b)


def float_min_max(func: tirx.PrimFunc) -> tirx.PrimFunc:
    return tvm_ffi.structural_map(func, ((ir.prim.expr.Max, ir.prim.expr.Min), _select))


def FloatMinMax(enabled: bool = True) -> tvm.transform.Pass:
    @tirx.transform.prim_func_pass(opt_level=0, name="FloatMinMax")
    def _pass(func: tirx.PrimFunc, _mod, _ctx) -> tirx.PrimFunc:
        return float_min_max(func) if enabled else func

    return _pass
