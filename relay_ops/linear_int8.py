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


def relax_converter(node, importer):
    x, w_q, scale, bias = importer.retrieve_args(node)
    rows, in_features = (int(s) for s in x.ty.shape)
    out_features = int(w_q.ty.shape[0])
    # opaque to FuseOps: the kernel already carries its epilogue (and FuseTIR cannot merge
    # it with the reshapes around it)
    func = make_primfunc(rows, in_features, out_features, bias is not None).with_attr("op_pattern", 8)
    gv = importer.block_builder.add_func(func, "linear_int8")
    args = [x, w_q, scale] + ([bias] if bias is not None else [])
    return importer.block_builder.emit(relax.call_tir(gv, args, relax.TensorType((rows, out_features), "float32")))
