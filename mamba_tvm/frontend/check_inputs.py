"""The inputs the build's self-checks run on.

Why: a check on an all-zero input exercises almost nothing (the scan state stays near zero),
so every check uses an input like the model's real ones: the checkpoint's sample when its
length is the one compiled, else seeded random frames with the sample's per-feature mean and
standard deviation (or N(0, 1) when there is no sample). The report names which was used.
"""
from __future__ import annotations

import numpy as np

from ..errors import CompileError

SEED = 0


def inputs_like(reference: np.ndarray | None, n: int, seq_len: int, n_features: int, seed: int = SEED) -> np.ndarray:
    """n random (seq_len, n_features) inputs: Gaussian with the reference's per-feature mean
    and std (reference: (1, T, F) or None for N(0, 1))."""
    rng = np.random.default_rng(seed)
    if reference is None:
        mean, std = np.zeros(n_features), np.ones(n_features)
    else:
        mean, std = reference.mean(axis=(0, 1)), reference.std(axis=(0, 1))
    return (mean + std * rng.standard_normal((n, seq_len, n_features))).astype(np.float32)


def check_input(spec, seq_len: int | None = None) -> tuple[np.ndarray, str]:
    """(the (1, T, F) input the build checks and bakes into demo firmware, what it is)."""
    sample = spec.sample_input
    if seq_len is not None and seq_len < 1:
        raise CompileError(f"--seq-len must be a positive number of frames, got {seq_len}")
    if sample is not None and seq_len in (None, sample.shape[1]):
        return sample, "sample_input"
    if seq_len is None:
        raise CompileError("the checkpoint has no sample_input: give the sequence length (--seq-len)")
    if sample is not None:
        return (inputs_like(sample, 1, seq_len, spec.n_features),
                f"random, per-feature mean/std of sample_input (seed {SEED}, T={seq_len})")
    return inputs_like(None, 1, seq_len, spec.n_features), f"random N(0, 1) (seed {SEED}, T={seq_len}; no sample_input)"
