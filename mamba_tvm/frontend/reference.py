"""The PyTorch reference of TinyMamba with mamba_simple semantics.

The same module is what `torch.export` traces for the compiler: the causal conv and the
selective scan go through the `relay_ops` custom ops, whose reference implementations make
this module runnable (and exact in float64) without TVM.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import relay_ops  # noqa: F401  (registers torch.ops.mamba.*)
from relay_ops.linear_int8 import qlinear

from .checkpoint import ModelSpec
from .quantize import quantize_columns, quantize_rows


class Linear(nn.Module):
    """A weight matrix (out, in) with an optional bias, float32 or int8 per output row."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray | None, int8: bool):
        super().__init__()
        self.int8 = int8
        if int8:
            q, scale = quantize_rows(weight)
            self.register_buffer("w_q", torch.from_numpy(q))
            self.register_buffer("scale", torch.from_numpy(scale))
        else:
            self.weight = nn.Parameter(torch.from_numpy(weight.copy()))
        self.bias = None if bias is None else nn.Parameter(torch.from_numpy(bias.copy()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.int8:
            return qlinear(x, self.w_q, self.scale.to(x.dtype), None if self.bias is None else self.bias)
        return F.linear(x, self.weight, self.bias)


class MambaBlock(nn.Module):
    """mamba_simple.Mamba forward (no inference cache), split so no (T, 2*d_inner) tensor is
    live longer than needed: z is projected right before the scan that consumes it."""

    def __init__(self, spec: ModelSpec, prefix: str, int8: bool = False):
        super().__init__()
        w = {k[len(prefix):]: v for k, v in spec.weights.items() if k.startswith(prefix)}
        di = spec.d_inner
        self.in_proj_x = Linear(w["in_proj.weight"][:di], None, int8)
        self.in_proj_z = Linear(w["in_proj.weight"][di:], None, int8)
        self.x_proj = Linear(w["x_proj.weight"], None, int8)
        self.out_proj = Linear(w["out_proj.weight"], None, int8)
        self.conv_weight = nn.Parameter(torch.from_numpy(w["conv1d.weight"][:, 0, :].copy()))
        self.conv_bias = nn.Parameter(torch.from_numpy(w["conv1d.bias"].copy()))
        self.dt_weight = nn.Parameter(torch.from_numpy(w["dt_proj.weight"].copy()))
        self.dt_bias = nn.Parameter(torch.from_numpy(w["dt_proj.bias"].copy()))
        self.D = nn.Parameter(torch.from_numpy(w["D"].copy()))
        A = -np.exp(w["A_log"].astype(np.float64)).astype(np.float32)
        if int8:
            a_q, a_scale = quantize_columns(A)
            self.register_buffer("A", torch.from_numpy(a_q))
            self.register_buffer("A_scale", torch.from_numpy(a_scale))
        else:
            self.A_log = nn.Parameter(torch.from_numpy(w["A_log"].copy()))
            self.A_scale = None

    def _A(self, dtype):
        if self.A_scale is None:
            return -torch.exp(self.A_log.to(dtype))
        return self.A

    def _A_scale(self, dtype):
        return None if self.A_scale is None else self.A_scale.to(dtype)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        x = torch.ops.mamba.causal_conv1d_silu(self.in_proj_x(h), self.conv_weight, self.conv_bias)
        x_dbl = self.x_proj(x)
        z = self.in_proj_z(h)
        y = torch.ops.mamba.selective_scan(x, x_dbl, self.dt_weight, self.dt_bias, self._A(h.dtype), self.D, z,
                                           self._A_scale(h.dtype))
        return self.out_proj(y)

    def step(self, h: torch.Tensor, conv_state: torch.Tensor, ssm_state: torch.Tensor):
        """One time step: h (B, d_model) -> (out, new conv state, new scan state)."""
        x, conv_state = torch.ops.mamba.causal_conv1d_silu_step(self.in_proj_x(h), conv_state,
                                                                 self.conv_weight, self.conv_bias)
        x_dbl = self.x_proj(x)
        z = self.in_proj_z(h)
        y, ssm_state = torch.ops.mamba.selective_scan_step(x, x_dbl, self.dt_weight, self.dt_bias, self._A(h.dtype),
                                                           self.D, z, ssm_state, self._A_scale(h.dtype))
        return self.out_proj(y), conv_state, ssm_state


class TinyMamba(nn.Module):
    """linear_in -> Mamba block(s) -> mean over time -> classifier; input (batch, T, features)."""

    def __init__(self, spec: ModelSpec, int8: bool = False):
        super().__init__()
        w = spec.weights
        self.linear_in = Linear(w["linear_in.weight"], w["linear_in.bias"], int8)
        self.blocks = nn.ModuleList([MambaBlock(spec, spec.block_prefix(i), int8) for i in range(spec.n_blocks)])
        self.classifier = Linear(w["classifier.weight"], w["classifier.bias"], int8)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.linear_in(x)
        for block in self.blocks:
            h = block(h)
        return self.classifier(h.mean(dim=1))


def reference_logits(spec: ModelSpec, x: np.ndarray, dtype=torch.float32, int8: bool = False) -> np.ndarray:
    """Logits of the PyTorch reference in float32 (what the C must match) or float64; with
    int8=True, of the model with int8 weights (what the int8 C must match)."""
    model = TinyMamba(spec, int8).to(dtype)
    with torch.no_grad():
        return model(torch.as_tensor(np.asarray(x), dtype=dtype)).numpy()


class TinyMambaStep(nn.Module):
    """The recurrence as one time step: (frame, pooled sum, conv states, scan states) ->
    (pooled sum + block output, new states). Traced by the compiler for time-step fused and
    streaming code, where no (T, d_inner) tensor exists."""

    def __init__(self, model: TinyMamba):
        super().__init__()
        self.model = model

    def forward(self, frame: torch.Tensor, pooled: torch.Tensor, *states: torch.Tensor):
        n = len(self.model.blocks)
        conv_states, ssm_states = states[:n], states[n:]
        h = self.model.linear_in(frame)
        new_conv, new_ssm = [], []
        for block, cs, ss in zip(self.model.blocks, conv_states, ssm_states):
            h, cs, ss = block.step(h, cs, ss)
            new_conv.append(cs)
            new_ssm.append(ss)
        return (pooled + h, *new_conv, *new_ssm)


class TinyMambaFinish(nn.Module):
    """Mean pooling and the classifier: logits from the pooled sum and 1/T."""

    def __init__(self, model: TinyMamba):
        super().__init__()
        self.model = model

    def forward(self, pooled: torch.Tensor, inv_steps: torch.Tensor):
        return self.model.classifier(pooled * inv_steps)


def state_shapes(spec: ModelSpec) -> list[tuple[str, tuple[int, ...]]]:
    """Streaming state, in the step function's argument order after the frame."""
    shapes = [("pooled", (1, spec.d_model))]
    shapes += [(f"conv{i}", (1, spec.d_inner, spec.d_conv - 1)) for i in range(spec.n_blocks)]
    shapes += [(f"ssm{i}", (1, spec.d_inner, spec.d_state)) for i in range(spec.n_blocks)]
    return shapes


def reference_stream_logits(spec: ModelSpec, x: np.ndarray, dtype=torch.float32, int8: bool = False) -> np.ndarray:
    """Logits computed frame by frame through TinyMambaStep (checks the step graph itself)."""
    model = TinyMamba(spec, int8).to(dtype)
    step, finish = TinyMambaStep(model), TinyMambaFinish(model)
    states = [torch.zeros(s, dtype=dtype) for _, s in state_shapes(spec)]
    xt = torch.as_tensor(np.asarray(x), dtype=dtype)
    with torch.no_grad():
        for t in range(xt.shape[1]):
            states = list(step(xt[:, t], *states))
        return finish(states[0], torch.full((1, 1), 1.0 / xt.shape[1], dtype=dtype)).numpy()


def first_nonfinite_layer(spec: ModelSpec, x: np.ndarray, int8: bool = False) -> str | None:
    """Where values first stop being finite on input x, in execution order (None if the logits
    are finite): the PyTorch reference run with hooks on every layer. Operators that are not
    modules (the causal conv, the scan, the mean) are named by the layers around them."""
    model = TinyMamba(spec, int8)
    last_finite, found = ["the input"], []

    def finite(t) -> bool:
        return all(bool(torch.all(torch.isfinite(v))) for v in (t if isinstance(t, tuple) else (t,))
                   if isinstance(v, torch.Tensor))

    def before(name):
        def check(_module, inputs):
            if not found and not finite(inputs):
                found.append(f"between {last_finite[0]} and layer '{name}'")
        return check

    def after(name):
        def check(_module, _inputs, output):
            if found:
                return
            if finite(output):
                last_finite[0] = f"layer '{name}'"
            else:
                found.append(f"layer '{name}'")
        return check

    leaves = [(n, m) for n, m in model.named_modules() if n and not list(m.children())]
    handles = [m.register_forward_pre_hook(before(n)) for n, m in leaves]
    handles += [m.register_forward_hook(after(n)) for n, m in leaves]
    try:
        with torch.no_grad():
            logits = model(torch.as_tensor(np.asarray(x), dtype=torch.float32))
    finally:
        for h in handles:
            h.remove()
    if found:
        return found[0]
    return None if finite(logits) else f"after {last_finite[0]}"
