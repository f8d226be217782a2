"""int8 weights: a third of the flash, the C exact to the int8 model, and the cost in
accuracy against the float32 model measured, not assumed."""
import numpy as np
import pytest
import torch

from mamba_tvm.device.host import run_host
from mamba_tvm.frontend import reference_logits
from mamba_tvm.frontend.check_inputs import inputs_like
from mamba_tvm.frontend.quantize import quantization_error, quantize_columns, quantize_rows
from tests.conftest import torch_logits


def test_symmetric_per_channel_quantization_round_trips():
    w = np.random.default_rng(0).standard_normal((6, 9)).astype(np.float32)
    w[2] = 0.0
    q, scale = quantize_rows(w)
    assert q.dtype == np.int8 and scale.shape == (6,) and np.abs(q).max() <= 127
    assert np.all(np.abs(q * scale[:, None] - w) <= scale[:, None] / 2 + 1e-7)
    qc, sc = quantize_columns(w)
    assert sc.shape == (9,) and np.all(np.abs(qc * sc[None, :] - w) <= sc[None, :] / 2 + 1e-7)


@pytest.mark.parametrize("fusion", ["timestep", "layer"])
def test_kws10_int8_c_matches_int8_model_and_is_30_percent(built, fusion):
    b = built("kws10", fusion=fusion, weights="int8")
    fp32_bytes = b.spec.weight_bytes
    assert b.compiled.weights_bytes <= 0.30 * fp32_bytes, (b.compiled.weights_bytes, fp32_bytes)
    assert "int8_t" in b.compiled.sources["model.c"]
    xs = np.concatenate([b.spec.sample_input, inputs_like(b.spec.sample_input, 3, 100, b.spec.n_features, seed=4)])
    for x in xs:
        got = run_host(b.exe, x[None])
        want = reference_logits(b.spec, x[None], int8=True)[0]
        assert np.argmax(got) == np.argmax(want) and np.max(np.abs(got - want)) <= 1e-4


def test_kws10_int8_argmax_agreement_over_1000_inputs(built):
    spec = built("kws10", weights="int8").spec
    report = quantization_error(spec, spec.sample_input, n=1000, seed=1)
    print(f"int8 vs fp32 on {report['int8_inputs_checked']} inputs: argmax agreement "
          f"{report['int8_argmax_agreement']:.4f}, max |logit change| {report['int8_max_logit_change']:.3f}")
    assert report["int8_argmax_same_on_check_input"]
    assert report["int8_argmax_agreement"] >= 0.99


def test_int8_two_stacked_blocks_streaming(built):
    b = built("two_blocks", mode="stream", weights="int8")
    x = np.random.default_rng(2).standard_normal((1, 23, b.spec.n_features)).astype(np.float32)
    got = run_host(b.exe, x)
    assert np.max(np.abs(got - reference_logits(b.spec, x, int8=True)[0])) <= 1e-4
    # and the quantized model is still close to the independent float64 PyTorch model
    assert np.max(np.abs(got - torch_logits(b.torch_model, x, torch.float64))) <= 0.1
