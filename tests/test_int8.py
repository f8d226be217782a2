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


def test_int8_layer_takes_its_bias_in_the_same_kernel(built):
    """in_proj's bias (from folding linear_in into it) is added by the int8 kernel that computes
    the product, not by a kernel of its own making another pass over the output per frame."""
    import re

    src = built("kws10", weights="int8").compiled.sources["model_kernels.c"]
    kernels = re.findall(r"^void tvmgen_default_(\w+)\(([^)]*)\)", src, flags=re.M)
    in_proj = {name: params for name, params in kernels if "in_proj" in name}
    assert set(in_proj) == {"mamba_in_proj_0_int8", "mamba_in_proj_1_int8"}, sorted(in_proj)
    assert all("bias" in params for params in in_proj.values()), in_proj


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


# ---- the dual 16-bit (SMLAD) linear kernel ---------------------------------------------------

def _host_kernels(tmp_path, funcs: dict):
    """The kernels' C (emit_kernels_c), built with the host gcc under the strict flags and
    loaded: the portable branch of the SMLAD helpers, whose integers the DSP instructions equal."""
    import tvm

    from mamba_tvm.codegen.plain_c import emit_kernels_c
    from tests.conftest import host_library

    src, _ = emit_kernels_c(tvm.IRModule({name: f.with_attr("global_symbol", name) for name, f in funcs.items()}))
    return src, host_library(tmp_path, src)


def _rows_like(rng, rows: int, k: int, w0: np.ndarray) -> np.ndarray:
    """Rows of x that stress the block floating point: a Gaussian row, one with zeros and a
    power-of-two maximum (the exponent's edge), one whose signs follow the weight row w0 at full
    magnitude (the largest sums the int32 halves can reach), a tiny one."""
    kinds = [rng.standard_normal(k) * 30,
             np.where(rng.random(k) < 0.3, 0.0, rng.standard_normal(k)) * (np.arange(k) != 0) + 8.0 * (np.arange(k) == 0),
             np.sign(w0) * 3.75 + (w0 == 0),
             rng.standard_normal(k) * 1e-30]
    return np.stack([kinds[i % len(kinds)] for i in range(rows)]).astype(np.float32)


@pytest.mark.parametrize("rows,k,n,bias,block,unroll", [(1, 40, 8, True, 2, 5), (3, 7, 5, False, 4, 1),
                                                        (4, 130, 6, True, 3, 2), (2, 512, 4, False, 4, 2)])
def test_smlad_kernel_gives_the_int64_kernels_bits(tmp_path, rows, k, n, bias, block, unroll):
    """The SMLAD kernel (x split into 16-bit halves, weights packed for SXTB16) computes the
    int64 kernel's exact sum, so every output has the same bits: inputs not a multiple of 4
    (zero padding), an output count without the asked block (a smaller divisor), rows of a
    layer-by-layer program, the largest input count (512: sums at the int32 limit)."""
    import ctypes

    from relay_ops.linear_int8 import make_integer_primfunc, make_smlad_primfunc, pack_smlad_weights, smlad_block

    rng = np.random.default_rng(k)
    w_q = rng.integers(-127, 128, (n, k)).astype(np.int8)
    w_q[0] = np.where(np.arange(k) % 3 == 0, -127, 127)
    scale = rng.uniform(1e-3, 1e-1, n).astype(np.float32)
    bias_v = rng.standard_normal(n).astype(np.float32)
    b = smlad_block(n, block)
    src, lib = _host_kernels(tmp_path, {"exact": make_integer_primfunc(rows, k, n, bias),
                                        "smlad": make_smlad_primfunc(rows, k, n, bias, b, unroll)})
    assert "mamba_smlad(" in src and "mamba_sxtb16_ror8(" in src
    x = _rows_like(rng, rows, k, w_q[0].astype(np.float32))
    packed = pack_smlad_weights(w_q, b)
    assert packed.dtype == np.uint32 and packed.shape == (n // b, -(-k // 4), b)
    outs = {}
    for name, w in (("exact", w_q), ("smlad", packed)):
        y = np.zeros((rows, n), np.float32)
        args = [x, np.ascontiguousarray(w), scale] + ([bias_v] if bias else []) + [y]
        getattr(lib, name)(*(a.ctypes.data_as(ctypes.c_void_p) for a in args))
        outs[name] = y
    assert np.array_equal(outs["smlad"].view(np.uint32), outs["exact"].view(np.uint32)), \
        np.abs(outs["smlad"] - outs["exact"]).max()
    want = x.astype(np.float64) @ w_q.T.astype(np.float64) * scale + (bias_v if bias else 0.0)
    size = np.abs(x.astype(np.float64)) @ np.abs(w_q.T.astype(np.float64)) * scale + 1e-37
    assert (np.abs(outs["smlad"] - want) <= 1e-6 * size + 1e-6 * np.abs(bias_v if bias else 0.0)).all()


def test_smlad_helpers_are_dsp_instructions_on_the_m7(tmp_path):
    """On a core with the DSP extension the helpers are one SMLAD / SXTB16 each (the rotation
    folded into the second SXTB16), not the plain-C fallback."""
    import subprocess

    from mamba_tvm.codegen import STRICT_C99
    from mamba_tvm.codegen.plain_c import SMLAD_HELPERS

    c = tmp_path / "h.c"
    c.write_text("#include <stdint.h>\n" + SMLAD_HELPERS +
                 "int32_t dot4(uint32_t x01, uint32_t x23, uint32_t w, int32_t s) {\n"
                 "  return mamba_smlad(x23, mamba_sxtb16_ror8(w), mamba_smlad(x01, mamba_sxtb16(w), s));\n}\n")
    obj = tmp_path / "h.o"
    subprocess.run(["arm-none-eabi-gcc", "-mcpu=cortex-m7", "-mthumb", "-mfpu=fpv5-d16", "-mfloat-abi=hard", "-O2",
                    *STRICT_C99, "-c", str(c), "-o", str(obj)], check=True)
    asm = subprocess.run(["arm-none-eabi-objdump", "-d", str(obj)], capture_output=True, text=True, check=True).stdout
    body = asm[asm.index("<dot4>:"):]
    assert body.count("smlad") == 2 and body.count("sxtb16") == 2 and "ror #8" in body, body
    assert "mul" not in body.replace("smlad", ""), body
