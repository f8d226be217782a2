"""BlockMatvec: register-blocked matrix-vector products with the weights laid out for the loop.

A legalized matmul computes one output at a time, reading a weight column with a stride of N:
every multiply-add pays a load of x, a load of w, index arithmetic and a loop step (5.4
instructions on the Cortex-M7). This rule computes `block` outputs per pass over x, so each
x[k] is loaded once for `block` multiply-adds whose accumulators stay in registers (the
accumulator buffer shrinks to `block` floats, indexed by constants once unrolled, and the C
compiler keeps it in FPU registers: the M7 has 32), and unrolls the reduction by `unroll`.

The weight is stored in the order this loop reads it: W[k, n] (or W[n, k]) becomes
W'[n // block, k, n % block], contiguous for the inner loop. s_tir `transform_layout` rewrites
the kernel, and the same IndexMap (`IndexMap.map_tensor`) rewrites the constant at every call
site, so the new layout costs nothing at run time. A kernel is only rewritten when every call
passes a constant for that weight. Rows (the time axis of layer-by-layer programs) stay outer.

Knobs (schedule record): `matvec_block` (outputs per pass, 1 = off; a divisor of N is used),
`unroll` (reduction unroll), and for int64 accumulators (the integer int8 kernel), which take
two core registers each, `matvec_block_int64` and `matvec_unroll_int64`.
"""
from __future__ import annotations

import tvm
import tvm_ffi
from tvm import ir, tirx
from tvm.s_tir.schedule import Schedule, ScheduleError

SPATIAL, REDUCE = 0, 2
from .call_sites import kernel_call_args, replace_kernels
from .fuse_epilogues import SCHEDULED, is_scheduled


def _try(fn, *args):
    try:
        return fn(*args)
    except (ScheduleError, ValueError, RuntimeError, tvm.error.InternalError):
        return None


def _block_size(n: int, block: int) -> int:
    """The largest divisor of n not above block (n % b == 0, so no padding)."""
    return max(b for b in range(1, min(block, n) + 1) if n % b == 0)


def _loads(stmt) -> list:
    found = []

    def visit(load):
        found.append(load)
        return load

    tvm_ffi.structural_map(stmt, (ir.expr.TensorLoad, visit))
    return found


class _Matvec:
    """What the rule found in a kernel: the reduction block, its weight parameter and axes."""

    def __init__(self, block_rv, param_index: int, weight_name: str, n_first: bool, n: int, index_dtype: str):
        self.block_rv, self.param_index, self.weight_name = block_rv, param_index, weight_name
        self.n_first, self.n, self.index_dtype = n_first, n, index_dtype


def find_matvec(sch: Schedule, func: tirx.PrimFunc) -> _Matvec | None:
    """The one reduction block `acc[.., n] += x[.., k] * W[k, n]` (or W[n, k]) whose W is a parameter."""
    try:
        blocks = sch.get_child_blocks(sch.get_sblock("root"))
    except (ScheduleError, ValueError, RuntimeError):
        return None
    for rv in blocks:
        if any(int(iv.iter_type) == REDUCE for iv in sch.get(rv).iter_vars):
            found = _match(sch.get(rv), rv, func)
            if found is not None:
                return found
    return None


def _match(block, rv, func: tirx.PrimFunc) -> _Matvec | None:
    reduce_vars = [iv.var for iv in block.iter_vars if int(iv.iter_type) == REDUCE]
    spatial = [iv for iv in block.iter_vars if int(iv.iter_type) == SPATIAL]
    if len(reduce_vars) != 1 or not spatial or block.init is None:
        return None
    k, n_iv = reduce_vars[0], spatial[-1]
    params = {p.name: i for i, p in enumerate(func.params)}
    loads = _loads(block.body)
    written = block.writes[0].source.name
    # a product of two operands besides the accumulator: the weight and an activation row
    if len({load.source.name for load in loads} - {written}) != 2:
        return None
    for load in loads:
        idx = list(load.indices)
        name = load.source.name
        if name not in params or len(idx) != 2 or not all(isinstance(i, ir.Var) for i in idx):
            continue
        dtype = str(idx[0].ty.dtype)
        if idx[0].same_as(k) and idx[1].same_as(n_iv.var):
            return _Matvec(rv, params[name], name, False, int(n_iv.dom.extent), dtype)
        if idx[0].same_as(n_iv.var) and idx[1].same_as(k):
            return _Matvec(rv, params[name], name, True, int(n_iv.dom.extent), dtype)
    return None


