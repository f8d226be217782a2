"""SelectInt8Matvec: which implementation of the int8-weight linear layer a core gets.

relay_ops/linear_int8.py has two implementations of the same operator: "float" widens each
int8 weight to float inside the MAC loop (a load, a move to the FPU and a conversion per
weight: 4 instructions per multiply-add on a Cortex-M7), "int64" quantizes each row of x to
int32 with a power-of-two scale and accumulates exactly in int64 (a load and an SMLAL).
This pass swaps the kernel body by the operator attribute the converter set, keeping the
kernel's name and signature (AlterOpImpl would rename it `*_replacement` and only sees
call_tir). Cores without a fast 32x32->64 multiply (the Xtensa LX7 under LLVM 22 calls a
library routine) keep "float".
"""
from __future__ import annotations

import tvm
from tvm import tirx

from relay_ops.linear_int8 import LINEAR_INT8, make_integer_primfunc

KINDS = ("float", "int64")


def SelectInt8Matvec(kind: str = "float") -> tvm.transform.Pass:
    if kind not in KINDS:
        raise ValueError(f"unknown int8 matvec '{kind}' (known: {', '.join(KINDS)})")

    @tvm.transform.module_pass(opt_level=0, name="SelectInt8Matvec")
    def _pass(mod: tvm.IRModule, _ctx) -> tvm.IRModule:
        if kind == "float":
            return mod
        for gv, func in list(mod.functions.items()):
            if isinstance(func, tirx.PrimFunc) and func.attrs and LINEAR_INT8 in func.attrs:
                rows, k, n, bias = (int(v) for v in func.attrs[LINEAR_INT8])
                new = make_integer_primfunc(rows, k, n, bool(bias))
                for key in func.attrs.keys():
                    new = new.with_attr(key, func.attrs[key])
                mod[gv] = new
        return mod

    return _pass
