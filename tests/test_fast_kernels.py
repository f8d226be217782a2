"""The fast kernels (issue 12: fast math, FMA, register-blocked matvecs, the scan's schedule):
parity with the float64 reference in every form, helper accuracy, the generated C, and the
accounting of long-latency instructions.

Parity is the project's bar: max |logit error| <= 1e-5 x max(1, max|reference logit|) per
input, and the same argmax wherever the reference's top-two margin exceeds that tolerance.
"""
import re
import shutil
import subprocess

import numpy as np
import pytest
import torch

from mamba_tvm.codegen import STRICT_C99
from mamba_tvm.compiler import compile_model
from mamba_tvm.device.host import build_host_runner, run_host
from mamba_tvm.pipeline import mcu_pipeline
from schedules import load_schedule
from tests import reference_f64
from tests.conftest import FIXTURES, RANDOM_MODELS, host_library, inputs_like, reference_params

N_RANDOM = 200  # inputs drawn like the sample, per fixture (host builds)
M7 = load_schedule("cortex-m7")
LX7 = load_schedule("xtensa-lx7")


def assert_parity(got: np.ndarray, ref: np.ndarray, what: str) -> None:
    got, ref = np.atleast_2d(got), np.atleast_2d(ref)
    tol = 1e-5 * np.maximum(1.0, np.abs(ref).max(axis=1))
    err = np.abs(got - ref).max(axis=1)
    worst = int(np.argmax(err / tol))
    assert (err <= tol).all(), f"{what}: input {worst} error {err[worst]:.3g} > {tol[worst]:.3g}"
    top2 = np.sort(ref, axis=1)[:, -2:]
    decisive = (top2[:, 1] - top2[:, 0]) > tol
    same = got.argmax(axis=1) == ref.argmax(axis=1)
    assert same[decisive].all(), f"{what}: argmax differs on inputs {np.flatnonzero(decisive & ~same)}"


def run_many(exe, xs: np.ndarray) -> np.ndarray:
    return np.stack([run_host(exe, xs[i:i + 1]) for i in range(len(xs))])


@pytest.fixture(scope="session")
def built_m7(tmp_path_factory):
    """Fixtures compiled with the Cortex-M7 schedule record (the shipped M7 kernels)."""
    from mamba_tvm.frontend import load_checkpoint
    from tests.conftest import DATA

    cache = {}

    def get(name: str, weights: str = "fp32", mode: str = "sequence"):
        key = (name, weights, mode)
        if key not in cache:
            spec = load_checkpoint(DATA / f"mambalite_{name}.npz")
            compiled = compile_model(spec, spec.sample_input.shape[1], mode=mode, weights=weights,
                                     pipeline=mcu_pipeline(**M7))
            out = tmp_path_factory.mktemp(f"m7_{name}_{weights}_{mode}") / "model"
            compiled.write(out)
            cache[key] = (spec, compiled, out, build_host_runner(out, compiled.c_files))
        return cache[key]

    return get


def _inputs(spec, n=N_RANDOM, seed=3):
    return np.concatenate([spec.sample_input, inputs_like(spec.sample_input, n, seed)])


def _kernel(src: str, suffix: str) -> str:
    """The body of the one kernel whose name ends with `suffix` (kernels are named after layers)."""
    names = __import__("re").findall(r"void (tvmgen_default_\w*" + suffix + r")\(", src)
    assert len(names) == 1, names
    body = src[src.index(f"void {names[0]}("):]
    return body[:body.index("\n}\n")]


@pytest.mark.parametrize("weights", ["fp32", "int8"])
@pytest.mark.parametrize("name", FIXTURES)
def test_m7_kernels_match_float64_reference(built_m7, name, weights):
    """The sample and 200 inputs drawn like it (their logits reach +-100), fp32 and int8."""
    spec, _, _, exe = built_m7(name, weights)
    xs = _inputs(spec)
    params = reference_params(name)
    ref = reference_f64.sequence_logits(reference_f64.int8_params(params) if weights == "int8" else params, xs)
    assert_parity(run_many(exe, xs), ref, f"{name} {weights}")


