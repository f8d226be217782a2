"""The model's Relax graph, run by TVM's own VM: a reference for what the graph passes produced.

Why: int8 weights change the model, so the user's float module no longer says what the C
must compute; the quantized graph does. This runs that graph (after the graph passes, Mamba
operators still whole) with TVM's stock LLVM build and VM, the Mamba operators evaluated by
their PyTorch definitions in float64 (relay_ops), so it shares none of our TIR kernels,
schedules, arena plan or C emitter with the firmware it checks.
"""
from __future__ import annotations

import numpy as np
import torch
import tvm
from tvm import relax

from relay_ops import causal_conv1d, linear_int8, selective_scan

def _linear_int8(x, w_q, scale, bias=None):
    return linear_int8.linear_int8_reference(x, w_q, scale, bias)


_OPS = {
    "mamba.causal_conv1d_silu": causal_conv1d.causal_conv1d_silu_reference,
    "mamba.selective_scan": selective_scan.selective_scan_reference,
    "mamba.linear_int8": _linear_int8,
}


def _as_torch(t) -> torch.Tensor:
    value = torch.from_numpy(t.numpy())
    return value.double() if value.is_floating_point() else value


def _register() -> None:
    """The Mamba operators as packed functions the VM calls (float64 inside, float32 out)."""
    for name, fn in _OPS.items():
        def packed(*args, _fn=fn):
            return tvm.runtime.tensor(_fn(*map(_as_torch, args)).float().numpy())
        tvm.register_global_func(name, packed, override=True)


def run_graph(mod: tvm.IRModule, x: np.ndarray) -> np.ndarray:
    """`main` of a module after the graph passes (fusion "layer": no step split), on x (N, T, F)."""
    _register()
    exe = tvm.compile(mod, target="llvm")
    vm = relax.VirtualMachine(exe, tvm.cpu())
    outs = []
    for xi in np.asarray(x, dtype=np.float32):
        out = vm["main"](tvm.runtime.tensor(xi[None]))
        if not hasattr(out, "numpy"):  # a tuple of outputs: the first is the logits
            out = out[0]
        outs.append(out.numpy().reshape(-1))
    return np.stack(outs)
