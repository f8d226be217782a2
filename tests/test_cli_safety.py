"""The CLI as a careless or unlucky user meets it: every case runs `python -m mamba_tvm.build`
(or .profile) as a subprocess and checks the exit code, the last stderr line, the files
left and the files kept. Each case is one the tool once got wrong (issue 9)."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from mamba_tvm.outdir import MANIFEST
from tests.conftest import DATA
from tests.mamba_simple_torch import random_model

ROOT = Path(__file__).resolve().parents[1]
SMALL = dict(n_features=6, d_model=8, n_classes=3, d_state=4)


def run_cli(*args, cwd=ROOT, module="mamba_tvm.build", umask=None, timeout=600):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout, preexec_fn=(lambda: os.umask(umask)) if umask is not None else None)


def strict_json(text: str) -> dict:
    def refuse(name):
        raise ValueError(f"{name} in the report")
    return json.loads(text, parse_constant=refuse)


def assert_one_error(proc, *needles):
    """Exit 1, nothing on stdout, exactly one stderr line: `error: ...` holding every needle."""
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout == "" and len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert "Traceback" not in proc.stderr and "\x1b[" not in proc.stderr
    return lines[0]


def small_state(seed=3) -> dict:
    return {k: v.detach().numpy().copy() for k, v in random_model(seed=seed, **SMALL).state_dict().items()}


def save_npz(path: Path, state: dict, sample=True) -> Path:
    arrays = dict(state)
    if sample:
        arrays["sample_input"] = np.random.default_rng(0).standard_normal((1, 12, SMALL["n_features"])).astype(np.float32)
    np.savez(path, **arrays)
    return path


def tree(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


@pytest.fixture
def project(tmp_path):
    """A firmware engineer's folder: sources, a git directory, and the checkpoint."""
    root = tmp_path / "firmware"
    (root / "src").mkdir(parents=True)
    (root / ".git").mkdir()
    (root / "src" / "main.c").write_text("int main(void) { return 0; }\n")
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    save_npz(root / "model.npz", small_state())
    return root


# ---- 1. the output folder: nothing the build did not write is ever deleted ----------------

def test_out_dot_is_refused_and_the_project_survives(project):
    before = tree(project)
    proc = run_cli("--model", "model.npz", "--out", ".", "--target", "zephyr/nucleo_h743zi", cwd=project)
    assert_one_error(proc, "current directory")
    assert tree(project) == before


def test_out_ancestor_of_cwd_is_refused(project):
    before = tree(project)
    proc = run_cli("--model", "../model.npz", "--out", "..", "--target", "zephyr/nucleo_h743zi", cwd=project / "src")
    assert_one_error(proc, "ancestor of the current directory")
    assert tree(project) == before


def test_out_holding_the_checkpoint_is_refused(project, tmp_path):
    before = tree(project)
    proc = run_cli("--model", project / "model.npz", "--out", project, "--target", "zephyr/nucleo_h743zi", cwd=tmp_path)
    assert_one_error(proc, "holds the input")
    assert tree(project) == before


def test_foreign_folder_is_refused_and_kept(project, tmp_path):
    (project / "model.npz").rename(tmp_path / "model.npz")
    before = tree(project)
    proc = run_cli("--model", tmp_path / "model.npz", "--out", project, "--target", "zephyr/nucleo_h743zi", cwd=tmp_path)
    assert_one_error(proc, "not written by mamba_tvm")
    assert tree(project) == before and leftovers(tmp_path) == []


def test_previous_output_is_replaced_only_when_it_is_ours_alone(tmp_path):
    model = save_npz(tmp_path / "m.npz", small_state())
    out = tmp_path / "out"
    first = run_cli("--model", model, "--out", out, "--target", "zephyr/nucleo_h743zi", umask=0o022)
    assert first.returncode == 0, first.stderr
    manifest = json.loads((out / MANIFEST).read_text())
    assert set(manifest["files"]) == set(tree(out)) - {MANIFEST}
    assert (out.stat().st_mode & 0o777) == 0o755  # the user's umask, not mkdtemp's 0700
    second = run_cli("--model", model, "--out", out, "--target", "zephyr/nucleo_h743zi")
    assert second.returncode == 0, second.stderr
    (out / "notes.txt").write_text("mine")
    third = run_cli("--model", model, "--out", out, "--target", "zephyr/nucleo_h743zi")
    assert_one_error(third, "did not write", "notes.txt")
    assert (out / "notes.txt").read_text() == "mine" and (out / MANIFEST).is_file()
    assert leftovers(tmp_path) == []