def weight_index_map(found: _Matvec, b: int) -> tirx.IndexMap:
    if found.n_first:
        return tirx.IndexMap.from_func(lambda n, k: (n // b, k, n % b), index_dtype=found.index_dtype)
    return tirx.IndexMap.from_func(lambda k, n: (n // b, k, n % b), index_dtype=found.index_dtype)


def schedule_matvec(func: tirx.PrimFunc, block: int, unroll: int, block_int64: int = 4, unroll_int64: int = 1):
    """(blocked kernel, weight parameter index, IndexMap for the weight) or None."""
    sch = Schedule(tvm.IRModule({"main": func}))
    found = find_matvec(sch, func)
    if found is None:
        return None
    for consumer in sch.get_consumers(found.block_rv):
        _hide_upstream_reads(sch, consumer, found.block_rv)
    sch = Schedule(sch.mod)  # the dependences are read once, from the read regions
    found = find_matvec(sch, sch.mod["main"])
    wide = str(sch.get(found.block_rv).writes[0].source.ty.dtype) == "int64"  # two core registers each
    b = _block_size(found.n, block_int64 if wide else block)
    unroll = unroll_int64 if wide else unroll
    if b < 2:
        return None
    rv = found.block_rv
    loops = sch.get_loops(rv)
    n_loop, k_loop = loops[-2], loops[-1]
    out_is_param = sch.get(rv).writes[0].source.name in {p.name for p in func.params}
    n_o, n_i = sch.split(n_loop, [None, b])
    k_extent = int(sch.get(k_loop).extent)
    u = unroll if unroll > 1 and k_extent % unroll == 0 and k_extent > unroll else 1
    k_o, k_i = sch.split(k_loop, [None, u])
    sch.reorder(n_o, k_o, k_i, n_i)
    index_map = weight_index_map(found, b)
    sch.transform_layout(rv, found.weight_name, index_map)
    if out_is_param:  # accumulate in a block-sized temporary, not in the output
        copy = sch.cache_write(rv, 0, "global")
        sch.reverse_compute_at(copy, n_o)
    for consumer in sch.get_consumers(rv):
        _try(sch.reverse_compute_at, consumer, n_o)
    init = sch.decompose_reduction(rv, k_o)
    _decompose_other_reductions(sch, rv)
    if len(loops) > 2:  # rows (the time axis of a layer-by-layer program): per-row producers go under it
        for producer in _producers_upstream(sch, rv):
            _try(sch.compute_at, producer, sch.get_loops(rv)[0])
    if u > 1:
        sch.unroll(k_i)
    sch.unroll(n_i)
    for blk in [init] + list(sch.get_consumers(rv)):
        _unroll_inner(sch, blk, n_o)
    return sch.mod["main"].with_attr(SCHEDULED, 1), found.param_index, index_map


def _decompose_other_reductions(sch: Schedule, matvec) -> None:
    """Other reductions of the kernel (the int8 kernel's max|x|): init before the loop, not an
    `if (k == 0)` in it (FuseEpilogues, which would do it, skips a scheduled kernel)."""
    for blk in sch.get_child_blocks(sch.get_sblock("root")):
        b = sch.get(blk)
        if b.same_as(sch.get(matvec)) or b.init is None:
            continue
        n_spatial = sum(1 for iv in b.iter_vars if int(iv.iter_type) == SPATIAL)
        loops = sch.get_loops(blk)
        if n_spatial < len(loops):
            _try(sch.decompose_reduction, blk, loops[n_spatial])


def _hide_upstream_reads(sch: Schedule, consumer, matvec) -> None:
    """An epilogue that also reads a per-row value computed before the matvec (the int8
    kernel's 2^-s) cannot be moved under the blocked output loop: reverse_compute_at wants
    every producer under that loop. The value is final before the loop nest starts and the
    blocks keep their order, so that read is hidden from the dependency check."""
    matvec_out = sch.get(matvec).writes[0].source.name
    upstream = {w.source.name for p in sch.get_producers(consumer) for w in sch.get(p).writes} - {matvec_out}
    hidden = [i for i, region in enumerate(sch.get(consumer).reads) if region.source.name in upstream]
    if hidden:
        sch.unsafe_hide_buffer_access(consumer, "read", hidden)


def _producers_upstream(sch: Schedule, block) -> list:
    """Blocks that (transitively) produce `block`'s inputs, nearest first."""
    order, frontier = [], [block]
    while frontier:
        for producer in sch.get_producers(frontier.pop(0)):
            if not any(sch.get(producer).same_as(sch.get(p)) for p in order):
                order.append(producer)
                frontier.append(producer)
    return order


def _unroll_inner(sch: Schedule, blk, outer) -> None:
    """Unroll the loops a block has below `outer` (the accumulators are then indexed by constants)."""
    loops = sch.get_loops(blk)
    outer_pos = next((i for i, l in enumerate(loops) if sch.get(l).same_as(sch.get(outer))), None)
    for loop in loops[outer_pos + 1:] if outer_pos is not None else []:
        _try(sch.unroll, loop)


def BlockMatvec(block: int = 8, unroll: int = 4, block_int64: int = 4, unroll_int64: int = 1) -> tvm.transform.Pass:
    @tvm.transform.module_pass(opt_level=0, name="BlockMatvec")
    def _pass(mod: tvm.IRModule, _ctx) -> tvm.IRModule:
        if block < 2:
            return mod
        calls = kernel_call_args(mod)
        plans, funcs = {}, {}
        for gv, func in mod.functions.items():
            if not isinstance(func, tirx.PrimFunc) or gv not in calls or is_scheduled(func):
                continue
            result = schedule_matvec(func, block, unroll, block_int64, unroll_int64)
            if result is None:
                continue
            new_func, index, index_map = result
            if all(isinstance(args[index], ir.Constant) for args in calls[gv]):
                plans[gv], funcs[gv] = (index, lambda t, m=index_map: m.map_tensor(t).numpy()), new_func
        return replace_kernels(mod, funcs, plans)

    return _pass
