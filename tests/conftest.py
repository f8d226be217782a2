"""Shared fixtures: each model is compiled once per test session (TVM builds are slow)."""
from pathlib import Path

import numpy as np
import pytest
import torch

from mamba_tvm.compiler import compile_model
from mamba_tvm.device.host import build_host_runner
from mamba_tvm.frontend import load_checkpoint, spec_from_state_dict
from tests.mamba_simple_torch import random_model

DATA = Path(__file__).resolve().parents[1] / "mamba_tvm" / "data"
FIXTURES = ["kws10", "kws3", "har6"]

#: random models of other shapes: (name, constructor kwargs, sequence length)
RANDOM_MODELS = {
    "dstate8_expand1": (dict(n_features=12, d_model=24, n_classes=5, d_state=8, expand=1, d_conv=3), 17),
    "two_blocks": (dict(n_features=16, d_model=32, n_classes=4, n_blocks=2, d_state=8, dt_rank=3), 23),
}


class Built:
    """A compiled model on disk with its host runner."""

    def __init__(self, spec, compiled, model_dir, exe, torch_model=None):  # noqa: D107
        self.spec, self.compiled, self.model_dir, self.exe, self.torch_model = spec, compiled, model_dir, exe, torch_model


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
                kw, seq_len = RANDOM_MODELS[name]
                torch_model = random_model(seed=len(name), **kw)
                spec = spec_from_state_dict(torch_model.state_dict(), name=name)
            compiled = compile_model(spec, seq_len, mode=mode, fusion=fusion, weights=weights)
            model_dir = tmp_path_factory.mktemp(f"{name}_{mode}_{fusion}_{weights}") / "model"
            compiled.write(model_dir)
            exe = build_host_runner(model_dir, compiled.c_files)
            cache[key] = Built(spec, compiled, model_dir, exe, torch_model)
        return cache[key]

    return get


def torch_logits(model, x, dtype=torch.float32) -> np.ndarray:
    with torch.no_grad():
        return model.to(dtype)(torch.as_tensor(x, dtype=dtype)).numpy().reshape(-1)
