"""ScheduleScan: the selective scan's state loop, unrolled and with exp's range check hoisted.

The loop over the d_state state entries of one channel (annotated `mamba_tvm.state_loop` by
relay_ops/selective_scan.py) evaluates exp(delta * a[n]) with one delta per channel and a[n]
from the constant A (times A_scale with int8 A). Three knobs:

- `unroll`: unroll the state loop by this factor (1: not; d_state: completely). Completely
  unrolled, the layer-by-layer scan's state h[n] has constant indices and stays in FPU
  registers across the time loop; in the step kernel GCC then runs out of FPU registers
  (16 interleaved exps) and spills, so the Cortex-M7 record keeps it small.
- `hoist`: A's bounds are known at build time (every call site passes constants): a_min <= a[n]
  <= a_max <= 0. For a channel with 0 <= delta <= EXP_LO / a_min every argument lies in
  [EXP_LO, 0], so the loop is versioned once per channel: that branch calls
  `fast_exp_in_range` (no clamp), the other keeps the clamped `fast_exp`.
- `base2`: in the range-proven branch exp(delta * a) becomes 2^((delta * log2 e) * a), the
  product with log2 e taken once per channel, which saves the Cody-Waite reduction per
  element (`fast_exp2_in_range`).

Runs after LowerFastMath (it rewrites the `fast_exp` calls LowerFastMath made; with exp="libm"
only the unrolling applies) and before ContractFMA.
"""
from __future__ import annotations

import numpy as np
import tvm
import tvm_ffi
from tvm import ir, tirx

from .call_sites import constant_args
from .fast_math import EXP_LO, LOG2E, F32, _Helpers, fast_exp2_in_range, fast_exp_in_range

STATE_LOOP = "mamba_tvm.state_loop"
UNROLLED = tirx.ForKind.UNROLLED


def _factor_range(mod: tvm.IRModule, gv: ir.GlobalVar, func: tirx.PrimFunc, names) -> tuple[float, float] | None:
    """(min, max) of a[d, n] = prod of the named constant parameters (broadcast over the last
    axis), over every call site; None if one of them is not a constant."""
    index = {p.name: i for i, p in enumerate(func.params)}
    if not all(str(n) in index for n in names):
        return None
    per_param = [constant_args(mod, gv, index[str(n)]) for n in names]
    if any(v is None for v in per_param):
        return None
    lo, hi = np.inf, -np.inf
    for values in zip(*per_param):
        a = np.ones((), np.float64)
        for v in values:
            a = a * v.astype(np.float64)
        lo, hi = min(lo, float(a.min())), max(hi, float(a.max()))
    return lo, hi


def _uses(expr, var) -> bool:
    found = []

    def visit(v):
        if v.same_as(var):
            found.append(v)
        return v

    tvm_ffi.structural_map(expr, (ir.Var, visit))
    return bool(found)


def _exp_calls(stmt) -> list:
    found = []

    def visit(call):
        if isinstance(call.op, ir.GlobalVar) and call.op.name_hint == "fast_exp":
            found.append(call)
        return call

    tvm_ffi.structural_map(stmt, (ir.expr.Call, visit))
    return found


def _split_invariant(arg, loop_var):
    """exp's argument as (loop-invariant factor, varying factor), or None."""
    if not isinstance(arg, ir.prim.expr.Mul):
        return None
    if not _uses(arg.a, loop_var) and _uses(arg.b, loop_var):
        return arg.a, arg.b
    if not _uses(arg.b, loop_var) and _uses(arg.a, loop_var):
        return arg.b, arg.a
    return None


