"""y = (x @ W_q^T) * scale (+ bias): a linear layer with int8 weights, one scale per output channel.

The weights stay int8 in flash and are widened inside the MAC loop, so RAM holds no
dequantized copy; the per-channel scale is applied once per output.
"""
from typing import Optional

import torch
from tvm import relax
from tvm.script import tirx as T


def linear_int8_reference(x: torch.Tensor, w_q: torch.Tensor, scale: torch.Tensor,
                          bias: Optional[torch.Tensor]) -> torch.Tensor:
    y = torch.matmul(x, w_q.to(x.dtype).t()) * scale.to(x.dtype)
    return y if bias is None else y + bias


@torch.library.custom_op("mamba::linear_int8", mutates_args=())
def linear_int8(x: torch.Tensor, w_q: torch.Tensor, scale: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
    return linear_int8_reference(x, w_q, scale, bias)


@linear_int8.register_fake
def _(x, w_q, scale, bias):
    return x.new_empty((x.shape[0], w_q.shape[0]))


def qlinear(x: torch.Tensor, w_q: torch.Tensor, scale: torch.Tensor, bias: Optional[torch.Tensor] = None):
    """Any leading shape: flattened to 2-D for the op (a reshape, which Relax aliases)."""
    y = torch.ops.mamba.linear_int8(x.reshape(-1, x.shape[-1]), w_q, scale, bias)
    return y.reshape(*x.shape[:-1], w_q.shape[0])


def make_primfunc(rows: int, in_features: int, out_features: int, has_bias: bool):
    """Block form (a reduction, then the scale/bias epilogue), so the kernel passes schedule
    it like any legalized matmul: epilogue attached, init split, MAC loop unrolled."""

    @T.macro
    def matmul(x, w_q, acc):
        for m, n, k in T.grid(rows, out_features, in_features):
            with T.sblock("matmul"):
                vm, vn, vk = T.axis.remap("SSR", [m, n, k])
                with T.init():
                    acc[vm, vn] = T.float32(0)
                acc[vm, vn] = acc[vm, vn] + x[vm, vk] * T.Cast("float32", w_q[vn, vk])

    if has_bias:
        @T.prim_func(private=True, s_tir=True)
        def linear_int8(x: T.Buffer((rows, in_features), "float32"), w_q: T.Buffer((out_features, in_features), "int8"),
                        scale: T.Buffer((out_features,), "float32"), bias: T.Buffer((out_features,), "float32"),
                        y: T.Buffer((rows, out_features), "float32")):
            acc = T.sblock_alloc_buffer((rows, out_features), "float32")
            matmul(x, w_q, acc)
            for m, n in T.grid(rows, out_features):
                with T.sblock("scale_bias"):
                    vm, vn = T.axis.remap("SS", [m, n])
                    y[vm, vn] = acc[vm, vn] * scale[vn] + bias[vn]
    else:
        @T.prim_func(private=True, s_tir=True)
        def linear_int8(x: T.Buffer((rows, in_features), "float32"), w_q: T.Buffer((out_features, in_features), "int8"),
                        scale: T.Buffer((out_features,), "float32"), y: T.Buffer((rows, out_features), "float32")):
            acc = T.sblock_alloc_buffer((rows, out_features), "float32")
            matmul(x, w_q, acc)
            for m, n in T.grid(rows, out_features):
                with T.sblock("scale"):
                    vm, vn = T.axis.remap("SS", [m, n])
                    y[vm, vn] = acc[vm, vn] * scale[vn]
    return linear_int8


#: the attribute carrying (rows, in, out, has_bias) on the float-accumulating kernel, so a pass
#: can swap in another implementation of the same operator (passes/int8_matvec.py)
LINEAR_INT8 = "mamba_tvm.linear_int8"


def make_integer_primfunc(rows: int, in_features: int, out_features: int, has_bias: bool):
    """The same operator with integer multiply-accumulates: each row of x becomes int32 with one
    power-of-two scale (block floating point, 30 significant bits: |x * 2^s| < 2^30), the
    products with the int8 weights are summed exactly in int64 (an SMLAL each on a Cortex-M,
    instead of widening every weight to float), and the sum is converted once per output.
    More accurate than the float kernel (the sum has no rounding; x loses < 2^-30 of its row's
    largest magnitude), for cores with a 32x32->64 multiply-accumulate."""

    @T.macro
    def integer_matmul(x, w_q, amax, xscale, xinv, xq, acc):
        for m, k in T.grid(rows, in_features):
            with T.sblock("absmax"):
                vm, vk = T.axis.remap("SR", [m, k])
                with T.init():
                    amax[vm] = T.float32(0)
                amax[vm] = T.max(amax[vm], T.max(x[vm, vk], T.float32(0) - x[vm, vk]))
        for m in range(rows):
            with T.sblock("exponent"):
                vm = T.axis.remap("S", [m])
                # biased exponent e of max|x| (at least 30): 2^s = 2^(156 - e) puts max|x| below 2^30
                xscale[vm] = T.reinterpret("float32", T.shift_left(
                    T.uint32(283) - T.max(T.shift_right(T.reinterpret("uint32", amax[vm]), T.uint32(23)), T.uint32(30)),
                    T.uint32(23)))
                xinv[vm] = T.reinterpret("float32", T.shift_left(
                    T.max(T.shift_right(T.reinterpret("uint32", amax[vm]), T.uint32(23)), T.uint32(30)) - T.uint32(29),
                    T.uint32(23)))
        for m, k in T.grid(rows, in_features):
            with T.sblock("quantize"):
                vm, vk = T.axis.remap("SS", [m, k])
                xq[vm, vk] = T.Cast("int32", x[vm, vk] * xscale[vm])
        for m, n, k in T.grid(rows, out_features, in_features):
            with T.sblock("matmul"):
                vm, vn, vk = T.axis.remap("SSR", [m, n, k])
                with T.init():
                    acc[vm, vn] = T.int64(0)
                acc[vm, vn] = acc[vm, vn] + T.Cast("int64", xq[vm, vk]) * T.Cast("int64", w_q[vn, vk])

    def as_float(acc, vm, vn):
        """The exact int64 sum as float: high word * 2^32 + low word (a rounding each)."""
        return (T.Cast("float32", T.Cast("int32", T.shift_right(acc[vm, vn], T.int64(32)))) * T.float32(4294967296.0)
                + T.Cast("float32", T.Cast("uint32", acc[vm, vn])))

    def to_float(acc, scale, xinv, bias, vm, vn):
        """y[m, n]: the sum as float, scaled (scale of the weight row, 2^-s of x's row), + bias."""
        y = as_float(acc, vm, vn) * (scale[vn] * xinv[vm])
        return y if bias is None else y + bias[vn]

    @T.macro
    def integer_linear(x, w_q, scale, bias, y):
        amax = T.sblock_alloc_buffer((rows,), "float32")
        xscale = T.sblock_alloc_buffer((rows,), "float32")
        xinv = T.sblock_alloc_buffer((rows,), "float32")
        xq = T.sblock_alloc_buffer((rows, in_features), "int32")
        acc = T.sblock_alloc_buffer((rows, out_features), "int64")
        integer_matmul(x, w_q, amax, xscale, xinv, xq, acc)
        for m, n in T.grid(rows, out_features):
            with T.sblock("to_float"):
                vm, vn = T.axis.remap("SS", [m, n])
                y[vm, vn] = to_float(acc, scale, xinv, bias, vm, vn)

    if has_bias:
        @T.prim_func(private=True, s_tir=True)
        def linear_int8(x: T.Buffer((rows, in_features), "float32"), w_q: T.Buffer((out_features, in_features), "int8"),
                        scale: T.Buffer((out_features,), "float32"), bias: T.Buffer((out_features,), "float32"),
                        y: T.Buffer((rows, out_features), "float32")):
            integer_linear(x, w_q, scale, bias, y)
    else:
        @T.prim_func(private=True, s_tir=True)
        def linear_int8(x: T.Buffer((rows, in_features), "float32"), w_q: T.Buffer((out_features, in_features), "int8"),
                        scale: T.Buffer((out_features,), "float32"), y: T.Buffer((rows, out_features), "float32")):
            integer_linear(x, w_q, scale, None, y)
    return linear_int8


def relax_converter(node, importer):
    x, w_q, scale, bias = importer.retrieve_args(node)
    rows, in_features = (int(s) for s in x.ty.shape)
    out_features = int(w_q.ty.shape[0])
    # opaque to FuseOps: the kernel already carries its epilogue (and FuseTIR cannot merge
    # it with the reshapes around it)
    func = (make_primfunc(rows, in_features, out_features, bias is not None).with_attr("op_pattern", 8)
            .with_attr(LINEAR_INT8, [rows, in_features, out_features, int(bias is not None)]))
    gv = importer.block_builder.add_func(func, "linear_int8")
    args = [x, w_q, scale] + ([bias] if bias is not None else [])
    return importer.block_builder.emit(relax.call_tir(gv, args, relax.TensorType((rows, out_features), "float32")))
