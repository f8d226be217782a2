"""ContractFMA: float `a*b + c` becomes `fmaf(a, b, c)` in every kernel and helper.

`-std=c99` switches GCC's floating-point contraction off, so the C compiler never fuses a
multiply and an add by itself; on the Cortex-M7 (FPv5) `fmaf` is a single VFMA and rounds
once (more accurate than the pair). Cores whose compiler calls a library `fmaf` (LLVM 22 for
the Xtensa LX7) keep mul+add: the schedule record's `fma` knob. Run it last among the kernel
passes: a fused call is opaque to the schedule primitives that look for `acc + a*b`.
"""
from __future__ import annotations

import tvm
import tvm_ffi
from tvm import ir, tirx

F32 = "float32"
_Mul = ir.prim.expr.Mul
_Add = ir.prim.expr.Add
_Sub = ir.prim.expr.Sub
_FloatImm = ir.prim.expr.FloatImm


def _fma(a, b, c):
    return tirx.op.call_pure_extern(F32, "fmaf", a, b, c)


def _dtype(expr) -> str:
    return str(getattr(expr.ty, "dtype", ""))


def _is_f32_mul(e) -> bool:
    return isinstance(e, _Mul) and _dtype(e) == F32


def contract(expr):
    """One Add/Sub node (children already contracted): fused if it adds a product."""
    if _dtype(expr) != F32:
        return expr
    if isinstance(expr, _Add):
        if _is_f32_mul(expr.b):
            return _fma(expr.b.a, expr.b.b, expr.a)
        if _is_f32_mul(expr.a):
            return _fma(expr.a.a, expr.a.b, expr.b)
    if isinstance(expr, _Sub) and _is_f32_mul(expr.b):
        a, b = expr.b.a, expr.b.b  # c - a*b = fma(a, -b, c) when a factor is a constant
        if isinstance(b, _FloatImm):
            return _fma(a, tirx.const(-b.value, F32), expr.a)
        if isinstance(a, _FloatImm):
            return _fma(tirx.const(-a.value, F32), b, expr.a)
    return expr


def contract_fma(func: tirx.PrimFunc) -> tirx.PrimFunc:
    return tvm_ffi.structural_map(func, ((_Add, _Sub), contract))


def ContractFMA(enabled: bool = True) -> tvm.transform.Pass:
    @tirx.transform.prim_func_pass(opt_level=0, name="ContractFMA")
    def _pass(func: tirx.PrimFunc, _mod, _ctx) -> tirx.PrimFunc:
        return contract_fma(func) if enabled else func

    return _pass
