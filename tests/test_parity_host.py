"""The generated C, built for the host with gcc, against the independent float64 reference
(tests/reference_f64.py) in every form: time-step fused and layer-by-layer whole sequence,
streaming, and int8 weights; on the fixtures and the calibrated random models, on each
model's sample and on random inputs drawn like it. The bound is the project's parity bound:
max |err| <= 1e-5 x max(1, max |reference logit|), argmax equal where the reference's top-two
margin exceeds that."""
import subprocess
from pathlib import Path

import numpy as np
import pytest

from mamba_tvm.codegen import STRICT_C99
from mamba_tvm.compiler import compile_model
from mamba_tvm.device.host import build_host_runner, run_host
from tests.conftest import DATA, FIXTURES, PUBLISHED_F64, RANDOM_MODELS, inputs_like
from tests.reference_f64 import parity_errors, parity_tolerance

MODELS = FIXTURES + list(RANDOM_MODELS)
#: build options of each form the compiler emits
FORMS = {
    "timestep": dict(),
    "layer": dict(fusion="layer"),
    "stream": dict(mode="stream"),
    "int8": dict(weights="int8"),
}
N_RANDOM = 8  # random inputs per model and form, besides the sample


def parity_report(outputs, references) -> tuple[list[str], float, float]:
    """Violations of the parity bound over several inputs, the worst |err| / tolerance and the
    largest |err|."""
    failures, worst, largest = [], 0.0, 0.0
    for i, (got, ref) in enumerate(zip(outputs, references)):
        failures += [f"input {i}: {p}" for p in parity_errors(got, ref)]
        err = float(np.max(np.abs(np.asarray(got, np.float64) - ref)))
        worst, largest = max(worst, err / parity_tolerance(ref)), max(largest, err)
    return failures, worst, largest


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("name", MODELS)
def test_c_matches_float64_reference(built, name, form):
    b = built(name, **FORMS[form])
    sample = b.spec.sample_input
    xs = np.concatenate([sample, inputs_like(sample, N_RANDOM, seed=7)])
    refs = b.reference(xs)
    failures, worst, largest = parity_report([run_host(b.exe, x[None]) for x in xs], refs)
    print(f"\n| {name} | {form} | {len(xs)} | {np.abs(refs).max():.1f} | {largest:.2g} | {worst:.3f} |")
    assert not failures, failures


@pytest.mark.published_logits
@pytest.mark.parametrize("fusion", ["timestep", "layer"])
@pytest.mark.parametrize("name", ["kws10", "kws3"])
def test_c_matches_published_logits(built, name, fusion):
    """The float64 logits published with the fixtures (5 decimals, mamba_tvm/data/README.md)
    and MambaLite-Micro's own C engine's logits (6 decimals; 1.3e-5 from float64): ours is no
    further from float64 than theirs."""
    published = PUBLISHED_F64[name]
    b = built(name, fusion=fusion)
    got = run_host(b.exe, b.spec.sample_input)
    assert np.max(np.abs(got - published)) <= parity_tolerance(np.array(published)) + 5e-6
    assert np.argmax(got) == np.argmax(published)
    if name == "kws10":
        with np.load(DATA / "mambalite_kws10.npz") as f:
            mambalite = f["mambalite_c_logits"]
        # no further from float64 than MambaLite-Micro's own float32 C (within the published rounding)
        assert np.max(np.abs(got - published)) <= np.max(np.abs(mambalite - published)) + 5e-6


@pytest.mark.parametrize("name", ["kws10", "two_blocks", "odd_dims"])
def test_streaming_any_length(built, name, tmp_path):
    """init/step/finish over T frames matches the float64 frame-by-frame reference at lengths
    other than the compiled one, and a whole-sequence build compiled for that length."""
    stream = built(name, mode="stream")
    spec = stream.spec
    whole = {}
    for t in (1, 7):  # whole-sequence builds for other lengths
        compiled = compile_model(spec, t)
        compiled.write(tmp_path / f"t{t}")
        whole[t] = build_host_runner(tmp_path / f"t{t}", compiled.c_files)
    for t in (1, 2, 7, 2 * spec.sample_input.shape[1] + 3):
        xs = inputs_like(spec.sample_input, 2, seed=t, length=t)
        got = [run_host(stream.exe, x[None]) for x in xs]
        failures, _, _ = parity_report(got, stream.reference(xs))
        assert not failures, (t, failures)
        if t in whole:
            for x, g in zip(xs, got):
                want = run_host(whole[t], x[None])
                assert np.max(np.abs(g - want)) <= parity_tolerance(want), t


def _multi_run(b, xs, tmp_path):
    """All inputs through one process (tests/multi_run_main.c)."""
    frames, features = xs.shape[1], xs.shape[2]
    exe = tmp_path / "multi_run"
    defines = [f"-DMR_FRAME={features}", f"-DMR_FRAMES={frames}", f"-DMR_OUTPUT={b.spec.n_classes}"]
    if b.compiled.mode == "stream":
        defines.append("-DMR_STREAM")
    harness = Path(__file__).with_name("multi_run_main.c")
    subprocess.run(["gcc", *STRICT_C99, "-O2", *defines, "-I", str(b.model_dir),
                    *(str(b.model_dir / f) for f in b.compiled.c_files), str(harness), "-o", str(exe), "-lm"],
                   check=True, capture_output=True, text=True)
    np.ascontiguousarray(xs, dtype=np.float32).tofile(tmp_path / "in.bin")
    subprocess.run([str(exe), str(tmp_path / "in.bin"), str(len(xs)), str(tmp_path / "out.bin")], check=True,
                   timeout=120)
    return np.fromfile(tmp_path / "out.bin", dtype=np.float32).reshape(len(xs), -1)


@pytest.mark.parametrize("form", ["timestep", "stream", "layer"])
def test_repeated_inferences_in_one_process(built, form, tmp_path):
    """Inference n in a process gives what it gives in a fresh process: nothing (the scan
    state, the conv window, the pooled sum, arena contents) leaks from one run into the next."""
    b = built("two_blocks", **FORMS[form])
    xs = inputs_like(b.spec.sample_input, 4, seed=3)
    together = _multi_run(b, xs, tmp_path)
    for x, got in zip(xs, together):
        np.testing.assert_array_equal(got.view(np.uint32), run_host(b.exe, x[None]).view(np.uint32))
    failures, _, _ = parity_report(together, b.reference(xs))
    assert not failures, failures

