"""The compiler's pass lists, read top to bottom: Relax graph -> fused TIR kernels -> DPS calls.

Like tvm/relax/pipeline.py: each stage is a short list of named passes, and what a target
or mode changes is which list is used, not code spread across modules.
"""
import tvm
from tvm import relax

from .passes import FuseEpilogues, HoistKernelTemporaries, UnrollReductions
from .passes.kernel_workspace import DEFAULT_STACK_LIMIT


def graph_passes() -> list:
    """Relax: decompose, lower ops to TIR, fold the weights, fuse elementwise chains."""
    return [
        relax.transform.DecomposeOpsForInference(),
        relax.transform.LegalizeOps(),
        relax.transform.AnnotateTIROpPattern(),
        relax.transform.FoldConstant(),
        relax.transform.FuseOps(),
        relax.transform.FuseTIR(),
        relax.transform.DeadCodeElimination(),
    ]


def kernel_passes(stack_limit: int = DEFAULT_STACK_LIMIT, fuse_epilogues: bool = True, unroll: int = 4) -> list:
    """Per-kernel TIR: no intermediate left full-size, MAC loops unrolled (unroll=1: not),
    nothing large left on the C stack."""
    return ([FuseEpilogues] * fuse_epilogues + [UnrollReductions(unroll)] * (unroll > 1)
            + [HoistKernelTemporaries(stack_limit)])


def call_passes() -> list:
    """Relax -> a flat list of destination-passing kernel calls the AOT planner reads."""
    return [
        relax.transform.RewriteDataflowReshape(),
        relax.transform.ToNonDataflow(),
        relax.transform.RemovePurityChecking(),
        relax.transform.CallTIRRewrite(),
    ]


def mcu_pipeline(stack_limit: int = DEFAULT_STACK_LIMIT, fuse_epilogues: bool = True,
                 unroll: int = 4) -> tvm.transform.Pass:
    return tvm.transform.Sequential(graph_passes() + kernel_passes(stack_limit, fuse_epilogues, unroll)
                                    + call_passes(), name="mamba_tvm_mcu")
