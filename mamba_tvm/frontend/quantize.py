"""int8 weights: symmetric quantization, one scale per output channel.

Linear weight matrices get a scale per output row; A (= -exp(A_log), (d_inner, d_state))
gets one per state column n, because its columns, not its rows, share a magnitude
(column n decays at about -(n+1) in every channel). Activations stay float32; the kernels
widen the int8 weights inside their loops. The compiler applies this to the matrices it
actually multiplies by, after folding (passes/quantize_weights.py).
"""
from __future__ import annotations

import numpy as np

def quantize_rows(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """w (out, in) float -> (int8 (out, in), scale (out,)) with w ~= q * scale[:, None]."""
    amax = np.max(np.abs(w), axis=1)
    scale = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
    q = np.clip(np.rint(w / scale[:, None]), -127, 127).astype(np.int8)
    return q, scale


def quantize_columns(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    q, scale = quantize_rows(np.ascontiguousarray(w.T))
    return np.ascontiguousarray(q.T), scale


def quantization_error(model, check: np.ndarray, run_c, n: int = 100, seed: int = 0) -> dict:
    """What int8 weights cost against the user's float32 module, measured (not bounded) with the
    int8 C itself (run_c: x -> logits) on the check input and n random inputs drawn like the
    sample: the largest logit change seen and how often the argmax stays the same."""
    from .check_inputs import inputs_like

    x = np.concatenate([check, inputs_like(model.sample_input, n, check.shape[1], model.n_features, seed)])
    fp32 = model.reference(x)
    int8 = np.stack([run_c(xi[None]) for xi in x])
    same = fp32.argmax(1) == int8.argmax(1)
    drawn = "drawn like sample_input" if model.sample_input is not None else "N(0, 1)"
    return {"int8_max_logit_change": float(np.abs(fp32 - int8).max()),
            "int8_argmax_agreement": float(same.mean()),
            "int8_argmax_same_on_check_input": bool(same[0]),
            "int8_inputs_checked": int(len(x)),
            "int8_inputs": f"the check input and {n} random inputs {drawn} (seed {seed}), through the int8 C"}