def _fresh_loop(loop: tirx.For, body, unroll: int):
    """A copy of `loop` with new loop variables (both versions of a loop may not share one),
    its body unrolled `unroll` times (the largest divisor of the extent not above it)."""
    dtype = str(loop.loop_var.ty.dtype)
    extent = int(loop.extent)
    factor = max(f for f in range(1, min(max(unroll, 1), extent) + 1) if extent % f == 0)
    outer, inner = tirx.Var(loop.loop_var.name, dtype), tirx.Var(loop.loop_var.name + "_i", dtype)
    index = loop.min + outer if factor == 1 else loop.min + outer * tirx.const(factor, dtype) + inner
    body = tvm_ffi.structural_map(body, (ir.Var, lambda v: index if v.same_as(loop.loop_var) else v))
    zero = tirx.const(0, dtype)
    if factor == 1:
        return tirx.For(outer, zero, loop.extent, tirx.ForKind.SERIAL, body, None, {})
    body = tirx.For(inner, zero, tirx.const(factor, dtype), UNROLLED, body, None, {})
    return tirx.For(outer, zero, tirx.const(extent // factor, dtype), tirx.ForKind.SERIAL, body, None, {})


def _location(buffer_name: str, indices) -> tuple:
    return buffer_name, str(list(indices))


def _proven_nonnegative(proven: frozenset, stmt) -> frozenset:
    """The locations holding a softplus result (>= 0 by construction) after `stmt`: a store of
    fast_softplus adds its location, any other store to that buffer forgets the buffer's."""
    if not isinstance(stmt, tirx.BufferStore):
        return proven
    name = stmt.buffer.name
    kept = frozenset(loc for loc in proven if loc[0] != name)
    value = stmt.value
    if isinstance(value, ir.expr.Call) and isinstance(value.op, ir.GlobalVar) and value.op.name_hint == "fast_softplus":
        return kept | {_location(name, stmt.indices)}
    return kept


def _is_nonnegative(expr, nonnegative: frozenset) -> bool:
    return isinstance(expr, ir.expr.TensorLoad) and _location(expr.source.name, expr.indices) in nonnegative


def schedule_state_loop(loop: tirx.For, bounds, helpers: _Helpers, unroll: int, hoist: bool, base2: bool,
                        table: int = 0, nonnegative: frozenset = frozenset()):
    plain = _fresh_loop(loop, loop.body, unroll)
    calls = _exp_calls(loop.body)
    if not (hoist and bounds and calls):
        return plain
    a_min, a_max = bounds
    parts = [_split_invariant(c.args[0], loop.loop_var) for c in calls]
    if a_max > 0 or a_min >= 0 or any(p is None for p in parts) or len({str(p[0]) for p in parts}) != 1:
        return plain
    delta = parts[0][0]
    limit = float(np.float32(EXP_LO / a_min) * np.float32(1 - 2 ** -20))  # delta * a_min >= EXP_LO, with margin
    binds = []
    if base2:
        scaled = tirx.Var("delta_log2e", F32)
        binds.append(tirx.Bind(scaled, delta * tirx.const(LOG2E, F32)))

    def fast(call):
        if not (isinstance(call.op, ir.GlobalVar) and call.op.name_hint == "fast_exp"):
            return call
        varying = _split_invariant(call.args[0], loop.loop_var)[1]
        if base2:
            return helpers.call("fast_exp2_in_range", lambda: fast_exp2_in_range(table), scaled * varying)
        return helpers.call("fast_exp_in_range", lambda: fast_exp_in_range(table), call.args[0])

    proven = _fresh_loop(loop, tvm_ffi.structural_map(loop.body, (ir.expr.Call, fast)), unroll)
    in_range = delta <= tirx.const(limit, F32)
    if not _is_nonnegative(delta, nonnegative):  # a softplus result needs no lower check
        in_range = tirx.And(delta >= tirx.const(0.0, F32), in_range)
    then = tirx.SeqStmt(binds + [proven]) if binds else proven
    return tirx.IfThenElse(in_range, then, plain)


def ScheduleScan(unroll: int = 1, hoist: bool = True, base2: bool = True, table: int = 0) -> tvm.transform.Pass:
    """table: LowerFastMath's 2^(j/N) table size (exp="tableN"), 0 for the polynomial helpers."""
    @tvm.transform.module_pass(opt_level=0, name="ScheduleScan")
    def _pass(mod: tvm.IRModule, _ctx) -> tvm.IRModule:
        helpers = _Helpers(mod)
        for gv, func in [(gv, f) for gv, f in mod.functions.items() if isinstance(f, tirx.PrimFunc)]:
            def rewrite(stmt, nonnegative=frozenset()):
                if not isinstance(stmt, tirx.For) or STATE_LOOP not in stmt.annotations:
                    return stmt
                names = stmt.annotations[STATE_LOOP]
                return schedule_state_loop(stmt, _factor_range(mod, gv, func, names), helpers, unroll, hoist, base2,
                                           table, nonnegative)

            def rewrite_seq(seq):
                """State loops in a sequence know what the statements before them proved."""
                new, proven = [], frozenset()
                for stmt in seq.seq:
                    new.append(rewrite(stmt, proven))
                    proven = _proven_nonnegative(proven, stmt)
                return seq if all(a.same_as(b) for a, b in zip(new, seq.seq)) else tirx.SeqStmt(new)

            new_func = tvm_ffi.structural_map(func, (tirx.SeqStmt, rewrite_seq))
            new_func = tvm_ffi.structural_map(new_func, (tirx.For, rewrite))
            if not new_func.same_as(func):
                mod[gv] = new_func
        return mod

    return _pass
