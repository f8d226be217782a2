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
    @T.macro
    def accumulate(x, w_q, acc, m, n):
        acc[0] = T.float32(0)
        for k in range(in_features):
            acc[0] = acc[0] + x[m, k] * T.Cast("float32", w_q[n, k])

    if has_bias:
        @T.prim_func(private=True, s_tir=True)
        def linear_int8(x: T.Buffer((rows, in_features), "float32"), w_q: T.Buffer((out_features, in_features), "int8"),
                        scale: T.Buffer((out_features,), "float32"), bias: T.Buffer((out_features,), "float32"),
                        y: T.Buffer((rows, out_features), "float32")):
            acc = T.alloc_buffer((1,), "float32")
            for m, n in T.grid(rows, out_features):
                accumulate(x, w_q, acc, m, n)
                y[m, n] = acc[0] * scale[n] + bias[n]
    else:
        @T.prim_func(private=True, s_tir=True)
        def linear_int8(x: T.Buffer((rows, in_features), "float32"), w_q: T.Buffer((out_features, in_features), "int8"),
                        scale: T.Buffer((out_features,), "float32"), y: T.Buffer((rows, out_features), "float32")):
            acc = T.alloc_buffer((1,), "float32")
            for m, n in T.grid(rows, out_features):
                accumulate(x, w_q, acc, m, n)
                y[m, n] = acc[0] * scale[n]
    return linear_int8


def relax_converter(node, importer):
    x, w_q, scale, bias = importer.retrieve_args(node)
    rows, in_features = (int(s) for s in x.ty.shape)
    out_features = int(w_q.ty.shape[0])
    func = make_primfunc(rows, in_features, out_features, bias is not None)
    gv = importer.block_builder.add_func(func, "linear_int8")
    args = [x, w_q, scale] + ([bias] if bias is not None else [])
    return importer.block_builder.emit(relax.call_tir(gv, args, relax.TensorType((rows, out_features), "float32")))
