"""SelectInt8Matvec: which implementation of the int8-weight linear layer a core gets.

relay_ops/linear_int8.py has three implementations of the same operator: "float" widens each
int8 weight to float inside the MAC loop (a load, a move to the FPU and a conversion per
weight: 4 instructions per multiply-add on a Cortex-M7), "int64" quantizes each row of x to
int32 with a power-of-two scale and accumulates exactly in int64 (a load and an SMLAL per
multiply-add), "smlad" computes the same exact sum with x split into two 16-bit halves, two
multiply-adds per SMLAD and the weights stored as words two SXTB16 unpack (same bits as
"int64", about half its instructions on a Cortex-M4/M7). The pass swaps the kernel body by the
operator attribute the converter set, keeping the kernel's name (AlterOpImpl would rename it
`*_replacement` and only sees call_tir); "smlad" also rewrites the weight constant at every
call to its packed words (call_sites.replace_kernels) and leaves layers with more inputs than
its int32 sums allow to "int64". Cores without a fast 32x32->64 multiply (the Xtensa LX7
under LLVM 22 calls a library routine) keep "float".
"""
from __future__ import annotations

import tvm
from tvm import ir, tirx

from relay_ops.linear_int8 import (LINEAR_INT8, SMLAD_MAX_IN_FEATURES, make_integer_primfunc, make_smlad_primfunc,
                                   pack_smlad_weights, smlad_block)

from .call_sites import kernel_call_args, replace_kernels
from .fuse_epilogues import SCHEDULED

KINDS = ("float", "int64", "smlad")
WEIGHT_PARAM = 1  # linear_int8(x, w_q, scale[, bias], y)


def _with_attrs(new: tirx.PrimFunc, old: tirx.PrimFunc) -> tirx.PrimFunc:
    for key in old.attrs.keys():
        new = new.with_attr(key, old.attrs[key])
    return new


def SelectInt8Matvec(kind: str = "float", block: int = 4, unroll: int = 1) -> tvm.transform.Pass:
    """block, unroll: the smlad kernel's outputs per pass and unroll of its groups of 4 inputs."""
    if kind not in KINDS:
        raise ValueError(f"unknown int8 matvec '{kind}' (known: {', '.join(KINDS)})")

    @tvm.transform.module_pass(opt_level=0, name="SelectInt8Matvec")
    def _pass(mod: tvm.IRModule, _ctx) -> tvm.IRModule:
        if kind == "float":
            return mod
        calls = kernel_call_args(mod)
        funcs, plans = {}, {}
        for gv, func in list(mod.functions.items()):
            if not (isinstance(func, tirx.PrimFunc) and func.attrs and LINEAR_INT8 in func.attrs):
                continue
            rows, k, n, bias = (int(v) for v in func.attrs[LINEAR_INT8])
            constant = gv in calls and all(isinstance(args[WEIGHT_PARAM], ir.Constant) for args in calls[gv])
            if kind == "smlad" and k <= SMLAD_MAX_IN_FEATURES and constant:
                b = smlad_block(n, block)
                new = make_smlad_primfunc(rows, k, n, bool(bias), b, unroll).with_attr(SCHEDULED, 1)
                funcs[gv] = _with_attrs(new, func)
                plans[gv] = (WEIGHT_PARAM, lambda t, b=b: pack_smlad_weights(t.numpy(), b))
            else:
                mod[gv] = _with_attrs(make_integer_primfunc(rows, k, n, bool(bias)), func)
        return replace_kernels(mod, funcs, plans)

    return _pass
