"""The selective scan of a Mamba block, with its discretization fused into the recurrence.

Inputs follow mamba_simple: `u` is the conv output (B, L, D); `x_dbl` is x_proj's output
(B, L, R + 2N) holding dt, B and C side by side; `dt_weight`/`dt_bias` are dt_proj; `A` is
-exp(A_log) (D, N); `D` the skip; `z` the gate. Per time step and channel the kernel computes
delta = softplus(dt_proj(dt)), exp(delta*A), delta*B*u and the C readout in registers, so
neither delta (L, D) nor the discretized (L, D, N) tensors ever exist; the state is N floats
per channel. With int8 weights, A arrives as int8 with one scale per state column
(`A_scale`, (N,)) and each channel's row is widened once into N floats.
"""
from typing import Optional

import torch
import torch.nn.functional as F
from tvm import relax
from tvm.script import tirx as T

from .signature import drop_params


#: annotation of the loop over the state: exp(delta * a[n]) with delta >= 0 and a[n] = A[d, n]
#: (times A_scale[n] with int8 A): the parameters whose constants bound exp's argument, read by
#: passes/scan_schedule.py to hoist the range check
STATE_LOOP = "mamba_tvm.state_loop"


def _dequantized_A(A, A_scale, dtype):
    return A if A_scale is None else A.to(dtype) * A_scale.to(dtype)


def selective_scan_reference(u, x_dbl, dt_weight, dt_bias, A, D, z, A_scale=None):
    """Plain PyTorch recurrence (any float dtype); the definition the TIR kernel must match."""
    A = _dequantized_A(A, A_scale, u.dtype)
    dt_rank, d_state = dt_weight.shape[1], A.shape[1]
    dt, Bm, Cm = torch.split(x_dbl, [dt_rank, d_state, d_state], dim=-1)
    delta = F.softplus(F.linear(dt, dt_weight, dt_bias))                     # (B, L, D)
    h = u.new_zeros(u.shape[0], u.shape[2], d_state)
    ys = []
    for t in range(u.shape[1]):
        h = torch.exp(delta[:, t, :, None] * A) * h + delta[:, t, :, None] * Bm[:, t, None, :] * u[:, t, :, None]
        ys.append((h * Cm[:, t, None, :]).sum(-1) + D * u[:, t])
    return torch.stack(ys, 1) * F.silu(z)


@torch.library.custom_op("mamba::selective_scan", mutates_args=())
def selective_scan(u: torch.Tensor, x_dbl: torch.Tensor, dt_weight: torch.Tensor, dt_bias: torch.Tensor,
                   A: torch.Tensor, D: torch.Tensor, z: torch.Tensor, A_scale: Optional[torch.Tensor]) -> torch.Tensor:
    return selective_scan_reference(u, x_dbl, dt_weight, dt_bias, A, D, z, A_scale)


@selective_scan.register_fake
def _(u, x_dbl, dt_weight, dt_bias, A, D, z, A_scale):
    return torch.empty_like(u)


def _silu(v):
    """SiLU(v) as an expression (the gate y * SiLU(z) of every scan kernel)."""
    return v / (T.float32(1) + T.exp(T.float32(0) - v))


def _softplus(v):
    """softplus(v) with torch's threshold (linear above 20), as an expression: delta of every
    scan kernel (LowerFastMath turns it into one fast_softplus)."""
    return T.if_then_else(v > T.float32(20), v, T.log1p(T.exp(v)))


