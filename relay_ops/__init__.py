"""Custom operators of the Mamba block, each defined twice side by side:
a `torch.library` custom op (with its PyTorch reference implementation, so `torch.export`
keeps it as one node) and the TIR PrimFunc that implements it; mamba_ops.py says how Relax
sees each operator and lowers it to `R.call_tir`.

The name `relay_ops` is historical (microTVM users know it); the IR is Relax + TIR.
"""
from . import causal_conv1d, linear_int8, mamba_ops, selective_scan
from .mamba_ops import CUSTOM_CONVERT_MAP

__all__ = ["CUSTOM_CONVERT_MAP", "causal_conv1d", "linear_int8", "mamba_ops", "selective_scan"]
