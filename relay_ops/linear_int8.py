"""y = (x @ W_q^T) * scale (+ bias): a linear layer with int8 weights, one scale per output channel.

The weights stay int8 in flash and are widened inside the MAC loop, so RAM holds no
dequantized copy; the per-channel scale is applied once per output.
"""
from typing import Optional

import numpy as np

import torch
from tvm import relax
from tvm.script import tirx as T

from .signature import drop_params


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

    def scaled(acc, scale, bias, vm, vn):
        y = acc[vm, vn] * scale[vn]
        return y if bias is None else y + bias[vn]

    @T.prim_func(private=True, s_tir=True)
    def linear_int8(x: T.Buffer((rows, in_features), "float32"), w_q: T.Buffer((out_features, in_features), "int8"),
                    scale: T.Buffer((out_features,), "float32"), bias: T.Buffer((out_features,), "float32"),
                    y: T.Buffer((rows, out_features), "float32")):
        acc = T.sblock_alloc_buffer((rows, out_features), "float32")
        matmul(x, w_q, acc)
        for m, n in T.grid(rows, out_features):
            with T.sblock("scale_bias" if has_bias else "scale"):
                vm, vn = T.axis.remap("SS", [m, n])
                y[vm, vn] = scaled(acc, scale, bias if has_bias else None, vm, vn)

    return linear_int8 if has_bias else drop_params(linear_int8, "bias")


#: the attribute carrying (rows, in, out, has_bias) on the float-accumulating kernel, so a pass
#: can swap in another implementation of the same operator (passes/int8_matvec.py)
LINEAR_INT8 = "mamba_tvm.linear_int8"


def _int64_as_float(total):
    """An exact int64 sum as float: high word * 2^32 + low word (a rounding each, no library call)."""
    return (T.Cast("float32", T.Cast("int32", T.shift_right(total, T.int64(32)))) * T.float32(4294967296.0)
            + T.Cast("float32", T.Cast("uint32", total)))


def _scaled_sum(total, scale, xinv, bias, n):
    """Output n from its exact sum: as float, scaled (the weight row's scale, x's 2^-s), + bias."""
    y = _int64_as_float(total) * (scale[n] * xinv)
    return y if bias is None else y + bias[n]


def _exponent_scales(amax):
    """(2^s, 2^-s) for a row whose largest magnitude is amax: with e the biased exponent of
    amax (at least 30), 2^s = 2^(156 - e) puts every |x * 2^s| below 2^30."""
    e = T.max(T.shift_right(T.reinterpret("uint32", amax), T.uint32(23)), T.uint32(30))
    return (T.reinterpret("float32", T.shift_left(T.uint32(283) - e, T.uint32(23))),
            T.reinterpret("float32", T.shift_left(e - T.uint32(29), T.uint32(23))))


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
                xscale[vm] = _exponent_scales(amax[vm])[0]
                xinv[vm] = _exponent_scales(amax[vm])[1]
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
                y[vm, vn] = _scaled_sum(acc[vm, vn], scale, xinv[vm], bias, vn)

    @T.prim_func(private=True, s_tir=True)
    def linear_int8(x: T.Buffer((rows, in_features), "float32"), w_q: T.Buffer((out_features, in_features), "int8"),
                    scale: T.Buffer((out_features,), "float32"), bias: T.Buffer((out_features,), "float32"),
                    y: T.Buffer((rows, out_features), "float32")):
        integer_linear(x, w_q, scale, bias if has_bias else None, y)

    return linear_int8 if has_bias else drop_params(linear_int8, "bias")


#: the dual 16-bit kernel's sums stay below 2^31 for up to this many inputs (|half| <= 2^15, |w| <= 127)
SMLAD_MAX_IN_FEATURES = 512


def smlad_block(out_features: int, block: int) -> int:
    """Outputs per pass: the largest divisor of out_features not above block."""
    return max(b for b in range(1, min(block, out_features) + 1) if out_features % b == 0)


