"""UnrollReductions: unroll the innermost reduction loop of each kernel by a small factor.

Cortex-M cores have no loop buffer and C compilers at -O2 do not unroll; a MAC loop then pays
a compare, a branch and an index update per multiply-add. Splitting the innermost reduction
loop by `factor` and unrolling the inner part keeps the accumulation order (the results are
bit-identical) and removes most of that overhead. Loops whose extent the factor does not
divide are left alone.
"""
import tvm
from tvm import tirx
from tvm.s_tir.schedule import Schedule, ScheduleError

from .fuse_epilogues import is_scheduled

REDUCE = 2  # IterVar.iter_type of a commutative reduction axis


def unroll_kernel(func: tirx.PrimFunc, factor: int) -> tirx.PrimFunc:
    sch = Schedule(tvm.IRModule({"main": func}))
    try:
        blocks = sch.get_child_blocks(sch.get_sblock("root"))
    except (ScheduleError, ValueError, RuntimeError):
        return func
    for block in blocks:
        if not any(int(iv.iter_type) == REDUCE for iv in sch.get(block).iter_vars):
            continue
        loop = sch.get_loops(block)[-1]
        extent = sch.get(loop).extent
        if not isinstance(extent, tvm.tirx.IntImm) or int(extent) % factor or int(extent) <= factor:
            continue
        try:
            _, inner = sch.split(loop, [None, factor])
            sch.unroll(inner)
        except (ScheduleError, ValueError, RuntimeError):
            continue
    return sch.mod["main"]


def UnrollReductions(factor: int = 4) -> tvm.transform.Pass:
    @tvm.transform.module_pass(opt_level=0, name="UnrollReductions")
    def _pass(mod: tvm.IRModule, _ctx) -> tvm.IRModule:
        updates = {gv: unroll_kernel(f, factor) for gv, f in mod.functions.items()
                   if isinstance(f, tirx.PrimFunc) and not is_scheduled(f)}
        for gv, func in updates.items():
            mod[gv] = func
        return mod

    return _pass