def make_primfunc(batch: int, length: int, d_inner: int, d_state: int, dt_rank: int, a_int8: bool = False):
    """TIR: channel loop outside, sequential time loop inside; h is the per-channel state."""
    n_dbl = dt_rank + 2 * d_state
    b_off, c_off = dt_rank, dt_rank + d_state
    exp_factor = ["A", "A_scale"] if a_int8 else ["A"]
    a_dtype = "int8" if a_int8 else "float32"

    @T.macro
    def channel(u, x_dbl, dt_weight, dt_bias, A_rows, a_row, D, z, y, h, delta, acc, b, d):
        for n in range(d_state):
            h[n] = T.float32(0)
        for t in range(length):                      # the sequential recurrence
            delta[0] = dt_bias[d]
            for r in range(dt_rank):
                delta[0] = delta[0] + x_dbl[b, t, r] * dt_weight[d, r]
            delta[0] = _softplus(delta[0])
            acc[0] = D[d] * u[b, t, d]
            for n in T.serial(d_state, annotations={STATE_LOOP: exp_factor}):
                h[n] = T.exp(delta[0] * A_rows[a_row, n]) * h[n] + x_dbl[b, t, b_off + n] * (delta[0] * u[b, t, d])
                acc[0] = acc[0] + x_dbl[b, t, c_off + n] * h[n]
            y[b, t, d] = acc[0] * _silu(z[b, t, d])

    @T.prim_func(private=True, s_tir=True)
    def selective_scan(u: T.Buffer((batch, length, d_inner), "float32"),
                       x_dbl: T.Buffer((batch, length, n_dbl), "float32"),
                       dt_weight: T.Buffer((d_inner, dt_rank), "float32"),
                       dt_bias: T.Buffer((d_inner,), "float32"),
                       A: T.Buffer((d_inner, d_state), a_dtype),
                       D: T.Buffer((d_inner,), "float32"),
                       z: T.Buffer((batch, length, d_inner), "float32"),
                       A_scale: T.Buffer((d_state,), "float32"),
                       y: T.Buffer((batch, length, d_inner), "float32")):
        h = T.alloc_buffer((d_state,), "float32")
        delta = T.alloc_buffer((1,), "float32")
        acc = T.alloc_buffer((1,), "float32")
        if a_int8:  # A's row dequantized once per channel, read T times
            a_row = T.alloc_buffer((1, d_state), "float32")
            for b, d in T.grid(batch, d_inner):
                for n in range(d_state):
                    a_row[0, n] = T.Cast("float32", A[d, n]) * A_scale[n]
                channel(u, x_dbl, dt_weight, dt_bias, a_row, 0, D, z, y, h, delta, acc, b, d)
        else:
            for b, d in T.grid(batch, d_inner):
                channel(u, x_dbl, dt_weight, dt_bias, A, d, D, z, y, h, delta, acc, b, d)

    return selective_scan if a_int8 else drop_params(selective_scan, "A_scale")


def _dims(u, A, dt_weight):
    return [int(s) for s in u.ty.shape] + [int(A.ty.shape[1]), int(dt_weight.ty.shape[1])]


def relax_converter(node, importer):
    """`from_exported_program` hook: the custom op node becomes R.call_tir to the PrimFunc."""
    u, x_dbl, dt_weight, dt_bias, A, D, z, A_scale = importer.retrieve_args(node)
    batch, length, d_inner, d_state, dt_rank = _dims(u, A, dt_weight)
    func = make_primfunc(batch, length, d_inner, d_state, dt_rank, a_int8=A_scale is not None)
    gv = importer.block_builder.add_func(func, "selective_scan")
    args = [u, x_dbl, dt_weight, dt_bias, A, D, z] + ([A_scale] if A_scale is not None else [])
    return importer.block_builder.emit(relax.call_tir(gv, args, relax.TensorType((batch, length, d_inner), "float32")))


# ---- streaming form: one time step on a (B, D, N) state ----

def selective_scan_step_reference(u, x_dbl, dt_weight, dt_bias, A, D, z, ssm_state, A_scale=None):
    """u, z: (B, D); x_dbl: (B, R + 2N); ssm_state: (B, D, N). Returns (y, new state)."""
    A = _dequantized_A(A, A_scale, u.dtype)
    dt_rank, d_state = dt_weight.shape[1], A.shape[1]
    dt, Bm, Cm = torch.split(x_dbl, [dt_rank, d_state, d_state], dim=-1)
    delta = F.softplus(F.linear(dt, dt_weight, dt_bias))
    h = torch.exp(delta[..., None] * A) * ssm_state + delta[..., None] * Bm[:, None, :] * u[..., None]
    y = (h * Cm[:, None, :]).sum(-1) + D * u
    return y * F.silu(z), h


