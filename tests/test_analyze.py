"""`mamba-tvm analyze`: the per-layer table's totals are the build's own figures, the MACs match
a count from the model's dimensions, the pictures and the page are written."""
import base64
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import DATA

ROOT = Path(__file__).resolve().parents[1]


def _cli(module, *args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=900)


def kws10_macs(seq_len: int) -> int:
    """Multiplies per inference of the time-step fused KWS-10, from the state_dict's shapes:
    linear_in folded into in_proj, out_proj folded into the classifier after the time mean."""
    with np.load(DATA / "mambalite_kws10.npz") as f:
        w = {k: f[k].shape for k in f.files}
    n_features = w["linear_in.weight"][1]
    d_inner, d_state = w["mamba.A_log"]
    dt_rank = w["mamba.dt_proj.weight"][1]
    d_conv = w["mamba.conv1d.weight"][2]
    x_proj_out = w["mamba.x_proj.weight"][0]
    n_classes = w["classifier.weight"][0]
    per_frame = (n_features * 2 * d_inner  # in_proj (x and z halves) with linear_in folded in
                 + d_inner * d_conv  # causal conv taps
                 + d_inner * x_proj_out  # x_proj
                 + d_inner * dt_rank  # dt_proj (inside the scan kernel)
                 + d_inner * (1 + 5 * d_state)  # D*u; per state: delta*A, exp(.)*h, delta*u, B*(delta*u), C*h
                 + d_inner)  # the SiLU gate y * silu(z)
    return seq_len * per_frame + d_inner + d_inner * n_classes  # mean's 1/T scale; folded out_proj+classifier


@pytest.fixture(scope="module")
def analyzed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("analyze")
    proc = _cli("mamba_tvm.analyze", "--target", "qemu/mps2_an500", "--png", tmp / "a.png", "--html",
                tmp / "a.html")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stdout, tmp


def test_totals_are_the_builds(analyzed, tmp_path):
    report, text, _ = analyzed
    build = _cli("mamba_tvm.build", "--target", "qemu/mps2_an500", "--out", tmp_path / "b", "--quiet")
    assert build.returncode == 0, build.stderr
    built = json.loads(build.stdout.strip().splitlines()[-1])
    t = report["totals"]
    assert t["arena_bytes"] == built["arena_bytes"]
    assert t["state_bytes"] == built["state_bytes"]
    assert t["weights_bytes"] == built["weights_bytes"]
    assert t["stack_bytes"] == built["stack_bytes"]
    assert t["ram_region"] == built["placement"]
    layers = report["layers"]
    assert sum(r["weights_fp32_bytes"] for r in layers) == built["weights_bytes"]
    assert max(r["activation_bytes"] for r in layers) <= t["arena_bytes"] <= t["activation_bytes_unplanned"]
    assert t["macs"] == sum(r["macs"] for r in layers) == kws10_macs(built["seq_len"])
    assert abs(sum(r["share"] for r in layers) - 1) < 1e-9
    # int8 column: the int8 build's weights
    build8 = _cli("mamba_tvm.build", "--target", "qemu/mps2_an500", "--out", tmp_path / "b8", "--quiet",
                  "--weights", "int8")
    assert build8.returncode == 0, build8.stderr
    assert t["weights_int8_bytes"] == json.loads(build8.stdout.strip().splitlines()[-1])["weights_bytes"]
    assert sum(r["weights_int8_bytes"] for r in layers) == t["weights_int8_bytes"]
    # the table shows the totals and names the layers after the user's modules
    total_line = next(ln for ln in text.splitlines() if ln.startswith("total"))
    assert f"{t['macs']:,}" in total_line and f"{built['weights_bytes']:,}" in total_line
    by_kernel = {r["kernel"]: r for r in layers}
    assert by_kernel["mamba_x_proj"]["layer"] == "mamba.x_proj"
    assert by_kernel["mamba_in_proj_0"]["layer"] == "mamba.in_proj"
    assert by_kernel["classifier"]["layer"] == "classifier"
    assert by_kernel["mamba_conv_step"]["layer"] == "mamba.conv1d"  # a Mamba op kernel: its submodule
    assert by_kernel["mamba_scan_step"]["layer"] == "mamba"  # the scan belongs to the mixer itself
    assert by_kernel["mamba_x_proj"]["macs"] == built["seq_len"] * 128 * 36


def test_png_and_html(analyzed):
    _, _, tmp = analyzed
    png = (tmp / "a.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    page = (tmp / "a.html").read_text()
    assert "data:image/png;base64," in page and "mamba.in_proj" in page
    embedded = page.split("data:image/png;base64,", 1)[1].split('"', 1)[0]
    assert base64.b64decode(embedded) == png  # self-contained: the same picture inside


def test_profile_column(tmp_path):
    proc = _cli("mamba_tvm.analyze", "--model", DATA / "mambalite_kws3.npz", "--profile", "--seq-len", "20")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    layers = report["layers"]
    assert all(r["instructions"] is not None for r in layers)  # every kernel measured (a 3-add one may round to 0)
    assert all(r["instructions"] > 0 for r in layers if r["macs"] >= 100)
    assert sum(r["instructions"] for r in layers) <= report["totals"]["instructions"]
    scan = next(r for r in layers if r["kernel"].startswith("mamba_scan"))
    assert scan["instructions"] > scan["macs"]  # a multiply costs at least one instruction
    assert "instr/MAC" in proc.stdout


def test_bad_input_one_error_line(tmp_path):
    existing = tmp_path / "x.png"
    existing.write_bytes(b"mine")
    proc = _cli("mamba_tvm.analyze", "--png", existing)
    assert proc.returncode == 1 and proc.stderr.strip().splitlines() == [
        f"error: {existing} exists; mamba_tvm does not overwrite files it did not write: give a new path"]
    assert existing.read_bytes() == b"mine"
    proc = _cli("mamba_tvm.analyze", "--target", "qemu/nowhere")
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1
    assert proc.stderr.startswith("error: unknown target")
