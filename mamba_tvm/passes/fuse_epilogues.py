"""FuseEpilogues: keep FuseTIR's intermediates out of memory.

FuseTIR glues the ops of a fused group into one PrimFunc but leaves every intermediate as a
full-size buffer (a (T, d) matmul result before its bias add, a sum before its division).
On an MCU that is a large C stack array. This pass inlines injective producers into their
consumers and moves each remaining elementwise epilogue under its producer's spatial loops
(reverse_compute_at), so CompactBufferAllocation later shrinks the intermediate to a scalar.
"""
import tvm
from tvm import tirx
from tvm.s_tir.schedule import Schedule, ScheduleError

SPATIAL = 0  # IterVar.iter_type of a data-parallel axis
SCHEDULED = "tirx.is_scheduled"  # set by a rule that scheduled the kernel completely (dlight's mark)


def is_scheduled(func: tirx.PrimFunc) -> bool:
    return bool(func.attrs and SCHEDULED in func.attrs and int(func.attrs[SCHEDULED]))


def _try(fn, *args) -> bool:
    try:
        fn(*args)
        return True
    except (ScheduleError, ValueError, RuntimeError):
        return False


def _num_spatial_iters(sch: Schedule, block) -> int:
    return sum(1 for iv in sch.get(block).iter_vars if int(iv.iter_type) == SPATIAL)


def schedule_kernel(func: tirx.PrimFunc) -> tirx.PrimFunc:
    """Inline what is injective, attach what is left to its producer, split reduction inits; unchanged if nothing applies."""
    sch = Schedule(tvm.IRModule({"main": func}))
    try:
        root = sch.get_sblock("root")
    except (ScheduleError, ValueError, RuntimeError):
        return func  # a hand-written kernel without blocks (relay_ops): already scheduled
    for block in sch.get_child_blocks(root):
        _try(sch.compute_inline, block)
    for block in reversed(sch.get_child_blocks(root)):
        producers = sch.get_producers(block)
        if len(producers) != 1 or _try(sch.reverse_compute_inline, block):
            continue
        producer = producers[0]
        n_spatial = _num_spatial_iters(sch, producer)
        loops = sch.get_loops(producer)
        if 0 < n_spatial <= len(loops):
            _try(sch.reverse_compute_at, block, loops[n_spatial - 1])
    for block in sch.get_child_blocks(root):
        # hoist each reduction's init out of its reduction loop (no `if (k == 0)` per MAC)
        n_spatial, loops = _num_spatial_iters(sch, block), sch.get_loops(block)
        if n_spatial < len(sch.get(block).iter_vars) and n_spatial < len(loops):
            _try(sch.decompose_reduction, block, loops[n_spatial])
    return sch.mod["main"]


@tvm.transform.module_pass(opt_level=0, name="FuseEpilogues")
def FuseEpilogues(mod: tvm.IRModule, _ctx) -> tvm.IRModule:
    updates = {gv: schedule_kernel(f) for gv, f in mod.functions.items()
               if isinstance(f, tirx.PrimFunc) and not is_scheduled(f)}
    for gv, func in updates.items():
        mod[gv] = func
    return mod