@torch.library.custom_op("mamba::selective_scan_step", mutates_args=())
def selective_scan_step(u: torch.Tensor, x_dbl: torch.Tensor, dt_weight: torch.Tensor, dt_bias: torch.Tensor,
                        A: torch.Tensor, D: torch.Tensor, z: torch.Tensor, ssm_state: torch.Tensor,
                        A_scale: Optional[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    return selective_scan_step_reference(u, x_dbl, dt_weight, dt_bias, A, D, z, ssm_state, A_scale)


@selective_scan_step.register_fake
def _(u, x_dbl, dt_weight, dt_bias, A, D, z, ssm_state, A_scale):
    return torch.empty_like(u), torch.empty_like(ssm_state)


def _a_float(A, A_scale, d, n):
    """A[d, n] as float: widened in the loop with int8 A (no dequantized copy in RAM)."""
    return A[d, n] if A_scale is None else T.Cast("float32", A[d, n]) * A_scale[n]


@T.macro
def _silu_gate(z, y, b, d):
    y[b, d] = y[b, d] * _silu(z[b, d])


def make_step_primfunc(batch: int, d_inner: int, d_state: int, dt_rank: int, a_int8: bool = False,
                       over_u: bool = False):
    """TIR: the body of the sequential scan for one t; the state is updated in place.

    y in its own vector: three passes over the channels, with y as the scratch vector between
    them: delta for every channel (dt_proj, softplus), then the state update with its exp per
    state entry, then the SiLU gate. Each loop then keeps its own constants (the exp and
    softplus polynomials) in registers instead of reloading them per channel.

    over_u: y written over u (call_tir_inplace on u, which nothing reads after the scan), one
    vector of RAM less. One pass: per channel delta (a scalar), the state update and the gated
    y[d] = acc * SiLU(z[d]) written where u[d] was read (a second pass for the gate cost KWS-10
    on the M7 14 K instructions more: a reload and a store per channel)."""
    n_dbl = dt_rank + 2 * d_state
    b_off, c_off = dt_rank, dt_rank + d_state
    exp_factor = ["A", "A_scale"] if a_int8 else ["A"]
    a_dtype = "int8" if a_int8 else "float32"

    @T.macro
    def discretize(x_dbl, dt_weight, dt_bias, y, acc, b, d):
        acc[0] = dt_bias[d]
        for r in T.unroll(dt_rank):  # a few taps (dt_rank = d_model / 16): no loop overhead
            acc[0] = acc[0] + x_dbl[b, r] * dt_weight[d, r]
        y[b, d] = _softplus(acc[0])

    @T.macro
    def update(u, x_dbl, A, A_scale, D, h, y, acc, b, d):
        acc[0] = D[d] * u[b, d]
        for n in T.serial(d_state, annotations={STATE_LOOP: exp_factor}):
            h[b, d, n] = T.exp(y[b, d] * _a_float(A, A_scale, d, n)) * h[b, d, n] + x_dbl[b, b_off + n] * (y[b, d] * u[b, d])
            acc[0] = acc[0] + x_dbl[b, c_off + n] * h[b, d, n]
        y[b, d] = acc[0]

    @T.macro
    def channel(u, x_dbl, dt_weight, dt_bias, A, A_scale, D, z, h, dl, acc, b, d):
        dl[0] = dt_bias[d]
        for r in T.unroll(dt_rank):
            dl[0] = dl[0] + x_dbl[b, r] * dt_weight[d, r]
        dl[0] = _softplus(dl[0])
        acc[0] = D[d] * u[b, d]
        for n in T.serial(d_state, annotations={STATE_LOOP: exp_factor}):
            h[b, d, n] = T.exp(dl[0] * _a_float(A, A_scale, d, n)) * h[b, d, n] + x_dbl[b, b_off + n] * (dl[0] * u[b, d])
            acc[0] = acc[0] + x_dbl[b, c_off + n] * h[b, d, n]
        u[b, d] = acc[0] * _silu(z[b, d])

    @T.prim_func(private=True, s_tir=True)
    def selective_scan_step(u: T.Buffer((batch, d_inner), "float32"),
                            x_dbl: T.Buffer((batch, n_dbl), "float32"),
                            dt_weight: T.Buffer((d_inner, dt_rank), "float32"),
                            dt_bias: T.Buffer((d_inner,), "float32"),
                            A: T.Buffer((d_inner, d_state), a_dtype),
                            D: T.Buffer((d_inner,), "float32"),
                            z: T.Buffer((batch, d_inner), "float32"),
                            h: T.Buffer((batch, d_inner, d_state), "float32"),
                            A_scale: T.Buffer((d_state,), "float32"),
                            y: T.Buffer((batch, d_inner), "float32")):
        if over_u:
            dl = T.alloc_buffer((1,), "float32")
            acc = T.alloc_buffer((1,), "float32")
            for b, d in T.grid(batch, d_inner):
                channel(u, x_dbl, dt_weight, dt_bias, A, A_scale if a_int8 else None, D, z, h, dl, acc, b, d)
        else:
            acc = T.alloc_buffer((1,), "float32")
            for b, d in T.grid(batch, d_inner):
                discretize(x_dbl, dt_weight, dt_bias, y, acc, b, d)
            for b, d in T.grid(batch, d_inner):
                update(u, x_dbl, A, A_scale if a_int8 else None, D, h, y, acc, b, d)
            for b, d in T.grid(batch, d_inner):
                _silu_gate(z, y, b, d)

    return drop_params(selective_scan_step, *(["A_scale"] * (not a_int8) + ["y"] * over_u))


def relax_step_converter(node, importer):
    """The state is updated in place (call_tir_inplace): streaming RAM is the state itself."""
    u, x_dbl, dt_weight, dt_bias, A, D, z, ssm_state, A_scale = importer.retrieve_args(node)
    batch, d_inner, d_state, dt_rank = _dims(u, A, dt_weight)
    func = make_step_primfunc(batch, d_inner, d_state, dt_rank, a_int8=A_scale is not None)
    gv = importer.block_builder.add_func(func, "selective_scan_step")
    args = [u, x_dbl, dt_weight, dt_bias, A, D, z, ssm_state] + ([A_scale] if A_scale is not None else [])
    return importer.block_builder.emit(relax.call_tir_inplace(
        gv, args, [-1, 7], [relax.TensorType((batch, d_inner), "float32"), ssm_state.ty]))
