"""The user's own module as the reference every build is checked against.

Why: the compiler's claim is "this C computes what your model computes", so the check runs
the model the user gave (not a rebuild of it): a pooling, a norm or a head the compiler
got wrong cannot hide. Float64 runs give the error-free reference the tests use.
"""
from __future__ import annotations

import numpy as np
import torch

from .checkpoint import ModelSpec


def inference_mode(module: torch.nn.Module) -> torch.nn.Module:
    """module.eval(), for modules that have it (a torch.export program's module refuses eval():
    it was exported in the mode it runs in)."""
    try:
        return module.eval()
    except NotImplementedError:
        return module


def as_module(model) -> torch.nn.Module:
    """An nn.Module for a TinyMamba ModelSpec or a module (returned as is)."""
    if isinstance(model, ModelSpec):
        from .tinymamba import tinymamba_module

        return tinymamba_module(model)
    return model


def reference_logits(model, x: np.ndarray, dtype=torch.float32) -> np.ndarray:
    """The module's outputs on x ((N, T, F), float32 or float64 arithmetic), as a 2-D array."""
    import copy

    module = inference_mode(copy.deepcopy(as_module(model)).to(dtype))
    with torch.no_grad():
        out = module(torch.as_tensor(np.asarray(x), dtype=dtype))
    if isinstance(out, (tuple, list)):
        out = out[0]
    return out.detach().cpu().numpy().reshape(len(x), -1)


def first_nonfinite_layer(model, x: np.ndarray) -> str | None:
    """Where values first stop being finite on input x, in execution order (None if the logits
    are finite): the module run with hooks on every layer. Operators that are not modules
    (a custom op, a mean in forward) are named by the layers around them."""
    module = inference_mode(as_module(model))
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

    leaves = [(n, m) for n, m in module.named_modules() if n and not list(m.children())]
    handles = [m.register_forward_pre_hook(before(n)) for n, m in leaves]
    handles += [m.register_forward_hook(after(n)) for n, m in leaves]
    try:
        with torch.no_grad():
            logits = module(torch.as_tensor(np.asarray(x), dtype=torch.float32))
    finally:
        for h in handles:
            h.remove()
    if found:
        return found[0]
    return None if finite(logits) else f"after {last_finite[0]}"
