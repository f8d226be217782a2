"""Checkpoint loading: dimensions come from the weights; bad checkpoints get named errors."""
import numpy as np
import pytest
import torch

from mamba_tvm.errors import CheckpointError
from mamba_tvm.frontend import load_checkpoint, reference_logits, spec_from_state_dict
from tests.conftest import DATA, PUBLISHED_F64
from tests.mamba_simple_torch import random_model

KWS10 = DATA / "mambalite_kws10.npz"


def test_dims_read_from_weights():
    spec = load_checkpoint(KWS10)
    assert spec.dims() == dict(n_features=40, d_model=64, d_inner=128, d_state=16, d_conv=4, dt_rank=4,
                               n_classes=10, n_blocks=1)
    assert spec.sample_input.shape == (1, 100, 40)


@pytest.mark.published_logits
def test_reference_matches_published_float64_logits():
    spec = load_checkpoint(KWS10)
    ref = reference_logits(spec, spec.sample_input, torch.float64)[0]
    np.testing.assert_allclose(ref, PUBLISHED_F64["kws10"], rtol=0, atol=5e-6)  # published to 5 decimals
    assert np.max(np.abs(ref - spec.extras["mambalite_c_logits"])) < 2e-5


def test_reference_matches_independent_mamba_simple():
    model = random_model(seed=3, n_features=7, d_model=20, n_classes=3, n_blocks=2, d_state=4, d_conv=2, expand=1)
    spec = spec_from_state_dict(model.state_dict())
    assert spec.dims() == dict(n_features=7, d_model=20, d_inner=20, d_state=4, d_conv=2, dt_rank=2,
                               n_classes=3, n_blocks=2)
    x = np.random.default_rng(0).standard_normal((1, 9, 7)).astype(np.float32)
    with torch.no_grad():
        want = model.double()(torch.as_tensor(x, dtype=torch.float64)).numpy()
    np.testing.assert_allclose(reference_logits(spec, x, torch.float64), want, rtol=0, atol=1e-12)


def test_pt_state_dict_file(tmp_path):
    model = random_model(seed=1, n_features=5, d_model=16, n_classes=2)
    path = tmp_path / "m.pt"
    torch.save({"state_dict": model.state_dict()}, path)
    assert load_checkpoint(path).d_model == 16


def _state():
    with np.load(KWS10) as f:
        return {k: f[k] for k in f.files if k not in ("sample_input", "mambalite_c_logits")}


@pytest.mark.parametrize("mutate, message", [
    (lambda s: s.pop("mamba.dt_proj.bias"), "missing tensor 'mamba.dt_proj.bias'"),
    (lambda s: s.update({"mamba.x_proj.weight": np.zeros((35, 128), np.float32)}),
     "tensor 'mamba.x_proj.weight' has shape (35, 128), expected (36, 128)"),
    (lambda s: s["mamba.A_log"].__setitem__((3, 2), np.nan), "tensor 'mamba.A_log' has 1 non-finite value"),
    (lambda s: s.update({"mamba.norm.weight": np.ones(64, np.float32)}), "unexpected tensor 'mamba.norm.weight'"),
    (lambda s: s.update({"linear_in.weight": np.zeros((64, 40, 1), np.float32)}),
     "tensor 'linear_in.weight' has shape (64, 40, 1), expected 2 dimensions"),
])
def test_bad_checkpoints_are_named(mutate, message):
    state = _state()
    mutate(state)
    with pytest.raises(CheckpointError) as err:
        spec_from_state_dict(state)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_unreadable_and_missing_files(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match="not a readable .npz"):
        load_checkpoint(bad)
    with pytest.raises(CheckpointError, match="unsupported checkpoint type"):
        (tmp_path / "m.onnx").write_bytes(b"")
        load_checkpoint(tmp_path / "m.onnx")