def pack_smlad_weights(w_q: np.ndarray, block: int) -> np.ndarray:
    """int8 (out, in) -> uint32 (out / block, ceil(in / 4), block): for outputs n of a block and
    inputs k..k+3 one word holding bytes w[n, k], w[n, k+2], w[n, k+1], w[n, k+3], so SXTB16
    of the word gives the halfword pair (w[n, k], w[n, k+1]) and SXTB16 of it rotated by 8 the
    pair (w[n, k+2], w[n, k+3]). Missing inputs (in not a multiple of 4) are zero weights."""
    n, k = w_q.shape
    padded = np.zeros((n, -(-k // 4) * 4), np.int8)
    padded[:, :k] = w_q
    words = padded.reshape(n // block, block, -1, 4)[..., [0, 2, 1, 3]].transpose(0, 2, 1, 3)
    return np.ascontiguousarray(words).view("<u4")[..., 0]


def make_smlad_primfunc(rows: int, in_features: int, out_features: int, has_bias: bool, block: int, unroll: int):
    """The integer kernel (make_integer_primfunc: x as int32 block floating point, sums exact)
    with two multiply-adds per instruction: each x value v (|v| < 2^30) is split into
    hi = v >> 15 and lo = v & 0x7fff, both 16-bit, stored as halfword pairs of adjacent
    inputs; the weights (pack_smlad_weights) are unpacked two per SXTB16, and SMLAD adds
    hi*w over two inputs to one int32 sum, lo*w to another. hi_sum * 2^15 + lo_sum is the
    int64 kernel's exact sum, so both kernels give the same bits; this one takes about half
    the instructions on a Cortex-M4/M7 (one SMLAD per multiply-add pair and pair half instead
    of an SMLAL per multiply-add). `block` outputs per pass (two int32 sums each), the loop over
    inputs unrolled by `unroll` (groups of four). Needs in_features <= SMLAD_MAX_IN_FEATURES."""
    assert in_features <= SMLAD_MAX_IN_FEATURES and out_features % block == 0
    quads = -(-in_features // 4)
    u = unroll if unroll > 1 and quads % unroll == 0 else 1

    def scaled(x, m, k, xscale):
        """x[m, k] * 2^s as int32, 0 past the last input (the padding of the last group of four)."""
        return T.if_then_else(k < in_features, T.Cast("int32", x[m, T.min(k, in_features - 1)] * xscale), 0)

    def halves(v0, v1, high):
        """The pair (v0, v1)'s 16-bit halves as one word: the high halves (v >> 15) or the low ones."""
        if high:
            return (T.bitwise_and(T.Cast("uint32", T.shift_right(v0, 15)), T.uint32(0xFFFF))
                    | T.shift_left(T.Cast("uint32", T.shift_right(v1, 15)), T.uint32(16)))
        return (T.Cast("uint32", T.bitwise_and(v0, 0x7FFF))
                | T.shift_left(T.Cast("uint32", T.bitwise_and(v1, 0x7FFF)), T.uint32(16)))

    @T.macro
    def smlad_linear(x, w, scale, bias, y):
        amax = T.sblock_alloc_buffer((1,), "float32")
        x_halves = T.sblock_alloc_buffer((quads * 4,), "uint32")
        hi = T.sblock_alloc_buffer((block,), "int32")
        lo = T.sblock_alloc_buffer((block,), "int32")
        for m in range(rows):
            amax[0] = T.float32(0)
            for k in range(in_features):
                amax[0] = T.max(amax[0], T.max(x[m, k], T.float32(0) - x[m, k]))
            xscale = T.bind(_exponent_scales(amax[0])[0])
            xinv = T.bind(_exponent_scales(amax[0])[1])
            for q in range(quads):
                for j in T.unroll(2):
                    # inputs 4q + 2j and 4q + 2j + 1: high halves, then low halves
                    v0 = T.bind(scaled(x, m, q * 4 + j * 2, xscale))
                    v1 = T.bind(scaled(x, m, q * 4 + j * 2 + 1, xscale))
                    x_halves[q * 4 + j * 2] = halves(v0, v1, True)
                    x_halves[q * 4 + j * 2 + 1] = halves(v0, v1, False)
            for nb in range(out_features // block):
                for r in T.unroll(block):
                    hi[r] = 0
                    lo[r] = 0
                for qo in range(quads // u):
                    for qi in T.unroll(u):
                        for r in T.unroll(block):
                            word = T.bind(w[nb, qo * u + qi, r])
                            w01 = T.bind(T.call_extern("uint32", "mamba_sxtb16", word))
                            w23 = T.bind(T.call_extern("uint32", "mamba_sxtb16_ror8", word))
                            hi[r] = T.call_extern("int32", "mamba_smlad", x_halves[(qo * u + qi) * 4], w01, hi[r])
                            lo[r] = T.call_extern("int32", "mamba_smlad", x_halves[(qo * u + qi) * 4 + 1], w01, lo[r])
                            hi[r] = T.call_extern("int32", "mamba_smlad", x_halves[(qo * u + qi) * 4 + 2], w23, hi[r])
                            lo[r] = T.call_extern("int32", "mamba_smlad", x_halves[(qo * u + qi) * 4 + 3], w23, lo[r])
                for r in T.unroll(block):
                    total = T.bind(T.Cast("int64", hi[r]) * T.int64(32768) + T.Cast("int64", lo[r]))
                    y[m, nb * block + r] = _scaled_sum(total, scale, xinv, bias, nb * block + r)

    words = (out_features // block, quads, block)

    @T.prim_func(private=True, s_tir=True)
    def linear_int8(x: T.Buffer((rows, in_features), "float32"), w_q: T.Buffer(words, "uint32"),
                    scale: T.Buffer((out_features,), "float32"), bias: T.Buffer((out_features,), "float32"),
                    y: T.Buffer((rows, out_features), "float32")):
        smlad_linear(x, w_q, scale, bias if has_bias else None, y)

    return linear_int8 if has_bias else drop_params(linear_int8, "bias")


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
