"""int8 weights: a third of the flash, the C exact to the int8 model, and the cost in
accuracy against the float32 model measured, not assumed."""
import numpy as np
import pytest

from mamba_tvm.device.host import run_host
from mamba_tvm.frontend.quantize import quantization_error, quantize_columns, quantize_rows
from tests import reference_f64
from tests.conftest import inputs_like
from tests.reference_f64 import parity_errors, parity_tolerance


def test_symmetric_per_channel_quantization_round_trips():
    w = np.random.default_rng(0).standard_normal((6, 9)).astype(np.float32)
    w[2] = 0.0
    q, scale = quantize_rows(w)
    assert q.dtype == np.int8 and scale.shape == (6,) and np.abs(q).max() <= 127
    assert np.all(np.abs(q * scale[:, None] - w) <= scale[:, None] / 2 + 1e-7)
    qc, sc = quantize_columns(w)
    assert sc.shape == (9,) and np.all(np.abs(qc * sc[None, :] - w) <= sc[None, :] / 2 + 1e-7)


@pytest.mark.parametrize("fusion", ["timestep", "layer"])
def test_kws10_int8_c_matches_int8_model_and_is_small(built, fusion):
    """The int8 C against the independent reference (fold, then quantize, per the docs) and
    against the product's own check (the quantized graph on TVM's VM); weights under 25% of fp32."""
    from mamba_tvm.driver import int8_graph_logits
    from mamba_tvm.frontend.model import model_from_spec

    b = built("kws10", fusion=fusion, weights="int8")
    fp32_bytes = b.spec.weight_bytes
    assert b.compiled.weights_bytes <= 0.25 * fp32_bytes, (b.compiled.weights_bytes, fp32_bytes)
    assert "int8_t" in b.compiled.sources["model.c"]
    xs = np.concatenate([b.spec.sample_input, inputs_like(b.spec.sample_input, 3, seed=4)])
    for x in xs:
        got = run_host(b.exe, x[None])
        want = b.reference(x[None])[0]
        assert not parity_errors(got, want), parity_errors(got, want)
    graph = int8_graph_logits(model_from_spec(b.spec), xs[:1])
    assert not parity_errors(run_host(b.exe, xs[:1]), graph)


def test_kws10_int8_argmax_agreement_over_1000_inputs(built):
    """What int8 costs against the float model, measured with the int8 C (as the build does)."""
    from mamba_tvm.frontend.model import model_from_spec

    b = built("kws10", weights="int8")
    report = quantization_error(model_from_spec(b.spec), b.spec.sample_input, lambda x: run_host(b.exe, x),
                                n=1000, seed=1)
    print(f"int8 vs fp32 on {report['int8_inputs_checked']} inputs: argmax agreement "
          f"{report['int8_argmax_agreement']:.4f}, max |logit change| {report['int8_max_logit_change']:.3f}")
    assert report["int8_argmax_same_on_check_input"]
    assert report["int8_argmax_agreement"] >= 0.99


def test_int8_two_stacked_blocks_streaming(built):
    """Against the independent int8 reference (its own quantize -> dequantize, stepped frame by
    frame); and really quantized: the float32 model's logits are far outside the bound."""
    b = built("two_blocks", mode="stream", weights="int8")
    x = b.spec.sample_input
    got = run_host(b.exe, x)
    want = b.reference(x)[0]
    assert not parity_errors(got, want), parity_errors(got, want)
    fp32 = reference_f64.stream_logits(reference_f64.params_from_state(b.torch_model.state_dict()), x)[0]
    assert np.max(np.abs(got - fp32)) > 10 * parity_tolerance(want)
