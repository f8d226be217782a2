"""The float64 reference itself (tests/reference_f64.py) and the test models it checks with:
the reference agrees with the published logits and with the independent PyTorch mamba_simple,
its forms agree with each other, its int8 scheme is the documented one, and every random
model is sensitive to every part of the block (so a kernel that breaks one cannot pass)."""
import numpy as np
import pytest
import torch

from tests import reference_f64 as ref
from tests.conftest import DATA, FIXTURES, PUBLISHED_F64, RANDOM_MODELS, inputs_like, make_random_model, \
    random_model_sample, reference_params

SENSITIVITY = 1e-2  # each ablation must move the logits by this x their scale


@pytest.mark.published_logits
@pytest.mark.parametrize("name", sorted(PUBLISHED_F64))
def test_reference_reproduces_published_logits(name):
    params, extras = ref.load_npz(DATA / f"mambalite_{name}.npz")
    for form in (ref.sequence_logits, ref.stream_logits):
        logits = form(params, extras["sample_input"])[0]
        assert np.max(np.abs(logits - PUBLISHED_F64[name])) <= 5e-6  # the published rounding
    if "mambalite_c_logits" in extras:  # MambaLite-Micro's float32 C engine, 6 decimals
        assert np.max(np.abs(logits - extras["mambalite_c_logits"])) <= 1.3e-5


