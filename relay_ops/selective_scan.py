"""The selective scan of a Mamba block, with its discretization fused into the recurrence.

Inputs follow mamba_simple: `u` is the conv output (B, L, D); `x_dbl` is x_proj's output
(B, L, R + 2N) holding dt, B and C side by side; `dt_weight`/`dt_bias` are dt_proj; `A` is
-exp(A_log) (D, N); `D` the skip; `z` the gate. Per time step and channel the kernel computes
delta = softplus(dt_proj(dt)), exp(delta*A), delta*B*u and the C readout in registers, so
neither delta (L, D) nor the discretized (L, D, N) tensors ever exist; the state is N floats
per channel.
"""
import torch
import torch.nn.functional as F
from tvm import relax
from tvm.script import tirx as T


def selective_scan_reference(u, x_dbl, dt_weight, dt_bias, A, D, z):
    """Plain PyTorch recurrence (any float dtype); the definition the TIR kernel must match."""
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
                   A: torch.Tensor, D: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    return selective_scan_reference(u, x_dbl, dt_weight, dt_bias, A, D, z)


@selective_scan.register_fake
def _(u, x_dbl, dt_weight, dt_bias, A, D, z):
    return torch.empty_like(u)


def make_primfunc(batch: int, length: int, d_inner: int, d_state: int, dt_rank: int, dtype: str = "float32"):
    """TIR: channel loop outside, sequential time loop inside; h is the per-channel state."""
    n_dbl = dt_rank + 2 * d_state
    b_off, c_off = dt_rank, dt_rank + d_state

    @T.prim_func(private=True, s_tir=True)
    def selective_scan(u: T.Buffer((batch, length, d_inner), dtype),
                       x_dbl: T.Buffer((batch, length, n_dbl), dtype),
                       dt_weight: T.Buffer((d_inner, dt_rank), dtype),
                       dt_bias: T.Buffer((d_inner,), dtype),
                       A: T.Buffer((d_inner, d_state), dtype),
                       D: T.Buffer((d_inner,), dtype),
                       z: T.Buffer((batch, length, d_inner), dtype),
                       y: T.Buffer((batch, length, d_inner), dtype)):
        h = T.alloc_buffer((d_state,), dtype)
        delta = T.alloc_buffer((1,), dtype)
        acc = T.alloc_buffer((1,), dtype)
        for b, d in T.grid(batch, d_inner):
            for n in range(d_state):
                h[n] = T.float32(0)
            for t in range(length):
                delta[0] = dt_bias[d]
                for r in range(dt_rank):
                    delta[0] = delta[0] + x_dbl[b, t, r] * dt_weight[d, r]
                # softplus with torch's threshold: linear above 20
                delta[0] = T.if_then_else(delta[0] > T.float32(20), delta[0], T.log1p(T.exp(delta[0])))
                acc[0] = D[d] * u[b, t, d]
                for n in range(d_state):
                    h[n] = T.exp(delta[0] * A[d, n]) * h[n] + delta[0] * x_dbl[b, t, b_off + n] * u[b, t, d]
                    acc[0] = acc[0] + x_dbl[b, t, c_off + n] * h[n]
                y[b, t, d] = acc[0] * (z[b, t, d] / (T.float32(1) + T.exp(T.float32(0) - z[b, t, d])))

    return selective_scan


def relax_converter(node, importer):
    """`from_exported_program` hook: the custom op node becomes R.call_tir to the PrimFunc."""
    u, x_dbl, dt_weight, dt_bias, A, D, z = importer.retrieve_args(node)
    batch, length, d_inner = (int(s) for s in u.ty.shape)
    d_state, dt_rank = int(A.ty.shape[1]), int(dt_weight.ty.shape[1])
    gv = importer.block_builder.add_func(make_primfunc(batch, length, d_inner, d_state, dt_rank), "selective_scan")
    out_ty = relax.TensorType((batch, length, d_inner), "float32")
    return importer.block_builder.emit(relax.call_tir(gv, [u, x_dbl, dt_weight, dt_bias, A, D, z], out_ty))


# ---- streaming form: one time step on a (B, D, N) state ----

