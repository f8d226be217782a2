"""`mamba_tvm.nn.Mamba`: a drop-in for mamba_ssm's `mamba_simple.Mamba`, in pure PyTorch.

Same constructor arguments, attributes and state_dict keys as mamba_simple.Mamba (so a
checkpoint trained with it loads unchanged), and the same forward for inference. The causal
conv and the selective scan go through the `relay_ops` custom ops: `torch.export` keeps each
as one node, which the compiler maps to its TIR kernels (and, for time-step fusion and
streaming, to their one-step forms).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

import relay_ops  # noqa: F401  (registers torch.ops.mamba.*)


class Mamba(nn.Module):
    """mamba_simple.Mamba(d_model, d_state=16, d_conv=4, expand=2, dt_rank="auto", ...)."""

    def __init__(self, d_model: int, d_state: int = 16, d_conv: int = 4, expand: int = 2,
                 dt_rank: int | str = "auto", dt_min: float = 0.001, dt_max: float = 0.1, dt_init: str = "random",
                 dt_scale: float = 1.0, dt_init_floor: float = 1e-4, conv_bias: bool = True, bias: bool = False,
                 use_fast_path: bool = True, layer_idx: int | None = None, device=None, dtype=None):
        super().__init__()
        kw = {"device": device, "dtype": dtype}
        self.d_model, self.d_state, self.d_conv, self.expand = d_model, d_state, d_conv, expand
        self.d_inner = int(expand * d_model)
        self.dt_rank = math.ceil(d_model / 16) if dt_rank == "auto" else int(dt_rank)
        self.use_fast_path, self.layer_idx, self.activation = use_fast_path, layer_idx, "silu"
        self.in_proj = nn.Linear(d_model, 2 * self.d_inner, bias=bias, **kw)
        self.conv1d = nn.Conv1d(self.d_inner, self.d_inner, d_conv, groups=self.d_inner, padding=d_conv - 1,
                                bias=conv_bias, **kw)
        self.act = nn.SiLU()
        self.x_proj = nn.Linear(self.d_inner, self.dt_rank + 2 * d_state, bias=False, **kw)
        self.dt_proj = nn.Linear(self.dt_rank, self.d_inner, bias=True, **kw)
        with torch.no_grad():  # mamba_simple's initialisation, so untrained models behave alike
            std = self.dt_rank ** -0.5 * dt_scale
            if dt_init == "constant":
                nn.init.constant_(self.dt_proj.weight, std)
            elif dt_init == "random":
                nn.init.uniform_(self.dt_proj.weight, -std, std)
            else:
                raise NotImplementedError(f"dt_init {dt_init!r}")
            dt = torch.exp(torch.rand(self.d_inner, **kw) * (math.log(dt_max) - math.log(dt_min))
                           + math.log(dt_min)).clamp(min=dt_init_floor)
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))
        A = torch.arange(1, d_state + 1, dtype=torch.float32, device=device).repeat(self.d_inner, 1)
        self.A_log = nn.Parameter(torch.log(A))
        self.D = nn.Parameter(torch.ones(self.d_inner, device=device))
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=bias, **kw)

    def forward(self, hidden_states: torch.Tensor, inference_params=None, **kwargs) -> torch.Tensor:
        """(batch, length, d_model) -> (batch, length, d_model); no inference cache (the
        compiler makes its own step form)."""
        if inference_params is not None or any(v is not None for v in kwargs.values()):
            raise NotImplementedError("mamba_tvm.nn.Mamba takes no inference cache or attention mask")
        x, z = self.in_proj(hidden_states).chunk(2, dim=-1)
        conv_bias = self.conv1d.bias if self.conv1d.bias is not None else torch.zeros_like(self.D)
        x = torch.ops.mamba.causal_conv1d_silu(x, self.conv1d.weight.squeeze(1), conv_bias)
        y = torch.ops.mamba.selective_scan(x, self.x_proj(x), self.dt_proj.weight, self.dt_proj.bias,
                                           -torch.exp(self.A_log.float()), self.D, z, None)
        return self.out_proj(y)
