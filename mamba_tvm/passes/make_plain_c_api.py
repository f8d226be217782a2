"""MakePlainCAPI: PrimFunc buffer parameters become raw `float*` parameters.

TVM 0.27 only emits the packed-function ABI (TVMFFIAny/DLTensor). Binding each buffer to a
plain pointer with DeclBuffer and marking the function `calling_conv=0` makes
MakePackedAPI skip it (it skips host-less functions), so CodeGenC prints
`void k(float* a, float* b)` with no TVM headers or runtime needed.
"""
import tvm
from tvm import ir, tirx


def _is_buffer_param(var) -> bool:
    return isinstance(var, ir.Var) and isinstance(getattr(var, "ty", None), tirx.buffer.BufferType)


@tvm.transform.module_pass(opt_level=0, name="MakePlainCAPI")
def MakePlainCAPI(mod: tvm.IRModule, _ctx) -> tvm.IRModule:
    updates = {}
    for gv, func in mod.functions.items():
        if not isinstance(func, tirx.PrimFunc):
            continue
        params, decls, seen = [], [], set()
        for p in func.params:
            if _is_buffer_param(p):
                name, i = p.name, 1
                while name in seen:  # legalized multi-output ops name every output alike (T_split)
                    name, i = f"{p.name}_{i}", i + 1
                seen.add(name)
                ptr = tirx.Var(name, ir.PointerType(p.ty.dtype))
                params.append(ptr)
                decls.append(tirx.DeclBuffer(p, data=ptr))
            else:
                params.append(p)
        body = tirx.SeqStmt(decls + [func.body]) if decls else func.body
        symbol = func.attrs["global_symbol"] if func.attrs and "global_symbol" in func.attrs else gv.name_hint
        updates[gv] = (tirx.PrimFunc(params, body, func.ret_type, func.attrs)
                       .with_attr("calling_conv", 0).with_attr("global_symbol", symbol))
    for gv, func in updates.items():
        mod[gv] = func
    return mod
