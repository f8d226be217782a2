"""TinyMamba (MambaLite-Micro's classifier) as an ordinary nn.Module built from mamba_tvm.nn.Mamba.

A TinyMamba state_dict is compiled like any user module: this class only gives it a
forward. Its state_dict keys are the checkpoint's own (`linear_in.*`, `mamba.*` or
`mamba.N.*`, `classifier.*`), so a validated checkpoint loads with load_state_dict.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ..nn import Mamba
from .checkpoint import ModelSpec


class TinyMamba(nn.Module):
    """linear_in -> Mamba block(s) -> mean over time -> classifier; input (batch, T, features)."""

    def __init__(self, n_features: int, d_model: int, n_classes: int, n_blocks: int = 1, single_block_names=True,
                 **mamba_kw):
        super().__init__()
        self.linear_in = nn.Linear(n_features, d_model)
        blocks = [Mamba(d_model, **mamba_kw) for _ in range(n_blocks)]
        self.mamba = blocks[0] if n_blocks == 1 and single_block_names else nn.ModuleList(blocks)
        self.classifier = nn.Linear(d_model, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.linear_in(x)
        for block in (self.mamba if isinstance(self.mamba, nn.ModuleList) else [self.mamba]):
            h = block(h)
        return self.classifier(h.mean(dim=1))


def tinymamba_module(spec: ModelSpec) -> TinyMamba:
    """The nn.Module of a validated TinyMamba checkpoint, in eval mode, with its weights."""
    model = TinyMamba(spec.n_features, spec.d_model, spec.n_classes, spec.n_blocks,
                      single_block_names=spec.block_prefix(0) == "mamba.", d_state=spec.d_state,
                      d_conv=spec.d_conv, expand=spec.d_inner / spec.d_model, dt_rank=spec.dt_rank)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in spec.weights.items()})
    return model.eval()