def test_concurrent_builds_into_one_folder(tmp_path):
    """One wins; any other fails with a clear message; nobody reports a result it did not write."""
    model = save_npz(tmp_path / "m.npz", small_state())
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-m", "mamba_tvm.build", "--model", str(model), "--out", str(out),
                               "--target", "zephyr/nucleo_h743zi"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    results = [(p.wait(timeout=600), p.stdout.read(), p.stderr.read()) for p in procs]
    winners = [strict_json(o.strip().splitlines()[-1]) for rc, o, _ in results if rc == 0]
    assert winners
    for rc, _, err in results:
        assert rc == 0 or ("another mamba_tvm build is writing" in err and rc == 1), err
    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk in winners and all(w["out_dir"] == str(out) for w in winners)
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupt_removes_staging_and_says_one_line(tmp_path, sig, code):
    model = save_npz(tmp_path / "m.npz", small_state())
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "mamba_tvm.build", "--model", str(model), "--out", str(out),
                             "--target", "qemu/mps2_an500"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not any(".staging-" in n for n in leftovers(tmp_path)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, proc.stderr.read()
    time.sleep(0.5)
    proc.send_signal(sig)
    rc, stderr = proc.wait(timeout=60), proc.stderr.read()
    assert rc == code and stderr.strip().splitlines() == ["interrupted"], stderr
    assert not out.exists() and leftovers(tmp_path) == []


# ---- 2. never success for a broken result ------------------------------------------------

def test_overflowing_weights_are_refused_naming_the_layer(tmp_path):
    state = small_state()
    state["mamba.x_proj.weight"] *= 1e37
    proc = run_cli("--model", save_npz(tmp_path / "huge.npz", state), "--out", tmp_path / "out",
                   "--target", "zephyr/nucleo_h743zi")
    assert_one_error(proc, "stop being finite", "layer '")
    assert not (tmp_path / "out").exists()


def test_long_sequence_counts_the_baked_sample(tmp_path):
    """--seq-len 20000: the (1, T, F) demo input is 3.2 MB, more than the H7's flash. A sequence
    build is refused with the numbers; a streaming build bakes a shorter demo and says so."""
    seq = run_cli("--seq-len", 20000, "--out", tmp_path / "seq", "--target", "zephyr/nucleo_h743zi")
    assert_one_error(seq, "does not fit nucleo_h743zi", "baked sample input 3200000 B")
    stream = run_cli("--seq-len", 20000, "--mode", "stream", "--out", tmp_path / "stream",
                     "--target", "zephyr/nucleo_h743zi")
    assert stream.returncode == 0, stream.stderr
    report = strict_json(stream.stdout.strip().splitlines()[-1])
    frames = report["demo_input_frames"]
    assert 0 < frames < 20000 and any("demo input" in n for n in report["notes"])
    assert f"note: the app's baked demo input is the first {frames}" in stream.stderr
    sample_h = tmp_path / "stream" / "zephyr_app" / "src" / "sample_input.h"
    assert f"#define SAMPLE_INPUT_COUNT {frames * 40}" in sample_h.read_text()
    assert report["max_abs_err_vs_torch"] <= 1e-5 * max(1, np.max(np.abs(report["logits"])))


def test_int8_flash_check_uses_the_quantized_size(tmp_path):
    """2.2 MB of fp32 weights do not fit the H7's 2 MB flash; in int8 (0.55 MB) they do, and
    the refusal of the fp32 build names int8 as the remedy."""
    torch.manual_seed(0)
    state = {k: v.detach().numpy() for k, v in random_model(seed=1, n_features=8, d_model=288, n_classes=3,
                                                              d_state=4).state_dict().items()}
    model = save_npz(tmp_path / "big.npz", state, sample=False)
    fp32 = run_cli("--model", model, "--seq-len", 3, "--out", tmp_path / "a", "--target", "zephyr/nucleo_h743zi")
    assert_one_error(fp32, "does not fit nucleo_h743zi flash", "try int8 weights")
    int8 = run_cli("--model", model, "--seq-len", 3, "--weights", "int8", "--out", tmp_path / "b",
                   "--target", "zephyr/nucleo_h743zi")
    assert int8.returncode == 0, int8.stderr
    report = strict_json(int8.stdout.strip().splitlines()[-1])
    assert report["weights_bytes"] < 0.3 * report["fp32_weights_bytes"] and report["fp32_weights_bytes"] > 2 * 2 ** 20


# ---- 3. a user's mistake is an error line, not an internal error ------------------------

@pytest.mark.parametrize("value", ["0", "-3", "ten"])
def test_bad_seq_len(value, tmp_path):
    assert_one_error(run_cli("--seq-len", value, "--out", tmp_path / "o"), "--seq-len")


def test_bf16_checkpoint_is_cast_and_said(tmp_path):
    model = random_model(seed=3, **SMALL).to(torch.bfloat16)
    path = tmp_path / "bf16.pt"
    torch.save(model.state_dict(), path)
    proc = run_cli("--model", path, "--seq-len", 5, "--out", tmp_path / "o", "--target", "zephyr/nucleo_h743zi")
    assert proc.returncode == 0, proc.stderr
    report = strict_json(proc.stdout.strip().splitlines()[-1])
    assert any("bfloat16 cast to float32" in n for n in report["notes"]) and "note: " in proc.stderr


def test_overflowing_a_log_is_a_user_error(tmp_path):
    state = small_state()
    state["mamba.A_log"][0, 0] = 100.0
    assert_one_error(run_cli("--model", save_npz(tmp_path / "a.npz", state), "--out", tmp_path / "o"),
                     "mamba.A_log", "overflows float32")


def test_whole_module_pickle_and_torchscript_are_explained(tmp_path):
    module = random_model(seed=3, **SMALL)
    torch.save(module, tmp_path / "whole.pt")
    assert_one_error(run_cli("--model", tmp_path / "whole.pt", "--out", tmp_path / "o"),
                     "pickled Python objects", "model.state_dict()")
    torch.jit.save(torch.jit.trace(module, torch.zeros(1, 4, SMALL["n_features"])), tmp_path / "ts.pt")
    assert_one_error(run_cli("--model", tmp_path / "ts.pt", "--out", tmp_path / "o"), "TorchScript")


def test_folder_as_model_and_missing_tensor_list_what_was_found(tmp_path):
    assert_one_error(run_cli("--model", tmp_path, "--out", tmp_path / "o"), "is a folder")
    state = small_state()
    del state["mamba.D"]
    assert_one_error(run_cli("--model", save_npz(tmp_path / "m.npz", state), "--out", tmp_path / "o"),
                     "missing tensor 'mamba.D'", "the file holds 12 tensor(s): linear_in.weight")
    np.savez(tmp_path / "other.npz", **{"encoder.weight": np.zeros((2, 2), np.float32)})
    assert_one_error(run_cli("--model", tmp_path / "other.npz", "--out", tmp_path / "o"),
                     "no Mamba block", "encoder.weight")


def test_common_wrappers_are_unwrapped(tmp_path):
    state = random_model(seed=3, **SMALL).state_dict()
    torch.save({"epoch": 7, "model_state_dict": {f"module.{k}": v for k, v in state.items()}}, tmp_path / "ckpt.pth")
    proc = run_cli("--model", tmp_path / "ckpt.pth", "--seq-len", 5, "--out", tmp_path / "o",
                   "--target", "zephyr/nucleo_h743zi")
    assert proc.returncode == 0, proc.stderr


# ---- 4. self-checks check what they say ----------------------------------------------------

def test_check_input_is_named_and_never_zeros(tmp_path):
    model = save_npz(tmp_path / "nosample.npz", small_state(), sample=False)
    proc = run_cli("--model", model, "--seq-len", 9, "--out", tmp_path / "a", "--target", "zephyr/nucleo_h743zi")
    report = strict_json(proc.stdout.strip().splitlines()[-1])
    assert report["check_input"].startswith("random N(0, 1)")
    sample_h = (tmp_path / "a" / "zephyr_app" / "src" / "sample_input.h").read_text()
    assert sample_h.count("0x0p+0f") < 5, "the demo input is (almost) all zeros"
    longer = run_cli("--seq-len", 50, "--out", tmp_path / "b", "--target", "zephyr/nucleo_h743zi", "--weights", "int8")
    report = strict_json(longer.stdout.strip().splitlines()[-1])
    assert report["check_input"].startswith("random, per-feature mean/std of sample_input")
    assert report["int8_inputs_checked"] == 101 and report["int8_max_logit_change"] > 0
    assert "int8_error_bound" not in report


def test_c_emitter_prints_non_finite_constants_as_c():
    from mamba_tvm.codegen.aot import _float_literal
    from mamba_tvm.codegen.plain_c import strip_tvm_boilerplate

    assert [_float_literal(v) for v in (np.inf, -np.inf, np.nan)] == ["INFINITY", "(-INFINITY)", "NAN"]
    assert "y = -INFINITY + NAN;" in strip_tvm_boilerplate("void k(float* y) {\n  y = -inff + nanf;\n}\n")


# ---- 5. the profiler trusts no device blindly ----------------------------------------------

def test_profiler_refuses_a_device_serving_another_model(tmp_path):
    from mamba_tvm.compiler import compile_model
    from mamba_tvm.device.qemu_rpc import free_tcp_port, rpc_qemu_command
    from mamba_tvm.frontend import load_checkpoint
    from mamba_tvm.project.rpc_firmware import build_rpc_firmware

    other = load_checkpoint(DATA / "mambalite_kws10.npz")
    other.weights["classifier.bias"] = other.weights["classifier.bias"] + 1.0  # same shapes, another model
    compiled = compile_model(other, 100)
    compiled.write(tmp_path / "model")
    elf = build_rpc_firmware(tmp_path, tmp_path / "model", compiled, other.name, "uart")
    port = free_tcp_port()
    qemu = subprocess.Popen(rpc_qemu_command(elf, f"tcp:127.0.0.1:{port},server=on,wait=on,nodelay=on"),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.0)
        proc = run_cli("--port", f"socket://127.0.0.1:{port}", "--timeout", 5, module="mamba_tvm.profile")
    finally:
        qemu.kill()
        qemu.wait()
    assert_one_error(proc, f"fingerprint {compiled.fingerprint}", "flash the firmware built from this model")


# ---- 6. the loader under fuzzing -----------------------------------------------------------

FUZZ_SCRIPT = r"""
import io, json, signal, sys
from contextlib import redirect_stderr
from mamba_tvm.errors import run_cli
from mamba_tvm.frontend import load_checkpoint

def on_alarm(*_):
    raise TimeoutError("hang")

signal.signal(signal.SIGALRM, on_alarm)
results = []
for path in sys.argv[1:]:
    err = io.StringIO()
    signal.alarm(20)
    try:
        with redirect_stderr(err):
            code = run_cli(lambda: load_checkpoint(path) and 0)
    except TimeoutError:
        code = "hang"
    signal.alarm(0)
    results.append([path, code, err.getvalue()])
print(json.dumps(results))
"""


def _fuzz_cases(tmp_path: Path, n: int, seed: int = 0) -> list[Path]:
    rng = np.random.default_rng(seed)
    state = small_state()
    good_npz = save_npz(tmp_path / "good.npz", state).read_bytes()
    torch.save({k: torch.from_numpy(v) for k, v in state.items()}, tmp_path / "good.pt")
    good_pt = (tmp_path / "good.pt").read_bytes()
    keys = sorted(state)
    cases = []
    for i in range(n):
        kind = i % 8
        path = tmp_path / f"case{i}.{'pt' if kind in (1, 3, 6) else 'npz'}"
        if kind in (0, 1):  # truncated
            data = good_npz if kind == 0 else good_pt
            path.write_bytes(data[:int(rng.integers(0, len(data) - 1))])
        elif kind in (2, 3):  # bit flips in the container (CRCs, headers, pickles)
            data = bytearray(good_npz if kind == 2 else good_pt)
            for pos in rng.integers(0, len(data), int(rng.integers(1, 8))):
                data[pos] ^= 1 << int(rng.integers(0, 8))
            path.write_bytes(bytes(data))
        elif kind == 4:  # a wrong dtype
            bad = dict(state)
            key = keys[int(rng.integers(len(keys)))]
            bad[key] = bad[key].astype([np.int32, np.bool_, np.complex64, np.uint8][int(rng.integers(4))])
            np.savez(path, **bad)
        elif kind == 5:  # a wrong shape
            bad = dict(state)
            key = keys[int(rng.integers(len(keys)))]
            shape = list(bad[key].shape)
            shape[int(rng.integers(len(shape)))] += int(rng.integers(1, 3))
            bad[key] = np.zeros(shape, np.float32)
            np.savez(path, **bad)
        elif kind == 6:  # random pickles: not a state_dict
            obj = [[1, 2], "text", 3.5, {"a": [1]}, {1: torch.zeros(2)}, (torch.zeros(1),), None][int(rng.integers(7))]
            torch.save(obj, path)
        else:  # random bytes
            path.write_bytes(rng.integers(0, 256, int(rng.integers(0, 4096)), dtype=np.uint8).tobytes())
        cases.append(path)
    return cases


def test_fuzzed_checkpoints_give_one_error_line(tmp_path):
    """200 malformed checkpoints (truncated, bit-flipped, wrong dtypes and shapes, random
    pickles and bytes) through the CLI's error path: exit 1 and one `error:` line each;
    a bit flip that leaves a valid checkpoint loads (it is not malformed)."""
    cases = _fuzz_cases(tmp_path, 220)
    proc = subprocess.run([sys.executable, "-c", FUZZ_SCRIPT, *map(str, cases)], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    malformed = [r for r in results if r[1] != 0]
    assert len(malformed) >= 200
    for path, code, err in malformed:
        lines = err.strip().splitlines()
        assert code == 1 and len(lines) == 1 and lines[0].startswith("error: "), (path, code, err)
