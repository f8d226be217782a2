"""HoistKernelTemporaries: large kernel temporaries move from the C stack into the arena.

A kernel that still needs a big scratch buffer after FuseEpilogues (for example an
unfused reduction) would otherwise get it as a C stack array, invisible to the memory
plan and fatal on an MCU's few-KB stack. Such buffers become trailing parameters of the
kernel; the attribute `mamba_tvm.workspace` names them, and the arena planner gives each
one an offset that is live only during that kernel's call.
"""
import tvm
from tvm import tirx
from tvm.s_tir import SBlock, SBlockRealize

from ..codegen.plain_c import allocations
from ..errors import CompileError

WORKSPACE_ATTR = "mamba_tvm.workspace"
#: temporaries up to this size stay on the stack (a scan state of 16 floats, an accumulator)
DEFAULT_STACK_LIMIT = 256


def hoist_temporaries(func: tirx.PrimFunc, name: str, limit: int) -> tirx.PrimFunc:
    large = {buf: nbytes for buf, nbytes in allocations(func) if nbytes > limit}
    if not large:
        return func
    realize = func.body
    if not isinstance(realize, SBlockRealize):
        raise CompileError(f"kernel '{name}' keeps {sum(large.values())} bytes of temporaries "
                           f"{sorted(large)} that cannot be moved to the arena")
    root = realize.block
    hoisted = [b for b in root.alloc_buffers if b.name in large]
    missing = set(large) - {b.name for b in hoisted}
    if missing:
        raise CompileError(f"kernel '{name}': temporaries {sorted(missing)} are not at the kernel's top level "
                           "and cannot be moved to the arena")
    kept = [b for b in root.alloc_buffers if b.name not in large]
    new_root = SBlock(root.iter_vars, root.reads, root.writes, root.name_hint, root.body, root.init,
                      kept, root.match_buffers, root.annotations)
    body = SBlockRealize(realize.iter_values, realize.predicate, new_root)
    new_func = tirx.PrimFunc(list(func.params) + hoisted, body, func.ret_type, func.attrs)
    return new_func.with_attr(WORKSPACE_ATTR, [b.name for b in hoisted])


def HoistKernelTemporaries(limit: int = DEFAULT_STACK_LIMIT) -> tvm.transform.Pass:
    @tvm.transform.module_pass(opt_level=0, name="HoistKernelTemporaries")
    def _pass(mod: tvm.IRModule, _ctx) -> tvm.IRModule:
        updates = {gv: hoist_temporaries(f, gv.name_hint, limit)
                   for gv, f in mod.functions.items() if isinstance(f, tirx.PrimFunc)}
        for gv, func in updates.items():
            mod[gv] = func
        return mod

    return _pass


def kernel_stack_bytes(func: tirx.PrimFunc) -> int:
    """Bytes of C stack arrays the kernel keeps after hoisting (register spills not included)."""
    return sum(nbytes for _, nbytes in allocations(func))
