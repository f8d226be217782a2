"""The generated C, built for the host with gcc, against PyTorch fp32 and the float64 reference."""
import numpy as np
import pytest
import torch

from mamba_tvm.compiler import compile_model
from mamba_tvm.device.host import build_host_runner, run_host
from mamba_tvm.frontend import reference_logits
from tests.conftest import FIXTURES, RANDOM_MODELS, torch_logits


def _check(got, want, max_tol=1e-4, mean_tol=2e-5):
    err = np.abs(got - want)
    assert np.argmax(got) == np.argmax(want)
    assert err.max() <= max_tol, err.max()
    assert err.mean() <= mean_tol, err.mean()


@pytest.mark.parametrize("fusion", ["timestep", "layer"])
@pytest.mark.parametrize("name", FIXTURES)
def test_fixture_sample_input(built, name, fusion):
    b = built(name, fusion=fusion)
    x = b.spec.sample_input
    got = run_host(b.exe, x)
    _check(got, reference_logits(b.spec, x)[0])
    _check(got, reference_logits(b.spec, x, torch.float64)[0])
    if "mambalite_c_logits" in b.spec.extras:
        assert np.max(np.abs(got - b.spec.extras["mambalite_c_logits"])) <= 1e-4


@pytest.mark.parametrize("name", FIXTURES)
def test_fixture_random_inputs(built, name):
    b = built(name)
    rng = np.random.default_rng(7)
    shape = b.spec.sample_input.shape
    scale = float(np.std(b.spec.sample_input))
    for _ in range(3):
        x = (rng.standard_normal(shape) * scale).astype(np.float32)
        _check(run_host(b.exe, x), reference_logits(b.spec, x)[0])


@pytest.mark.parametrize("fusion", ["timestep", "layer"])
@pytest.mark.parametrize("name", sorted(RANDOM_MODELS))
def test_other_dimensions_against_independent_torch(built, name, fusion):
    """Randomly initialised mamba_simple models of other shapes (d_state 8, expand 1,
    d_conv 3, dt_rank 3, two stacked blocks), checked against an independent implementation."""
    b = built(name, fusion=fusion)
    seq_len = RANDOM_MODELS[name][1]
    rng = np.random.default_rng(1)
    for _ in range(3):
        x = rng.standard_normal((1, seq_len, b.spec.n_features)).astype(np.float32)
        got = run_host(b.exe, x)
        _check(got, torch_logits(b.torch_model, x))
        _check(got, torch_logits(b.torch_model, x, torch.float64))


@pytest.mark.parametrize("name", ["kws10", "two_blocks"])
def test_streaming_equals_whole_sequence_for_any_length(built, name, tmp_path):
    """init/step/finish over T frames equals a whole-sequence build compiled for that T, on
    random inputs of several lengths, and PyTorch at every length."""
    stream = built(name, mode="stream")
    spec = stream.spec
    rng = np.random.default_rng(11)
    whole_lengths = {built(name).compiled.seq_len: built(name).exe}
    for t in (1, 7):  # whole-sequence builds for other lengths
        compiled = compile_model(spec, t)
        compiled.write(tmp_path / f"t{t}")
        whole_lengths[t] = build_host_runner(tmp_path / f"t{t}", compiled.c_files)
    for t in sorted(whole_lengths) + [2 * max(whole_lengths) + 3]:
        x = rng.standard_normal((1, t, spec.n_features)).astype(np.float32)
        got = run_host(stream.exe, x)
        assert np.max(np.abs(got - reference_logits(spec, x)[0])) <= 1e-4
        if t in whole_lengths:
            assert np.max(np.abs(got - run_host(whole_lengths[t], x))) <= 1e-5
