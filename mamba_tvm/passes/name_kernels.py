"""NameKernelsAfterLayers: kernels take the name of the layer they implement.

Why: a firmware engineer reads `tvmgen_default_mamba_x_proj` in a profile or a map file and
knows where it came from; `fused_matmul1_add1` says nothing. The importer names every
binding after the user's module path (`mamba_x_proj__mm_1`); after FuseOps each fused
function still holds those bindings, and every other kernel call is itself a named binding.
Runs between FuseOps and FuseTIR, so FuseTIR's PrimFuncs inherit the names. A kernel shared
by calls from several layers, or with no named layer, keeps TVM's name.
"""
from collections import Counter

import tvm
from tvm import ir, relax

from ..importer import layer_of


def _calls(func):
    for block in func.body.blocks:
        for b in block.bindings:
            v = b.value
            if isinstance(v, relax.Call):
                if isinstance(v.op, ir.GlobalVar):
                    yield b.var, v.op
                elif getattr(v.op, "name", "") in ("relax.call_tir", "relax.call_tir_inplace"):
                    yield b.var, v.args[0]


def _layers_inside(func) -> list[str]:
    return [layer_of(b.var.name) for block in func.body.blocks for b in block.bindings if layer_of(b.var.name)]


LAYER_ATTR = "mamba_tvm.layer"  # set on kernels named when they were made (LowerMambaOps)
INJECTIVE = 2  # op_pattern of reshapes and other pure index maps


def _common_layer(names: set) -> str:
    """The layer the names share: `mamba_in_proj` for {`mamba_in_proj_0`, `mamba_in_proj_1`}."""
    if "" in names:
        return ""
    parts = [n.split("_") for n in names]
    common = []
    for words in zip(*parts):
        if len(set(words)) != 1:
            break
        common.append(words[0])
    return "_".join(common)


@relax.expr_functor.mutator
class _Retarget(relax.PyExprMutator):
    def __init__(self, mod, mapping):
        super().__init__(mod)
        self.mapping = mapping

    def visit_global_var_(self, gv):
        return self.mapping.get(gv, gv)


@tvm.transform.module_pass(opt_level=0, name="NameKernelsAfterLayers")
def NameKernelsAfterLayers(mod: tvm.IRModule, _ctx) -> tvm.IRModule:
    layers: dict = {}
    entries = [(gv, f) for gv, f in mod.functions_items()
               if isinstance(f, relax.Function) and not (f.attrs and "Primitive" in f.attrs)]
    for _, func in entries:
        for var, callee in _calls(func):
            target = mod[callee]
            if isinstance(target, relax.Function):  # a fused group: the layers of its bindings
                found = Counter(_layers_inside(target)).most_common(1)
                layer = found[0][0] if found else ""
            else:
                layer = layer_of(var.name)
            layers.setdefault(callee, set()).add(layer)
    taken = {gv.name_hint for gv in mod.get_global_vars()}
    mapping = {}
    for gv, names in layers.items():
        func = mod[gv]
        if func.attrs and (LAYER_ATTR in func.attrs or int(func.attrs.get("op_pattern", -1)) == INJECTIVE):
            continue  # named by LowerMambaOps already, or a reshape that lowering removes
        base = _common_layer(names)
        if not base:
            continue
        name, i = base, 1
        while name in taken:
            name, i = f"{base}_{i}", i + 1
        taken.add(name)
        mapping[gv] = ir.GlobalVar(name)
    if not mapping:
        return mod
    bb = relax.BlockBuilder()
    new_gvs: dict = {}
    entry_gvs = {gv for gv, _ in entries}
    prim = [(gv, f) for gv, f in mod.functions_items() if not isinstance(f, relax.Function)]
    fused = [(gv, f) for gv, f in mod.functions_items() if isinstance(f, relax.Function) and gv not in entry_gvs]
    for group in (prim, fused, entries):  # callees before callers, so every call can be retargeted
        for gv, func in group:
            name = mapping[gv].name_hint if gv in mapping else gv.name_hint
            if isinstance(func, relax.Function):
                func = _Retarget(None, new_gvs).visit_expr(func)
            if func.attrs and "global_symbol" in func.attrs:
                func = func.with_attr("global_symbol", name)
            new_gvs[gv] = bb.add_func(func, name)
    out = bb.get()
    return out.with_attrs(mod.attrs) if mod.attrs else out
