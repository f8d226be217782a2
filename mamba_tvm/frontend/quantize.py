"""int8 weights: symmetric quantization, one scale per output channel.

Linear weight matrices get a scale per output row; A (= -exp(A_log), (d_inner, d_state))
gets one per state column n, because its columns, not its rows, share a magnitude
(column n decays at about -(n+1) in every channel). Activations stay float32; the kernels
widen the int8 weights inside their loops.
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


def inputs_like(sample: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """n random inputs drawn like the sample: Gaussian with its per-feature mean and std."""
    rng = np.random.default_rng(seed)
    mean = sample.mean(axis=(0, 1))
    std = sample.std(axis=(0, 1))
    return (mean + std * rng.standard_normal((n,) + sample.shape[1:])).astype(np.float32)


def quantization_error(spec, sample: np.ndarray, n: int = 100, seed: int = 0) -> dict:
    """What int8 weights cost, measured against the float32 model on the sample and n random
    inputs drawn like it: the largest logit change (the build's error bound) and how often
    the argmax stays the same."""
    import torch

    from .reference import reference_logits

    x = np.concatenate([sample, inputs_like(sample, n, seed)])
    fp32 = reference_logits(spec, x, torch.float32)
    int8 = reference_logits(spec, x, torch.float32, int8=True)
    same = fp32.argmax(1) == int8.argmax(1)
    return {"int8_error_bound": float(np.abs(fp32 - int8).max()),
            "int8_argmax_agreement": float(same.mean()),
            "int8_argmax_same_on_sample": bool(same[0]),
            "int8_inputs_checked": int(len(x))}
