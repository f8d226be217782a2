"""Progress on stderr at a terminal, a plain summary in pipes, the JSON last on stdout."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _build_with_stderr_on_a_terminal(out: Path, *args):
    """Run a build whose stderr is a pseudo-terminal; stdout stays a pipe, like `... > report.json`."""
    import pty

    master, slave = pty.openpty()
    os.set_blocking(master, False)
    proc = subprocess.Popen([sys.executable, "-m", "mamba_tvm.build", "--out", str(out), *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=slave, text=True,
                            env={**os.environ, "COLUMNS": "120", "TERM": "xterm"})
    os.close(slave)
    seen = bytearray()
    import select

    while True:
        ready, _, _ = select.select([master], [], [], 0.2)
        chunk = b""
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed its end
                chunk = b""
            seen += chunk
        if proc.poll() is not None and not chunk:
            break
    stdout = proc.stdout.read()
    os.close(master)
    return proc.returncode, stdout, seen.decode(errors="replace")


def test_progress_at_a_terminal(tmp_path):
    code, stdout, terminal = _build_with_stderr_on_a_terminal(tmp_path / "o", "--run")
    assert code == 0, terminal
    report = json.loads(stdout.strip().splitlines()[-1])  # the JSON is still the last stdout line
    assert report["logits_from"] == "qemu"
    for step in ("compiling (timestep, sequence, fp32)", "host build and check", "firmware build",
                 "running on QEMU"):
        assert step in terminal, f"no progress line for '{step}'"
    assert "\x1b[" in terminal  # a live display (cursor control / colour), not plain text
    assert "RAM total" in terminal and f"{report['instructions']:,}" in terminal


def test_quiet_in_pipes_with_a_summary(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "mamba_tvm.build", "--out", str(tmp_path / "o")], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(proc.stdout.strip().splitlines()) == 1
    assert "\x1b[" not in proc.stderr and "compiling" not in proc.stderr  # no progress display in a pipe
    lines = {ln.split("  ")[0].strip(): ln for ln in proc.stderr.splitlines() if ln.strip()}
    ram = report["arena_bytes"] + report["state_bytes"] + report["stack_bytes"]
    assert f"{ram:,} B" in lines["RAM total"] and report["placement"] in lines["RAM total"]
    assert f"{report['arena_bytes']:,} B" in lines["arena"]
    assert f"{report['weights_bytes']:,} B" in lines["weights"]
    assert f"{report['max_abs_err_vs_torch']:.2e}" in lines["max |error|"]
    assert str(tmp_path / "o") in lines["output"]
    quiet = subprocess.run([sys.executable, "-m", "mamba_tvm.build", "--out", str(tmp_path / "o"), "--quiet"],
                           cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert quiet.returncode == 0 and quiet.stderr == ""


def test_steps_do_nothing_without_a_display():
    from mamba_tvm.progress import step, track

    with step("anything"):
        pass
    assert list(track([1, 2, 3], "x")) == [1, 2, 3]
