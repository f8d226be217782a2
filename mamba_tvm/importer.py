"""torch.export -> Relax, with the custom ops mapped to their TIR kernels by R.call_tir."""
from __future__ import annotations

import warnings

import numpy as np
import torch
import tvm
from tvm.relax.frontend.torch import from_exported_program

from relay_ops import CUSTOM_CONVERT_MAP

from .errors import CompileError
from .frontend import ModelSpec, TinyMamba


def import_model(spec: ModelSpec, seq_len: int) -> tvm.IRModule:
    """Trace the reference model for a (1, seq_len, features) input; weights become Relax constants."""
    if seq_len < 1:
        raise CompileError(f"sequence length must be positive, got {seq_len}")
    example = torch.zeros(1, seq_len, spec.n_features, dtype=torch.float32)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.export's own pytree deprecations
        exported = torch.export.export(TinyMamba(spec), (example,))
    mod = from_exported_program(exported, custom_convert_map=CUSTOM_CONVERT_MAP, keep_params_as_input=False)
    return mod


def example_input(spec: ModelSpec, seq_len: int | None = None) -> np.ndarray:
    """The checkpoint's sample input, or zeros when it has none."""
    if spec.sample_input is not None and seq_len in (None, spec.sample_input.shape[1]):
        return spec.sample_input
    if seq_len is None:
        raise CompileError("the checkpoint has no sample_input: give the sequence length (--seq-len)")
    return np.zeros((1, seq_len, spec.n_features), np.float32)
