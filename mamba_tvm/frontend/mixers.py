"""Mamba mixers from other libraries, swapped for mamba_tvm.nn.Mamba before export.

Why: a user who trained with Hugging Face `transformers` (MambaMixer) or `mamba_ssm`
(mamba_simple.Mamba) should pass their module unchanged. Their inference forward is the
same computation as mamba_tvm.nn.Mamba's, but written in ways torch.export cannot keep as
one operator (CUDA kernels, Python loops over time); the swap reuses their parameters as
they are (same submodules, same A_log and D) and refuses, by name, options our operators do
not implement.
"""
from __future__ import annotations

import torch.nn as nn

from ..errors import CheckpointError
from ..nn import Mamba


def _known_kind(module: nn.Module) -> str | None:
    cls = type(module)
    origin = cls.__module__
    if cls.__name__ == "MambaMixer" and origin.startswith("transformers."):
        return "transformers MambaMixer"
    if cls.__name__ == "Mamba" and origin.startswith("mamba_ssm."):
        return "mamba_ssm Mamba"
    return None


def _from_mixer(mixer: nn.Module, kind: str, where: str) -> Mamba:
    activation = getattr(mixer, "activation", "silu")
    if activation not in ("silu", "swish"):
        raise CheckpointError(f"{kind} at '{where}' uses activation '{activation}'; mamba_tvm's scan implements "
                              "Mamba's SiLU gating only")
    for attr in ("in_proj", "conv1d", "x_proj", "dt_proj", "out_proj", "A_log", "D"):
        if not hasattr(mixer, attr):
            raise CheckpointError(f"{kind} at '{where}' has no '{attr}': not a Mamba (S6) mixer mamba_tvm knows")
    conv = mixer.conv1d
    if conv.groups != conv.in_channels or conv.padding[0] != conv.kernel_size[0] - 1:
        raise CheckpointError(f"{kind} at '{where}': its conv1d is not Mamba's causal depthwise conv")
    swapped = Mamba.__new__(Mamba)
    nn.Module.__init__(swapped)
    swapped.d_inner, swapped.d_state = mixer.A_log.shape
    swapped.d_model, swapped.d_conv = mixer.in_proj.in_features, conv.kernel_size[0]
    swapped.expand = swapped.d_inner / swapped.d_model
    swapped.dt_rank = mixer.dt_proj.in_features
    swapped.use_fast_path, swapped.layer_idx, swapped.activation = False, getattr(mixer, "layer_idx", None), "silu"
    for attr in ("in_proj", "conv1d", "x_proj", "dt_proj", "out_proj"):
        setattr(swapped, attr, getattr(mixer, attr))
    swapped.act = nn.SiLU()
    swapped.A_log, swapped.D = mixer.A_log, mixer.D
    return swapped.train(mixer.training)


def swap_mixers(module: nn.Module, notes: list[str] | None = None) -> nn.Module:
    """Replace every known foreign Mamba mixer inside `module` (in place); returns the module."""
    if _known_kind(module):
        return _from_mixer(module, _known_kind(module), "the model")
    for name, child in list(module.named_modules()):
        kind = _known_kind(child)
        if not kind or not name:
            continue
        parent_name, _, attr = name.rpartition(".")
        parent = module.get_submodule(parent_name) if parent_name else module
        setattr(parent, attr, _from_mixer(child, kind, name))
        if notes is not None:
            notes.append(f"{name}: {kind} compiled as mamba_tvm.nn.Mamba (same weights)")
    return module
