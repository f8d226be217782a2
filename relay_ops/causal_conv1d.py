"""Depthwise causal conv1d with bias and SiLU, in (batch, time, channel) layout.

As a custom op it replaces torch's Conv1d(groups=C, padding=K-1)[..., :T] plus the two
transposes around it: TVM's generic lowering would materialize a padded, transposed copy of
the (T, d_inner) activation; this kernel reads the input in place.
"""
import torch
import torch.nn.functional as F
from tvm import relax
from tvm.script import tirx as T


def causal_conv1d_silu_reference(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """x: (B, L, D); weight: (D, K); bias: (D,) -> silu(causal depthwise conv(x))."""
    length, kernel = x.shape[1], weight.shape[1]
    y = F.conv1d(x.transpose(1, 2), weight.unsqueeze(1), bias, padding=kernel - 1, groups=x.shape[2])
    return F.silu(y[..., :length].transpose(1, 2))


@torch.library.custom_op("mamba::causal_conv1d_silu", mutates_args=())
def causal_conv1d_silu(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    return causal_conv1d_silu_reference(x, weight, bias)


@causal_conv1d_silu.register_fake
def _(x, weight, bias):
    return torch.empty_like(x)


def make_primfunc(batch: int, length: int, channels: int, kernel: int, dtype: str = "float32"):
    """TIR: one output element at a time; taps before t=0 are the causal zero padding."""

    @T.prim_func(private=True, s_tir=True)
    def causal_conv1d_silu(x: T.Buffer((batch, length, channels), dtype),
                           weight: T.Buffer((channels, kernel), dtype),
                           bias: T.Buffer((channels,), dtype),
                           y: T.Buffer((batch, length, channels), dtype)):
        acc = T.alloc_buffer((1,), dtype)
        for b, t, d in T.grid(batch, length, channels):
            acc[0] = bias[d]
            for k in range(kernel):
                if t + k >= kernel - 1:
                    acc[0] = acc[0] + weight[d, k] * x[b, t + k - (kernel - 1), d]
            y[b, t, d] = acc[0] / (T.float32(1) + T.exp(T.float32(0) - acc[0]))

    return causal_conv1d_silu


def relax_converter(node, importer):
    """`from_exported_program` hook: the custom op node becomes R.call_tir to the PrimFunc."""
    x, weight, bias = importer.retrieve_args(node)
    batch, length, channels = (int(s) for s in x.ty.shape)
    kernel = int(weight.ty.shape[1])
    gv = importer.block_builder.add_func(make_primfunc(batch, length, channels, kernel), "causal_conv1d_silu")
    out_ty = relax.TensorType((batch, length, channels), "float32")
    return importer.block_builder.emit(relax.call_tir(gv, [x, weight, bias], out_ty))


# ---- streaming form: one time step, the last K-1 inputs kept in a state buffer ----

def causal_conv1d_silu_step_reference(x, conv_state, weight, bias):
    """x: (B, D) one frame; conv_state: (B, D, K-1) previous inputs, oldest first.
    Returns (silu(conv output), new state)."""
    window = torch.cat([conv_state, x[:, :, None]], dim=2)
    return F.silu((window * weight).sum(-1) + bias), window[:, :, 1:]


@torch.library.custom_op("mamba::causal_conv1d_silu_step", mutates_args=())
def causal_conv1d_silu_step(x: torch.Tensor, conv_state: torch.Tensor, weight: torch.Tensor,
                            bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    u, state = causal_conv1d_silu_step_reference(x, conv_state, weight, bias)
    return u, state.clone()


@causal_conv1d_silu_step.register_fake
def _(x, conv_state, weight, bias):
    return torch.empty_like(x), torch.empty_like(conv_state)


def _step_macro(hist: int):
    """One channel of one step: the taps over the window and x, the window shifted in place,
    SiLU of the sum written to `out` (u, or x itself: x[d] is read before it is written)."""

    @T.macro
    def channel_step(x, conv_state, weight, bias, out, acc, b, d):
        acc[0] = bias[d] + weight[d, hist] * x[b, d]
        for k in T.unroll(hist):  # d_conv - 1 taps
            acc[0] = acc[0] + weight[d, k] * conv_state[b, d, k]
        for k in T.unroll(hist - 1):
            conv_state[b, d, k] = conv_state[b, d, k + 1]
        conv_state[b, d, hist - 1] = x[b, d]
        out[b, d] = acc[0] / (T.float32(1) + T.exp(T.float32(0) - acc[0]))

    return channel_step


def make_step_primfunc(batch: int, channels: int, kernel: int, dtype: str = "float32"):
    """TIR: reads the window, then shifts it in place (per channel, so in-place is safe)."""
    hist = kernel - 1
    channel_step = _step_macro(hist)

    @T.prim_func(private=True, s_tir=True)
    def causal_conv1d_silu_step(x: T.Buffer((batch, channels), dtype),
                                conv_state: T.Buffer((batch, channels, hist), dtype),
                                weight: T.Buffer((channels, kernel), dtype),
                                bias: T.Buffer((channels,), dtype),
                                u: T.Buffer((batch, channels), dtype)):
        acc = T.alloc_buffer((1,), dtype)
        for b, d in T.grid(batch, channels):
            channel_step(x, conv_state, weight, bias, u, acc, b, d)

    return causal_conv1d_silu_step


def make_step_primfunc_over_x(batch: int, channels: int, kernel: int, dtype: str = "float32"):
    """The step kernel writing u over x (call_tir_inplace on x, which nothing reads after the
    conv)."""
    hist = kernel - 1
    channel_step = _step_macro(hist)

    @T.prim_func(private=True, s_tir=True)
    def causal_conv1d_silu_step(x: T.Buffer((batch, channels), dtype),
                                conv_state: T.Buffer((batch, channels, hist), dtype),
                                weight: T.Buffer((channels, kernel), dtype),
                                bias: T.Buffer((channels,), dtype)):
        acc = T.alloc_buffer((1,), dtype)
        for b, d in T.grid(batch, channels):
            channel_step(x, conv_state, weight, bias, x, acc, b, d)

    return causal_conv1d_silu_step


def relax_step_converter(node, importer):
    """The state is updated in place (call_tir_inplace): streaming RAM is the state itself."""
    x, conv_state, weight, bias = importer.retrieve_args(node)
    batch, channels = (int(s) for s in x.ty.shape)
    kernel = int(weight.ty.shape[1])
    gv = importer.block_builder.add_func(make_step_primfunc(batch, channels, kernel), "causal_conv1d_silu_step")
    return importer.block_builder.emit(relax.call_tir_inplace(
        gv, [x, conv_state, weight, bias], [-1, 1],
        [relax.TensorType((batch, channels), "float32"), conv_state.ty]))