@pytest.mark.parametrize("name", list(RANDOM_MODELS))
def test_reference_equals_independent_mamba_simple(name):
    """Two independent float64 implementations (numpy here, nn.Module + Conv1d there) and the
    two forms of the numpy one agree to rounding."""
    model, params = make_random_model(name).double(), reference_params(name)
    xs = np.concatenate([random_model_sample(name), inputs_like(random_model_sample(name), 3, seed=2)])
    with torch.no_grad():
        want = model(torch.as_tensor(xs, dtype=torch.float64)).numpy()
    scale = np.abs(want).max()
    np.testing.assert_allclose(ref.sequence_logits(params, xs), want, rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(ref.stream_logits(params, xs), want, rtol=0, atol=1e-12 * scale)


def test_stream_reference_is_a_recurrence():
    """Stepping frame by frame gives, after every frame, the whole-sequence logits of the prefix."""
    params = reference_params("odd_dims")
    x = inputs_like(random_model_sample("odd_dims"), 1, seed=4, length=12)
    st = ref.StreamState(params, 1)
    for t in range(x.shape[1]):
        ref.stream_step(params, st, x[:, t])
        np.testing.assert_allclose(ref.stream_finish(params, st), ref.sequence_logits(params, x[:, :t + 1]),
                                   rtol=0, atol=1e-12)


def test_softplus_threshold_is_torchs():
    x = np.array([-30.0, -1.0, 0.0, 19.9, 20.0, 20.1, 100.0, 1000.0])
    np.testing.assert_allclose(ref.softplus(x), torch.nn.functional.softplus(torch.as_tensor(x)).numpy(),
                               rtol=1e-15, atol=0)
    assert np.all(np.isfinite(ref.softplus(x)))


def test_int8_scheme_as_documented():
    """Symmetric, scale = amax / 127 per row (float32), round half to even, clip +-127."""
    w = np.array([[127.0, 0.5, 1.5, -2.5, -127.0],   # scale 1: ties go to even
                  [0.0, 0.0, 0.0, 0.0, 0.0],          # all-zero row stays zero
                  [1.0, 0.004, -0.5, 0.25, 0.0]])     # scale 1/127
    deq = ref.dequantize_rows(w)
    np.testing.assert_array_equal(deq[0], [127.0, 0.0, 2.0, -2.0, -127.0])
    np.testing.assert_array_equal(deq[1], 0.0)
    scale = np.float64(np.float32(1.0 / 127))
    np.testing.assert_array_equal(deq[2] / scale, np.rint(w[2] / scale))
    rng = np.random.default_rng(0)
    m = rng.standard_normal((9, 13)) * rng.uniform(0.01, 10, (9, 1))
    q = ref.dequantize_rows(m) / np.float32(np.abs(m).max(1) / 127)[:, None]
    assert np.allclose(q, np.rint(q), atol=1e-9) and np.abs(np.rint(q)).max() == 127
    assert np.all(np.abs(ref.dequantize_rows(m) - m) <= np.abs(m).max(1, keepdims=True) / 254 * (1 + 1e-6))


def test_int8_params_fold_then_quantize():
    """The folded model first (exact: equal to the float model up to float32 storage), then
    weight matrices per output row, A per state column; the classifier (after the pooling),
    conv, dt_proj, D and biases float."""
    params = reference_params("kws10")
    folded = ref.fold_linear_layers(params)
    assert folded.W_lin is None and folded.blocks[0].W_out is None and folded.blocks[0].b_in is not None
    xs = np.random.default_rng(0).standard_normal((2, 30, params.W_lin.shape[1])) * 10
    base = ref.sequence_logits(params, xs)
    assert np.max(np.abs(ref.sequence_logits(folded, xs) - base)) <= 1e-5 * np.abs(base).max()
    q = ref.int8_params(params)
    b, qb = folded.blocks[0], q.blocks[0]
    for orig, deq, axis in ((b.W_in, qb.W_in, 1), (b.W_x, qb.W_x, 1), (b.A, qb.A, 0)):
        assert not np.array_equal(orig, deq)
        scale = np.abs(orig).max(axis=axis, keepdims=True) / 127
        assert np.all(np.abs(deq - orig) <= scale / 2 * (1 + 1e-6))
    for name in ("conv_w", "conv_b", "W_dt", "b_dt", "D", "b_in"):
        assert np.array_equal(getattr(b, name), getattr(qb, name))
    assert np.array_equal(params.b_cls, q.b_cls) and np.array_equal(folded.W_cls, q.W_cls)
    two = ref.int8_params(reference_params("two_blocks"))  # out_proj -> in_proj between blocks costs more folded
    assert two.blocks[0].W_out is not None and two.blocks[1].W_out is None


def _sensitivity(params, xs):
    base = ref.sequence_logits(params, xs)
    scale = float(np.abs(base).max())
    moves = {k: float(np.abs(ref.sequence_logits(ablate(params), xs) - base).max()) / scale
             for k, ablate in ref.ABLATIONS.items()}
    return base, scale, moves


@pytest.mark.parametrize("name", list(RANDOM_MODELS))
def test_random_models_are_sensitive(name):
    """Removing the scan, swapping B and C, reversing A's state order, dropping D or the dt
    bias, reversing the conv taps: each moves the float64 logits by >= 1e-2 x their scale on
    the inputs the parity tests use, and the logits depend on the input (not pinned to
    classifier.bias)."""
    params = reference_params(name)
    sample = random_model_sample(name)
    xs = np.concatenate([sample, inputs_like(sample, 8, seed=7)])
    base, scale, moves = _sensitivity(params, xs)
    print(name, f"logit scale {scale:.3g}", {k: round(v, 3) for k, v in moves.items()})
    weak = {k: v for k, v in moves.items() if v < SENSITIVITY}
    assert not weak, f"{name}: these parts of the block barely move the logits: {weak}"
    assert scale >= 0.5, "logits too small to tell a model from its bias"
    spread = float((base - base.mean(axis=0)).std(axis=0).max())
    assert spread >= 0.1 * scale, f"logits vary by {spread:.3g} across inputs, scale {scale:.3g}"
    assert np.abs(base - params.b_cls).max() >= 0.5 * scale
    # odd_dims exercises softplus's linear branch: a pre-activation beyond float32 exp's range
    if name == "odd_dims":
        blk = params.blocks[0]
        assert np.max(blk.b_dt) > 88.8


@pytest.mark.parametrize("name", FIXTURES)
def test_fixture_sensitivity_report(name):
    """Not asserted per part (trained HAR-6 hardly uses its state order): printed for
    docs/testing.md; the scan as a whole must matter."""
    params, extras = ref.load_npz(DATA / f"mambalite_{name}.npz")
    xs = np.concatenate([extras["sample_input"], inputs_like(extras["sample_input"], 8, seed=7)])
    _, scale, moves = _sensitivity(params, xs)
    print(name, f"logit scale {scale:.3g}", {k: round(v, 3) for k, v in moves.items()})
    assert moves["no scan"] >= SENSITIVITY and moves["B and C swapped"] >= SENSITIVITY
