"""`python -m mamba_tvm.build` as a user runs it: one JSON line on success, one error line on
bad input, and never a half-written output directory."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import DATA

ROOT = Path(__file__).resolve().parents[1]


def _build(*args):
    return subprocess.run([sys.executable, "-m", "mamba_tvm.build", *map(str, args)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_default_model_runs_on_qemu(tmp_path):
    out = tmp_path / "out"
    proc = _build("--run", "--out", out)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    for key in ("logits", "arena_bytes", "weights_bytes", "stack_bytes", "instructions",
                "max_abs_err_vs_torch", "out_dir"):
        assert key in report
    assert report["logits_from"] == "qemu" and report["instructions"] > 1_000_000
    assert report["max_abs_err_vs_torch"] <= 1e-4 and report["max_abs_err_vs_mambalite"] <= 1e-4
    assert report["argmax"] == 9 and report["arena_bytes"] < 200 * 1024
    # the linker map agrees with the plan: the model's static RAM is exactly arena + state
    assert report["model_static_ram_bytes"] == report["arena_bytes"] + report["state_bytes"]
    assert report["model_flash_bytes"] >= report["weights_bytes"]
    assert Path(report["out_dir"]) == out
    assert (out / "baremetal" / "model.elf").is_file() and (out / "model" / "model.c").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "staging directory left behind"


def _bad_checkpoint(tmp_path, kind):
    with np.load(DATA / "mambalite_kws10.npz") as f:
        state = {k: f[k] for k in f.files}
    if kind == "missing":
        del state["mamba.D"]
    elif kind == "shape":
        state["mamba.conv1d.weight"] = np.zeros((128, 1, 5), np.float32)[:, :, :4].repeat(2, axis=0)
    elif kind == "nan":
        state["classifier.weight"][2, 3] = np.nan
    path = tmp_path / f"{kind}.npz"
    np.savez(path, **state)
    return path


@pytest.mark.parametrize("kind, message", [
    ("missing", "missing tensor 'mamba.D'"),
    ("shape", "tensor 'mamba.conv1d.weight' has shape (256, 1, 4), expected (128, 1, 4)"),
    ("nan", "tensor 'classifier.weight' has 1 non-finite value(s)"),
])
def test_bad_checkpoint_one_line_error_and_no_output(tmp_path, kind, message):
    out = tmp_path / "out"
    proc = _build("--model", _bad_checkpoint(tmp_path, kind), "--out", out)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], proc.stderr
    assert proc.stdout == ""
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_failed_build_keeps_previous_output(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("previous build")
    proc = _build("--model", _bad_checkpoint(tmp_path, "nan"), "--out", out)
    assert proc.returncode != 0 and (out / "keep.txt").read_text() == "previous build"


def test_unknown_target_and_list_targets():
    proc = _build("--target", "zephyr/nosuchboard")
    assert proc.returncode != 0 and "unknown target 'zephyr/nosuchboard'" in proc.stderr
    listing = _build("--list-targets")
    assert listing.returncode == 0
    for target in ("qemu/mps2_an500", "zephyr/nucleo_h743zi", "zephyr/esp32s3_devkitc"):
        assert target in listing.stdout


def test_stream_int8_build_reports_memory_and_quantization(tmp_path):
    proc = _build("--mode", "stream", "--weights", "int8", "--run", "--out", tmp_path / "s")
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (r["mode"], r["fusion"], r["weights"]) == ("stream", "timestep", "int8")
    assert r["total_ram_bytes"] == r["arena_bytes"] + r["state_bytes"] + r["stack_bytes"] <= 16 * 1024
    assert r["weights_bytes"] <= 0.3 * r["fp32_weights_bytes"]
    assert r["max_abs_err_vs_torch"] <= 1e-4  # the C against the int8 model it implements
    assert r["int8_argmax_same_on_check_input"] and r["int8_max_logit_change"] > 0 and r["int8_inputs_checked"] == 101
    header = (tmp_path / "s" / "model" / "model.h").read_text()
    assert "tvmgen_default_step(const float* frame" in header and "tvmgen_default_run" not in header
