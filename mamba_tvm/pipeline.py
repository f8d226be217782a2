"""The compiler's pass lists, read top to bottom: Relax graph -> fused TIR kernels -> DPS calls.

Like tvm/relax/pipeline.py: each stage is a short list of named passes, and what a target
or mode changes is which list is used, not code spread across modules.
"""
import tvm
from tvm import relax

from .passes import (BlockMatvec, ContractFMA, FloatMinMax, FuseEpilogues, HoistKernelTemporaries, LowerFastMath, ScheduleScan,
                     SelectInt8Matvec, UnrollReductions)
from .passes.canonicalize import CanonicalizeImport
from .passes.fast_math import DivideByReciprocal, exp_needs_fma, table_size
from .passes.fold_linear import FoldLinearChains, MoveLinearAfterTimeMean, SplitLinearOutputs
from .passes.lower_mamba_ops import LowerMambaOps
from .passes.name_kernels import NameKernelsAfterLayers
from .passes.quantize_weights import QuantizeWeights
from .passes.sink_bindings import SinkBindings
from .passes.split_time_step import SplitTimeStep
from .passes.kernel_schedules import ApplyKernelSchedules
from .passes.kernel_workspace import DEFAULT_STACK_LIMIT
from .passes.pair_accesses import MarkPairableParams


def model_passes(fusion: str = "timestep", weights: str = "fp32", lower: bool = True, fold: bool = True) -> list:
    """Relax, operators whole: fold the weights, split the time step (time-step fusion),
    quantize (int8), then lower the Mamba operators to their kernels (lower=False stops
    before, for graph_reference; fold=False keeps every linear layer where the user put it,
    the baseline bench/kernels.py measures folding against)."""
    folding = [FoldLinearChains, MoveLinearAfterTimeMean, FoldLinearChains] if fold else []
    return ([relax.transform.DecomposeOpsForInference(), CanonicalizeImport, relax.transform.FoldConstant(),
             *folding, SplitLinearOutputs, relax.transform.CanonicalizeBindings(),
             relax.transform.DeadCodeElimination(), SinkBindings]
            + [SplitTimeStep] * (fusion == "timestep")
            + [QuantizeWeights] * (weights == "int8")
            + [LowerMambaOps] * lower)


def graph_passes() -> list:
    """Relax: lower ops to TIR, fold the weights, fuse elementwise chains."""
    return [
        relax.transform.LegalizeOps(),
        relax.transform.AnnotateTIROpPattern(),
        relax.transform.FoldConstant(),
        relax.transform.FuseOps(),
        NameKernelsAfterLayers,
        relax.transform.FuseTIR(),
        relax.transform.DeadCodeElimination(),
    ]


def kernel_passes(stack_limit: int = DEFAULT_STACK_LIMIT, fuse_epilogues: bool = True, unroll: int = 4,
                  exp: str = "poly6", fma: bool = False, matvec_block: int = 8, scan_unroll: int = 1,
                  scan_hoist: bool = True, scan_base2: bool = True, int8_matvec: str = "float",
                  matvec_block_int64: int = 4, matvec_unroll_int64: int = 1, fminmax: bool = False,
                  pair_loads: bool = False, divide: str = "hardware") -> list:
    """Per-kernel TIR: int8-weight layers in float or exact-integer form (int8_matvec: "int64"
    with SMLAL, "smlad" with dual 16-bit multiply-adds, blocked and unrolled by the *_int64 knobs),
    matrix-vector products register-blocked with their weights laid out for
    the loop (matvec_block=1: not), no intermediate left full-size, MAC loops unrolled
    (unroll=1: not), exp/softplus as inline polynomials (exp="tableN": with a 2^(j/N) table and a
    short polynomial; exp="libm": C library calls),
    the scan's state loop unrolled with exp's range check hoisted per channel and exp in base 2
    where proven in range, multiply-adds fused (fma=False: mul+add), float min/max as
    fminf/fmaxf (fminmax=True: one VMINNM/VMAXNM on FPv5), nothing large left on the
    C stack."""
    if exp_needs_fma(exp) and not fma:
        raise ValueError(f"exp='{exp}' needs fma=True (its Cody-Waite product is exact only when fused)")
    return ([SelectInt8Matvec(int8_matvec, matvec_block_int64, matvec_unroll_int64)]
            + [BlockMatvec(matvec_block, unroll, matvec_block_int64, matvec_unroll_int64)] * (matvec_block > 1)
            + [FuseEpilogues] * fuse_epilogues + [UnrollReductions(unroll)] * (unroll > 1)
            + [LowerFastMath(exp), DivideByReciprocal(divide), ScheduleScan(scan_unroll, scan_hoist, scan_base2, table_size(exp)), ContractFMA(fma),
               FloatMinMax(fminmax),
               HoistKernelTemporaries(stack_limit), MarkPairableParams(pair_loads)])


def call_passes() -> list:
    """Relax -> a flat list of destination-passing kernel calls the AOT planner reads."""
    return [
        relax.transform.RewriteDataflowReshape(),
        relax.transform.ToNonDataflow(),
        relax.transform.RemovePurityChecking(),
        relax.transform.CallTIRRewrite(),
    ]


def mcu_pipeline(tuned: dict | None = None, decisions: dict | None = None, overrides: dict | None = None,
                 **knobs) -> tvm.transform.Pass:
    """The whole compiler; `knobs` are kernel_passes' (a core's schedule record, schedules/);
    `tuned` (kernel hash -> knobs, a tuned record) and `overrides` (kernel name -> knobs, the
    tuner's candidates) set them per kernel (passes/kernel_schedules.py)."""
    kernels = (kernel_passes(**knobs) if tuned is None and decisions is None and overrides is None
               else [ApplyKernelSchedules(knobs, tuned, decisions, overrides)])
    return tvm.transform.Sequential(graph_passes() + kernels + call_passes(), name="mamba_tvm_mcu")