@pytest.mark.parametrize("name", FIXTURES)
def test_default_kernels_every_form(built, name):
    """The default pipeline (what tests and cores without a record get), in every form:
    whole sequence, stream, layer by layer, int8; 50 inputs drawn like the sample each."""
    spec = built(name).spec
    xs = _inputs(spec, 50, seed=5)
    for mode, fusion, weights in (("sequence", "timestep", "fp32"), ("stream", "timestep", "fp32"),
                                  ("sequence", "layer", "fp32"), ("sequence", "timestep", "int8")):
        b = built(name, mode, fusion, weights)
        assert_parity(run_many(b.exe, xs), b.reference(xs), f"{name} {mode} {fusion} {weights}")


@pytest.mark.parametrize("name", sorted(RANDOM_MODELS))
def test_random_shapes_with_m7_record(built, name, tmp_path):
    """Other shapes (d_state 8 and 5, expand 1, d_conv 3 and 2, dt_rank 3 and 1, two blocks) with
    the M7 record, against the independent float64 reference."""
    b = built(name)
    seq_len = RANDOM_MODELS[name][1]
    xs = _inputs(b.spec, 20, seed=9)
    ref = b.reference(xs)
    for fusion in ("timestep", "layer"):
        compiled = compile_model(b.spec, seq_len, fusion=fusion, pipeline=mcu_pipeline(**M7))
        compiled.write(tmp_path / fusion)
        assert_parity(run_many(build_host_runner(tmp_path / fusion, compiled.c_files), xs), ref, f"{name} {fusion}")


@pytest.mark.parametrize("exp", ["poly6", "table128", "table1024"])
def test_fast_math_helpers_accuracy(exp):
    """Every 4,099th float32 of each range the model feeds the helpers (the full sweep is
    tools/fast_math_accuracy.py, its figures in docs/fast-math.md): near 1 ulp and unbiased,
    for the degree-6 polynomial, the 128-entry table with its degree-2 polynomial and the
    1024-entry table with its centered linear form (FMA only: kernel_passes refuses it without)."""
    from tools.fast_math_accuracy import measure

    for fma in (True, False) if exp != "table1024" else (True,):
        r = measure(stride=4099, fma=fma, exp=exp)
        if exp == "poly6":
            assert r["fast_exp"]["max_ulp"] <= (1.05 if fma else 1.3), r["fast_exp"]  # full sweep: 1.02 / see docs
            assert r["fast_exp2_in_range"]["max_ulp"] <= (1.25 if fma else 1.6), r["fast_exp2_in_range"]
        elif exp == "table1024":  # linear: the fit's 3.8e-8 plus the table's rounding
            assert r["fast_exp"]["max_ulp"] <= 1.6, r["fast_exp"]
            assert r["fast_exp2_in_range"]["max_ulp"] <= 1.6, r["fast_exp2_in_range"]
        else:  # the table entries are rounded to float32: up to half an ulp more
            assert r["fast_exp"]["max_ulp"] <= 1.25, r["fast_exp"]
            assert r["fast_exp2_in_range"]["max_ulp"] <= 1.35, r["fast_exp2_in_range"]
        assert r["fast_softplus"]["max_rel"] <= 5e-7, r["fast_softplus"]
        assert r["sigmoid"]["max_rel"] <= 3e-7, r["sigmoid"]
        rec = r["fast_reciprocal"]  # three Newton steps from a bit-trick seed
        assert rec["max_ulp"] <= 2.5 and abs(rec["mean_ulp"]) <= 0.1, rec
        for name in ("fast_tanh", "fast_erf"):  # every float32 (odd: the positive half); full sweep <= 7 ulp
            assert r[name]["max_rel"] <= 5e-7 and r[name]["max_ulp"] <= 8, (name, r[name])
        for name in ("fast_exp", "fast_exp2_in_range"):
            assert abs(r[name]["mean_ulp"]) <= 0.01, (name, r[name])  # no bias for the scan to accumulate
            assert r[name]["wrong_below_flt_min"] == 0


