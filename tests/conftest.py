"""Shared fixtures: each model is compiled once per test session (TVM builds are slow)."""
from pathlib import Path

import numpy as np
import pytest

from mamba_tvm.compiler import compile_model
from mamba_tvm.device.host import build_host_runner
from mamba_tvm.frontend import load_checkpoint, spec_from_state_dict
from tests import reference_f64
from tests.mamba_simple_torch import random_model

DATA = Path(__file__).resolve().parents[1] / "mamba_tvm" / "data"
FIXTURES = ["kws10", "kws3", "har6"]
#: float64 logits of the fixtures' sample inputs, published with them to 5 decimals
#: (mamba_tvm/data/README.md); tests that use them are marked `published_logits`
PUBLISHED_F64 = {
    "kws10": [2.78514, 5.15877, -1.27615, 8.5065, -17.42951, -6.06729, -8.79042, -15.06496, -14.50272, 25.27293],
    "kws3": [-1.81161, -5.89643, 6.09061],
}

#: random models of other shapes: name -> (constructor kwargs, sequence length). Calibrated
#: (tests/mamba_simple_torch.py: trained_like) and fed inputs of scale RANDOM_INPUT_SCALE so
#: that every part of the block moves the logits (tests/test_reference.py asserts it).
#: odd_dims: d_conv 2, d_state 5, dt_rank 1, d_model 9, d_inner 18, 7 features (no reduction a
#: multiple of 4, so no unrolled loop covers it whole) and a channel whose dt is beyond
#: softplus's threshold.
RANDOM_MODELS = {
    "dstate8_expand1": (dict(seed=7, n_features=12, d_model=24, n_classes=5, d_state=8, expand=1, d_conv=3), 17),
    "two_blocks": (dict(seed=5, n_features=16, d_model=32, n_classes=4, n_blocks=2, d_state=8, dt_rank=3), 23),
    "odd_dims": (dict(seed=10, n_features=7, d_model=9, n_classes=3, d_state=5, d_conv=2, dt_rank=1,
                      saturated_dt=(3,)), 9),
}
RANDOM_INPUT_SCALE = 10.0


def host_library(tmp_path: Path, c_source: str, name: str = "k"):
    """`c_source` (after <stdint.h>) built with the host gcc under the strict flags as a shared
    library and loaded: kernels and helpers called directly from a test."""
    import ctypes
    import subprocess

    from mamba_tvm.codegen import STRICT_C99

    c, lib = tmp_path / f"{name}.c", tmp_path / f"{name}.so"
    c.write_text("#include <stdint.h>\n" + c_source)
    subprocess.run(["gcc", "-O2", *STRICT_C99, "-fPIC", "-shared", str(c), "-o", str(lib)], check=True)
    return ctypes.CDLL(str(lib))


def make_random_model(name: str):
    return random_model(**RANDOM_MODELS[name][0])


def random_model_sample(name: str) -> np.ndarray:
    """A random model's sample input (1, T, F): Gaussian with a per-feature mean and std of
    scale RANDOM_INPUT_SCALE (like the fixtures' samples: log-mel features have std ~20)."""
    kw, seq_len = RANDOM_MODELS[name]
    rng = np.random.default_rng(len(name))
    n = kw["n_features"]
    mean = rng.normal(0.0, 1.0, n) * RANDOM_INPUT_SCALE
    std = rng.uniform(0.5, 1.5, n) * RANDOM_INPUT_SCALE
    return (mean + std * rng.standard_normal((1, seq_len, n))).astype(np.float32)


def inputs_like(sample: np.ndarray, n: int, seed: int, length: int | None = None) -> np.ndarray:
    """n inputs (n, T, F) drawn like the sample: Gaussian with its per-feature mean and std."""
    rng = np.random.default_rng(seed)
    mean, std = sample.mean(axis=(0, 1)), sample.std(axis=(0, 1))
    length = sample.shape[1] if length is None else length
    return (mean + std * rng.standard_normal((n, length, sample.shape[2]))).astype(np.float32)


def reference_params(name: str) -> reference_f64.Params:
    """The float64 reference's parameters, read without mamba_tvm (the .npz or the torch model)."""
    if name in FIXTURES:
        return reference_f64.load_npz(DATA / f"mambalite_{name}.npz")[0]
    return reference_f64.params_from_state(make_random_model(name).state_dict())


class Built:
    """A compiled model on disk with its host runner, and the float64 reference of what it
    implements (`params`: int8-dequantized for an int8 build)."""

    def __init__(self, name, spec, compiled, model_dir, exe, torch_model=None):  # noqa: D107
        self.name, self.spec, self.compiled, self.model_dir, self.exe = name, spec, compiled, model_dir, exe
        self.torch_model = torch_model
        params = reference_params(name)
        self.params = reference_f64.int8_params(params) if compiled.weights == "int8" else params

    def reference(self, x) -> np.ndarray:
        """Float64 reference logits (B, classes) for this build's form."""
        form = reference_f64.stream_logits if self.compiled.mode == "stream" else reference_f64.sequence_logits
        return form(self.params, x)


@pytest.fixture(scope="session")
def built(tmp_path_factory):
    cache = {}

    def get(name: str, mode: str = "sequence", fusion: str = "timestep", weights: str = "fp32") -> Built:
        key = (name, mode, fusion, weights)
        if key not in cache:
            torch_model = None
            if name in FIXTURES:
                spec = load_checkpoint(DATA / f"mambalite_{name}.npz")
                seq_len = spec.sample_input.shape[1]
            else:
                seq_len = RANDOM_MODELS[name][1]
                torch_model = make_random_model(name)
                spec = spec_from_state_dict(torch_model.state_dict(), name=name)
                spec.sample_input = random_model_sample(name)
            compiled = compile_model(spec, seq_len, mode=mode, fusion=fusion, weights=weights)
            model_dir = tmp_path_factory.mktemp(f"{name}_{mode}_{fusion}_{weights}") / "model"
            compiled.write(model_dir)
            exe = build_host_runner(model_dir, compiled.c_files)
            cache[key] = Built(name, spec, compiled, model_dir, exe, torch_model)
        return cache[key]

    return get

