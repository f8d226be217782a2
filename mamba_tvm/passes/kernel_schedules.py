"""ApplyKernelSchedules: each kernel gets the schedule-rule knobs its chip's tuned record chose.

The fixed rules (kernel_passes) take one set of knobs for the whole model. A tuned record
(schedules/<core>.json, written by `python -m mamba_tvm.tune`) names knobs per kernel,
identified by its signature and shape: the structural hash of the kernel as FuseTIR made it,
before any schedule rule (what MetaSchedule calls a workload). Kernels are grouped by their
knobs and the kernel pass list runs once per group, on the module with the other groups'
kernels left out (so a module-level rule such as BlockMatvec, which rewrites the weight
constants at the call sites, only touches its own kernels). Kernels the record does not know
get the fixed rules; `decisions` (if given) receives, per kernel, which one it got.
"""
from __future__ import annotations

import tvm
import tvm_ffi
from tvm import tirx

from .call_sites import kernel_call_args


def kernel_signature(name: str, func: tirx.PrimFunc) -> str:
    """`name(f32[1,40], f32[40,64], ...)`: the kernel's parameters, readable."""
    parts = []
    for p in func.params:
        ty = p.ty
        shape = getattr(ty, "shape", None)
        dtype = str(getattr(ty, "dtype", ty))
        dtype = {"float32": "f32", "float64": "f64", "int8": "i8", "int32": "i32", "int64": "i64", "uint32": "u32"}.get(dtype, dtype)
        parts.append(f"{dtype}[{','.join(str(int(d)) for d in shape)}]" if shape is not None else dtype)
    return f"{name}({', '.join(parts)})"


def kernel_hash(func: tirx.PrimFunc) -> str:
    """The kernel's identity for a record: structural hash of its TIR (shapes, dtypes, body)."""
    return f"{tvm_ffi.structural_hash(func, map_free_vars=True) & 0xFFFFFFFFFFFFFFFF:016x}"


def kernels_of(mod: tvm.IRModule) -> dict:
    """name -> (GlobalVar, PrimFunc) of every kernel the Relax functions call (not the helpers)."""
    called = kernel_call_args(mod)
    return {gv.name_hint: (gv, f) for gv, f in mod.functions.items()
            if isinstance(f, tirx.PrimFunc) and gv in called}


def ApplyKernelSchedules(base: dict, tuned: dict | None = None, decisions: dict | None = None,
                         overrides: dict | None = None) -> tvm.transform.Pass:
    """base: the fixed rules' knobs; tuned: kernel hash -> knobs (the record); overrides:
    kernel name -> knobs (the tuner's candidates, by name within one model)."""
    from ..pipeline import kernel_passes

    tuned, overrides = tuned or {}, overrides or {}

    @tvm.transform.module_pass(opt_level=0, name="ApplyKernelSchedules")
    def _pass(mod: tvm.IRModule, _ctx) -> tvm.IRModule:
        groups: dict[tuple, list[str]] = {}
        for name, (_gv, func) in sorted(kernels_of(mod).items()):
            key = kernel_hash(func)
            knobs, how = dict(base), "default"
            if name in overrides:
                knobs.update(overrides[name])
                how = "candidate"
            elif key in tuned:
                knobs.update(tuned[key])
                how = "tuned"
            if decisions is not None:
                from ..tune.space import kernel_knobs

                decisions[name] = {"schedule": how, "signature": kernel_signature(name, func), "hash": key,
                                   "tunable": bool(kernel_knobs(func))}
            groups.setdefault(tuple(sorted(knobs.items())), []).append(name)
        if len(groups) <= 1:
            knobs = dict(next(iter(groups))) if groups else dict(base)
            return tvm.transform.Sequential(kernel_passes(**knobs))(mod)
        for knobs, names in groups.items():
            hidden = {gv: f for name, (gv, f) in kernels_of(mod).items() if name not in names}
            sub = tvm.IRModule({gv: f for gv, f in mod.functions.items() if gv not in hidden},
                               attrs=mod.attrs, global_infos=mod.global_infos)
            sub = tvm.transform.Sequential(kernel_passes(**dict(knobs)))(sub)
            for gv, f in hidden.items():
                sub[gv] = f
            mod = sub
        return mod

    return _pass