def test_exp_table_is_exact():
    """Each table word plus the shifter's bits shifted left gives 2^k * 2^(j/N) exactly: the
    float32 nearest 2^(j/N) (times the linear form's centering, N = 1024) times a power of
    two, over the whole k range the clamps allow."""
    from mamba_tvm.passes import fast_math as fm

    for n in fm.TABLE_SIZES:
        words, shift, sh = fm.table_bits(n), 23 - int(np.log2(n)), np.float32(fm._table_shifter(n))
        for m in (-126 * n, -n - 1, -1, 0, 1, 5, n + 3, 127 * n + n // 2):
            kd = np.float32(sh + np.float32(m / n))
            assert kd - sh == np.float32(m / n)
            bits = int(kd.view(np.uint32))
            got = np.uint32((words[bits & (n - 1)] + (bits << shift)) & 0xFFFFFFFF).view(np.float32)
            k, j = m // n, m % n
            centering = fm._linear_centering(n) if fm._table_degree(n) == 1 else 1.0
            assert got == np.float32(np.ldexp(np.float64(np.float32(2.0 ** (j / n) * centering)), k)), (n, m)


def test_no_libm_in_the_hot_path(built, built_m7):
    """exp/softplus are inline helpers, defined once and used by every kernel; exp="libm" is
    the knob that brings the C library back."""
    src = built("kws10").compiled.sources["model_kernels.c"]
    assert not re.search(r"\b(expf|logf|log1pf|exp|log)\s*\(", src)
    assert src.count("static inline float tvmgen_default_fast_exp(float x) {") == 1
    m7 = built_m7("kws10")[1].sources["model_kernels.c"]  # exp="tableN": one table for every helper
    n = int(M7["exp"][5:])
    assert m7.count(f"static const uint32_t mamba_exp2_table{n}_bits[{n}] = {{") == 1
    assert "expf(" not in m7 and "fmaxf(" in m7
    for kernel in ("conv_step", "scan_step"):
        assert "tvmgen_default_fast_exp" in _kernel(src, kernel)
    spec = built("kws10").spec
    libm = compile_model(spec, spec.sample_input.shape[1], pipeline=mcu_pipeline(exp="libm"))
    assert "expf(" in libm.sources["model_kernels.c"]


def test_generated_c_is_portable(built_m7, tmp_path):
    """The M7 and LX7 records' C (FMA on and off, SMLAD int8 kernel): strict C99 on every
    compiler, no float-constant ternary (LLVM 22's Xtensa backend crashes on those), no
    pointer type punning (the bit casts go through a union)."""
    spec, m7, _, _ = built_m7("kws10", "int8")
    lx7 = compile_model(spec, spec.sample_input.shape[1], weights="int8", pipeline=mcu_pipeline(**LX7))
    assert "fmaf(" in m7.sources["model_kernels.c"] and "fmaf(" not in lx7.sources["model_kernels.c"]
    # the M7's int8 layers are the SMLAD kernel (its DSP path compiled below), the LX7's widen to float
    assert "mamba_smlad(" in m7.sources["model_kernels.c"] and "mamba_smlad(" not in lx7.sources["model_kernels.c"]
    # no float division for LLVM 22 to turn into a __divsf3 call: a * fast_reciprocal(b)
    assert " / (" not in lx7.sources["model_kernels.c"] and "fast_reciprocal(" in lx7.sources["model_kernels.c"]
    compilers = {"gcc": ["gcc"], "clang": ["clang"],
                 "arm-none-eabi-gcc": ["arm-none-eabi-gcc", "-mcpu=cortex-m7", "-mthumb", "-mfpu=fpv5-d16",
                                       "-mfloat-abi=hard"],
                 "xtensa-lx106-elf-gcc": ["xtensa-lx106-elf-gcc", "-mlongcalls"]}
    for label, compiled in (("m7", m7), ("lx7", lx7)):
        out = tmp_path / label
        compiled.write(out)
        src = compiled.sources["model_kernels.c"]
        assert not re.search(r"\?\s*\(?-?[\d.]+(e[-+]?\d+)?f\)?\s*:\s*\(?-?[\d.]+(e[-+]?\d+)?f", src)
        assert not re.search(r"\(\*\(\w+ \*\)\(&", src)
        for cc, cmd in compilers.items():
            assert shutil.which(cmd[0]), f"{cmd[0]} missing: run tools/setup.sh"
            for f in compiled.c_files:
                proc = subprocess.run([*cmd, "-O2", *STRICT_C99, "-I", str(out), "-c", str(out / f),
                                       "-o", str(tmp_path / f"{label}_{cc}_{f}.o")], capture_output=True, text=True)
                assert proc.returncode == 0, (label, cc, proc.stderr)


def test_c_without_gnu_extensions_gives_the_same_bits(built_m7, tmp_path):
    """The M7 record's int8 C built by a compiler that is not GCC or Clang (clang with
    __GNUC__ undefined, contraction off like GCC's C99): the pair loads go through memcpy, the
    SMLAD helpers are plain C; the logits are the GNU build's, bit for bit."""
    spec, m7, out, gnu_exe = built_m7("kws10", "int8")
    src = m7.sources["model_kernels.c"]
    assert "mamba_load_pair(" in src and "mamba_smlad(" in src
    non_gnu = ("-U__GNUC__", "-ffp-contract=off")
    exe = build_host_runner(out, m7.c_files, cc="clang", out=tmp_path / "non_gnu_runner", flags=non_gnu)
    # what the preprocessor kept: memcpy pair loads, the portable multiply-add
    pre = subprocess.run(["clang", *non_gnu, "-E", "-P", "-I", str(out), str(out / "model_kernels.c")],
                         capture_output=True, text=True, check=True).stdout
    assert "memcpy(&d, p, sizeof d)" in pre and "mamba_half(" in pre and "may_alias" not in pre
    xs = _inputs(spec, n=3)
    np.testing.assert_array_equal(run_many(exe, xs), run_many(gnu_exe, xs))


def test_reciprocal_keeps_sign_and_ieee_ends(tmp_path):
    """fast_reciprocal on negative, zero, tiny and huge divisors: the sign of 1/b, within 2.5
    ulp in range, NaN for 0 (never a finite wrong value), the documented clamp beyond 2^126."""
    import ctypes

    from mamba_tvm.codegen.plain_c import emit_helpers_c
    from mamba_tvm.passes import fast_math as fm

    src = emit_helpers_c({"fast_reciprocal": fm.fast_reciprocal()})
    recip = host_library(tmp_path, src + "\nfloat recip(float b) { return fast_reciprocal(b); }\n", "r").recip
    recip.argtypes, recip.restype = [ctypes.c_float], ctypes.c_float
    for b in (-3.0, -1e-30, -7.5e20, 1.0, 3.0, 1e-37, 2.0e37):
        want = np.float32(1.0 / np.float64(b))
        got = np.float32(recip(b))
        assert np.sign(got) == np.sign(want) and abs(got - want) <= 2.5 * np.spacing(abs(want)), (b, got, want)
    assert np.isnan(recip(0.0)) and np.isnan(recip(-0.0))
    assert 0 < recip(1e38) <= 2.0 ** -126


def test_exact_float_literals():
    """TVM's C printer keeps 7 significant digits; constants that need more (ln2's high part,
    the polynomial coefficients) must still be the same float32 in the C."""
    from mamba_tvm.passes import fast_math as fm
    from mamba_tvm.codegen.plain_c import emit_helpers_c

    src = emit_helpers_c({"fast_exp": fm.fast_exp()})
    literals = {np.float32(float(v)) for v in re.findall(r"(-?\d+\.\d+(?:e[-+]?\d+)?)f", src)}
    for c in (fm.LN2_HI, -fm.LN2_HI, fm.SHIFTER, *fm.EXP_POLY):
        if abs(c) != 1.0:
            assert np.float32(c) in literals or np.float32(-c) in literals, c


def test_matvec_weights_are_laid_out_for_the_loop(built_m7):
    """BlockMatvec stores each weight as (N / block, K, block), read contiguously by the loop
    that keeps `block` accumulators in registers."""
    _, compiled, _, _ = built_m7("kws10")
    step = compiled.programs["step"]
    shapes = sorted(t.shape for t in step.tensors.values() if t.kind == "const" and len(t.shape) == 3)
    assert (8, 40, 16) in shapes, shapes  # in_proj halves (linear_in folded in: 40 inputs), 128 outputs
    assert all(k.attrs and "tirx.is_scheduled" in k.attrs for n, k in step.kernels.items() if "proj" in n)


def test_int8_x_proj_workspace_takes_the_gate_slot(built_m7):
    """KWS-10 int8 with the M7 record: the gate z is projected after x_proj (CanonicalizeBindings,
    DeadCodeElimination, SinkBindings), so x_proj's packed x (512 B, over the 160 B stack limit)
    lives in the arena where z goes later, and the conv still writes over in_proj's x: the
    arena is fp32's 1,168 B."""
    _, m7, _, _ = built_m7("kws10", "int8")
    step = m7.programs["step"]
    order = [c.kernel for c in step.calls]
    assert order.index("mamba_x_proj_int8") < order.index("mamba_in_proj_1_int8") < order.index("mamba_scan_step")
    assert step.arena_bytes == 1168, step.arena_bytes


def test_scan_range_check_hoisted(built_m7):
    """The scan proves exp's argument range per channel from A's build-time bounds: one guard
    per channel (an upper bound only: delta is a softplus result, >= 0, and torch's threshold
    at 20 is no branch), the unchecked base-2 exp inside it, the clamped exp outside."""
    _, compiled, _, _ = built_m7("kws10")
    src = compiled.sources["model_kernels.c"]
    scan = _kernel(src, "scan_step")
    assert scan.count("tvmgen_default_fast_exp2_in_range(") >= 1
    assert re.search(r"if \(\w+\[0\] <= [\d.]+f\) \{", scan), scan[:3000]
    assert "0.000000e+00f <=" not in scan and "2.000000e+01f" not in scan


@pytest.mark.skipif(shutil.which("qemu-system-arm") is None, reason="needs qemu-system-arm (tools/setup.sh)")
def test_long_latency_instructions_are_counted_on_the_device(built_m7, tmp_path):
    """VDIV executed per inference, counted on QEMU: one per SiLU (conv and gate) and per
    softplus per channel and frame (plus the harness's none); charged at 14 cycles."""
    import boards
    from mamba_tvm.device.qemu import run_elf
    from mamba_tvm.device.qemu_trace import charged_cycles, count_executed
    from mamba_tvm.project.baremetal import build_elf, write_baremetal_project

    spec, compiled, out, _ = built_m7("har6")
    write_baremetal_project(tmp_path, [str(out / f) for f in compiled.c_files], spec.sample_input,
                            list(boards.load_board("nucleo_h743zi").cflags))
    elf = build_elf(tmp_path)
    counts = count_executed(elf)
    frames, channels = spec.sample_input.shape[1], spec.d_inner
    assert 2 * frames * channels <= counts["vdiv"] <= 3 * frames * channels + 16, counts
    assert counts["vsqrt"] == 0
    run = run_elf(elf)
    assert charged_cycles(run.instructions, counts) == run.instructions + 13 * counts["vdiv"]