def selective_scan_step_reference(u, x_dbl, dt_weight, dt_bias, A, D, z, ssm_state):
    """u, z: (B, D); x_dbl: (B, R + 2N); ssm_state: (B, D, N). Returns (y, new state)."""
    dt_rank, d_state = dt_weight.shape[1], A.shape[1]
    dt, Bm, Cm = torch.split(x_dbl, [dt_rank, d_state, d_state], dim=-1)
    delta = F.softplus(F.linear(dt, dt_weight, dt_bias))
    h = torch.exp(delta[..., None] * A) * ssm_state + delta[..., None] * Bm[:, None, :] * u[..., None]
    y = (h * Cm[:, None, :]).sum(-1) + D * u
    return y * F.silu(z), h


@torch.library.custom_op("mamba::selective_scan_step", mutates_args=())
def selective_scan_step(u: torch.Tensor, x_dbl: torch.Tensor, dt_weight: torch.Tensor, dt_bias: torch.Tensor,
                        A: torch.Tensor, D: torch.Tensor, z: torch.Tensor,
                        ssm_state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return selective_scan_step_reference(u, x_dbl, dt_weight, dt_bias, A, D, z, ssm_state)


@selective_scan_step.register_fake
def _(u, x_dbl, dt_weight, dt_bias, A, D, z, ssm_state):
    return torch.empty_like(u), torch.empty_like(ssm_state)


def make_step_primfunc(batch: int, d_inner: int, d_state: int, dt_rank: int, dtype: str = "float32"):
    """TIR: the body of the sequential scan for one t; the state is updated in place."""
    n_dbl = dt_rank + 2 * d_state
    b_off, c_off = dt_rank, dt_rank + d_state

    @T.prim_func(private=True, s_tir=True)
    def selective_scan_step(u: T.Buffer((batch, d_inner), dtype),
                            x_dbl: T.Buffer((batch, n_dbl), dtype),
                            dt_weight: T.Buffer((d_inner, dt_rank), dtype),
                            dt_bias: T.Buffer((d_inner,), dtype),
                            A: T.Buffer((d_inner, d_state), dtype),
                            D: T.Buffer((d_inner,), dtype),
                            z: T.Buffer((batch, d_inner), dtype),
                            h: T.Buffer((batch, d_inner, d_state), dtype),
                            y: T.Buffer((batch, d_inner), dtype)):
        delta = T.alloc_buffer((1,), dtype)
        acc = T.alloc_buffer((1,), dtype)
        for b, d in T.grid(batch, d_inner):
            delta[0] = dt_bias[d]
            for r in range(dt_rank):
                delta[0] = delta[0] + x_dbl[b, r] * dt_weight[d, r]
            delta[0] = T.if_then_else(delta[0] > T.float32(20), delta[0], T.log1p(T.exp(delta[0])))
            acc[0] = D[d] * u[b, d]
            for n in range(d_state):
                h[b, d, n] = T.exp(delta[0] * A[d, n]) * h[b, d, n] + delta[0] * x_dbl[b, b_off + n] * u[b, d]
                acc[0] = acc[0] + x_dbl[b, c_off + n] * h[b, d, n]
            y[b, d] = acc[0] * (z[b, d] / (T.float32(1) + T.exp(T.float32(0) - z[b, d])))

    return selective_scan_step


def relax_step_converter(node, importer):
    """The state is updated in place (call_tir_inplace): streaming RAM is the state itself."""
    u, x_dbl, dt_weight, dt_bias, A, D, z, ssm_state = importer.retrieve_args(node)
    batch, d_inner = (int(s) for s in u.ty.shape)
    d_state, dt_rank = int(A.ty.shape[1]), int(dt_weight.ty.shape[1])
    gv = importer.block_builder.add_func(make_step_primfunc(batch, d_inner, d_state, dt_rank), "selective_scan_step")
    return importer.block_builder.emit(relax.call_tir_inplace(
        gv, [u, x_dbl, dt_weight, dt_bias, A, D, z, ssm_state], [-1, 7],
        [relax.TensorType((batch, d_inner), "float32"), ssm_state.ty]))
