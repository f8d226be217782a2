"""The search space: which schedule-rule knobs each kernel has, and which values they may take.

Declared per rule, as the rules are (mamba_tvm/pipeline.py kernel_passes): a rule applies to a
kernel when its test says so (BlockMatvec to a kernel with a matrix-vector reduction,
ScheduleScan to one with a state loop, ...), and then its knobs are that kernel's dimensions.
A rule added on another branch adds one Rule line here. Model-level knobs (the exp variant,
FMA) change every kernel and the shared helpers at once; they are searched on the whole model.
Knob values a core cannot build (libm exp on the LX7, which has no libm) fail to build and
are recorded as such, not filtered by hand.

The space is MetaSchedule's: a kernel's design space is a ScheduleFn whose trace holds one
`sample_categorical` per knob (tvm.s_tir.schedule), so a candidate is a trace with decisions,
stored in MetaSchedule's JSON database like any other tuning record.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Callable

import tvm
import tvm_ffi
from tvm import tirx
from tvm.s_tir.schedule import Schedule, Trace

from ..passes.scan_schedule import STATE_LOOP

REDUCE = 2


def _has_matvec(func: tirx.PrimFunc) -> bool:
    from ..passes.block_matvec import find_matvec

    try:
        return find_matvec(Schedule(tvm.IRModule({"main": func})), func) is not None
    except Exception:  # noqa: BLE001 - a kernel the schedule cannot open (hand-written TIR): no matvec
        return False


def _has_state_loop(func: tirx.PrimFunc) -> bool:
    found = []
    tvm_ffi.structural_map(func, (tirx.For, lambda s: (found.append(s) if STATE_LOOP in s.annotations else None)
                                  or s))
    return bool(found)


def _has_reduction(func: tirx.PrimFunc) -> bool:
    try:
        sch = Schedule(tvm.IRModule({"main": func}))
        blocks = sch.get_child_blocks(sch.get_sblock("root"))
    except Exception:  # noqa: BLE001
        return False
    return any(any(int(iv.iter_type) == REDUCE for iv in sch.get(b).iter_vars) for b in blocks)


def _is_int8_linear(func: tirx.PrimFunc) -> bool:
    from relay_ops.linear_int8 import LINEAR_INT8

    return bool(func.attrs and LINEAR_INT8 in func.attrs)


@dataclass(frozen=True)
class Rule:
    """A schedule rule's knobs and the kernels it applies to."""
    name: str
    applies: Callable[[tirx.PrimFunc], bool]
    knobs: dict = field(default_factory=dict)  # knob -> candidate values (the fixed rule's first)


KERNEL_RULES = (
    Rule("SelectInt8Matvec", _is_int8_linear,
         {"int8_matvec": ("float", "int64", "smlad"), "matvec_block_int64": (4, 2, 3),
          "matvec_unroll_int64": (1, 2)}),
    Rule("BlockMatvec", lambda f: _has_matvec(f) and not _is_int8_linear(f),
         {"matvec_block": (8, 2, 4, 16), "unroll": (4, 1, 2, 8)}),
    Rule("UnrollReductions", lambda f: _has_reduction(f) and not _has_matvec(f), {"unroll": (4, 1, 2, 8)}),
    Rule("ScheduleScan", _has_state_loop,
         {"scan_unroll": (1, 2, 4, 8, 16), "scan_hoist": (True, False), "scan_base2": (True, False)}),
)
MODEL_KNOBS = {"fma": (True, False), "exp": ("poly6", "table128", "table1024", "libm"), "fminmax": (False, True),
               "divide": ("hardware", "newton")}


def valid_model_point(point: dict) -> bool:
    """A point kernel_passes would refuse is not tried: the linear-table exp without FMA."""
    from ..passes.fast_math import exp_needs_fma

    return not (exp_needs_fma(point["exp"]) and not point["fma"])


def kernel_knobs(func: tirx.PrimFunc) -> dict:
    """knob -> candidate values for this kernel (empty: nothing to tune)."""
    knobs: dict = {}
    for rule in KERNEL_RULES:
        if rule.applies(func):
            for k, values in rule.knobs.items():
                knobs.setdefault(k, values)
    return knobs


def points(knobs: dict) -> list[dict]:
    """Every knob assignment of a kernel's space, in a fixed order."""
    names = sorted(knobs)
    return [dict(zip(names, combo)) for combo in itertools.product(*(knobs[n] for n in names))]


def point_trace(workload: tvm.IRModule, knobs: dict, point: dict) -> Trace:
    """The candidate as a MetaSchedule trace: one sample_categorical per knob, decided."""
    sch = Schedule(workload)
    for name in sorted(knobs):
        values = list(knobs[name])
        sch.sample_categorical(list(range(len(values))), [1.0 / len(values)] * len(values),
                               decision=values.index(point[name]))
    return sch.trace


def trace_point(trace: Trace, knobs: dict) -> dict | None:
    """A trace's decisions back as knob values (None if the trace is of another space)."""
    names = sorted(knobs)
    decided = [int(trace.get_decision(i)) for i in trace.insts if i.kind.name == "SampleCategorical"]
    if len(decided) != len(names) or any(not 0 <= d < len(knobs[n]) for d, n in zip(decided, names)):
        return None
    return {n: knobs[n][d] for n, d in zip(names, decided)}
