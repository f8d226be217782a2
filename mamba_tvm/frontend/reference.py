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

from .checkpoint import ModelSpec


class MambaBlock(nn.Module):
    """mamba_simple.Mamba forward (no inference cache), split so no (T, 2*d_inner) tensor is
    live longer than needed: z is projected right before the scan that consumes it."""

    def __init__(self, spec: ModelSpec, prefix: str):
        super().__init__()
        w = {k[len(prefix):]: torch.from_numpy(v.copy()) for k, v in spec.weights.items() if k.startswith(prefix)}
        di = spec.d_inner
        self.in_proj_x = nn.Parameter(w["in_proj.weight"][:di])
        self.in_proj_z = nn.Parameter(w["in_proj.weight"][di:])
        self.conv_weight = nn.Parameter(w["conv1d.weight"][:, 0, :])
        self.conv_bias = nn.Parameter(w["conv1d.bias"])
        self.x_proj = nn.Parameter(w["x_proj.weight"])
        self.dt_weight = nn.Parameter(w["dt_proj.weight"])
        self.dt_bias = nn.Parameter(w["dt_proj.bias"])
        self.A_log = nn.Parameter(w["A_log"])
        self.D = nn.Parameter(w["D"])
        self.out_proj = nn.Parameter(w["out_proj.weight"])

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        x = torch.ops.mamba.causal_conv1d_silu(F.linear(h, self.in_proj_x), self.conv_weight, self.conv_bias)
        x_dbl = F.linear(x, self.x_proj)
        z = F.linear(h, self.in_proj_z)
        A = -torch.exp(self.A_log)
        y = torch.ops.mamba.selective_scan(x, x_dbl, self.dt_weight, self.dt_bias, A, self.D, z)
        return F.linear(y, self.out_proj)

    def step(self, h: torch.Tensor, conv_state: torch.Tensor, ssm_state: torch.Tensor):
        """One time step: h (B, d_model) -> (out, new conv state, new scan state)."""
        x, conv_state = torch.ops.mamba.causal_conv1d_silu_step(F.linear(h, self.in_proj_x), conv_state,
                                                                 self.conv_weight, self.conv_bias)
        x_dbl = F.linear(x, self.x_proj)
        z = F.linear(h, self.in_proj_z)
        A = -torch.exp(self.A_log)
        y, ssm_state = torch.ops.mamba.selective_scan_step(x, x_dbl, self.dt_weight, self.dt_bias, A, self.D, z,
                                                           ssm_state)
        return F.linear(y, self.out_proj), conv_state, ssm_state


class TinyMamba(nn.Module):
    """linear_in -> Mamba block(s) -> mean over time -> classifier; input (batch, T, features)."""

    def __init__(self, spec: ModelSpec):
        super().__init__()
        w = {k: torch.from_numpy(v.copy()) for k, v in spec.weights.items()}
        self.linear_in = nn.Linear(spec.n_features, spec.d_model)
        self.linear_in.weight.data, self.linear_in.bias.data = w["linear_in.weight"], w["linear_in.bias"]
        self.blocks = nn.ModuleList([MambaBlock(spec, spec.block_prefix(i)) for i in range(spec.n_blocks)])
        self.classifier = nn.Linear(spec.d_model, spec.n_classes)
        self.classifier.weight.data, self.classifier.bias.data = w["classifier.weight"], w["classifier.bias"]
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.linear_in(x)
        for block in self.blocks:
            h = block(h)
        return self.classifier(h.mean(dim=1))


def reference_logits(spec: ModelSpec, x: np.ndarray, dtype=torch.float32) -> np.ndarray:
    """Logits of the PyTorch reference in float32 (what the C must match) or float64."""
    model = TinyMamba(spec).to(dtype)
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


def reference_stream_logits(spec: ModelSpec, x: np.ndarray, dtype=torch.float32) -> np.ndarray:
    """Logits computed frame by frame through TinyMambaStep (checks the step graph itself)."""
    model = TinyMamba(spec).to(dtype)
    step, finish = TinyMambaStep(model), TinyMambaFinish(model)
    states = [torch.zeros(s, dtype=dtype) for _, s in state_shapes(spec)]
    xt = torch.as_tensor(np.asarray(x), dtype=dtype)
    with torch.no_grad():
        for t in range(xt.shape[1]):
            states = list(step(xt[:, t], *states))
        return finish(states[0], torch.full((1, 1), 1.0 / xt.shape[1], dtype=dtype)).numpy()
