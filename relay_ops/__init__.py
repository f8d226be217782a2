"""Custom operators of the Mamba block, each defined twice side by side:
a `torch.library` custom op (with its PyTorch reference implementation, so `torch.export`
keeps it as one node) and the TIR PrimFunc that replaces it in Relax as an `R.call_tir`.

The name `relay_ops` is historical (microTVM users know it); the IR is Relax + TIR.
"""
from . import causal_conv1d, linear_int8, selective_scan

#: node targets of the exported program -> converter for `from_exported_program`
CUSTOM_CONVERT_MAP = {
    "selective_scan.default": selective_scan.relax_converter,
    "causal_conv1d_silu.default": causal_conv1d.relax_converter,
    "selective_scan_step.default": selective_scan.relax_step_converter,
    "causal_conv1d_silu_step.default": causal_conv1d.relax_step_converter,
    "linear_int8.default": linear_int8.relax_converter,
}

__all__ = ["CUSTOM_CONVERT_MAP", "causal_conv1d", "linear_int8", "selective_scan"]
