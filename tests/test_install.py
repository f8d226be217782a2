"""`pip install <clone>` gives a working `mamba-tvm` command, from any directory.

A fresh virtual environment (with the system's site-packages, so TVM and torch are not
installed again) gets the committed tree of this repository; the command then builds and runs
the bundled model on QEMU from an unrelated folder, so runtime_c/, boards/, schedules/, the
Zephyr stubs and the data must come from the installed package, not the checkout.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(cmd, cwd, timeout=600):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


def _copy_checkout(dest: Path) -> Path:
    """The working tree as it is (committed or not), without .git and build outputs."""
    proc = _run(["git", "-C", ROOT, "ls-files", "-co", "--exclude-standard", "-z"], ROOT)
    assert proc.returncode == 0, proc.stderr
    for rel in filter(None, proc.stdout.split("\0")):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            (dest / rel).write_bytes(src.read_bytes())
    return dest


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A venv with `pip install --no-deps --no-build-isolation <a clone of this repo>`."""
    base = tmp_path_factory.mktemp("install")
    clone = _copy_checkout(base / "clone")
    venv = base / "venv"
    proc = _run([sys.executable, "-m", "venv", "--system-site-packages", venv], base)
    assert proc.returncode == 0, proc.stderr
    proc = _run([venv / "bin" / "python", "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                 "--disable-pip-version-check", clone], base)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return venv, base


def test_installed_command_builds_and_runs_from_elsewhere(installed):
    venv, base = installed
    elsewhere = base / "elsewhere"
    elsewhere.mkdir()
    tool = venv / "bin" / "mamba-tvm"
    assert tool.is_file()
    proc = _run([venv / "bin" / "python", "-c", "import mamba_tvm, boards; print(mamba_tvm.__file__, boards.__file__)"],
                elsewhere)
    assert str(venv) in proc.stdout and str(ROOT) not in proc.stdout, proc.stdout  # the installed copy
    proc = _run([tool, "build", "--target", "qemu/mps2_an500", "--run"], elsewhere)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["logits_from"] == "qemu" and report["argmax"] == 9 and report["instructions"] > 1_000_000
    assert (elsewhere / "build" / "qemu" / "mps2_an500" / "baremetal" / "model.elf").is_file()


def test_installed_zephyr_app_finds_its_stubs(installed):
    """The Zephyr app's structural check compiles against stubs shipped as package data."""
    venv, base = installed
    out = base / "zephyr_out"
    proc = _run([venv / "bin" / "mamba-tvm", "build", "--target", "zephyr/nucleo_h743zi", "--out", out], base)
    assert proc.returncode == 0, proc.stderr
    assert (out / "zephyr_app" / "CMakeLists.txt").is_file()


def test_subcommands_and_errors(installed):
    venv, base = installed
    tool = venv / "bin" / "mamba-tvm"
    proc = _run([tool, "--help"], base)
    assert proc.returncode == 0
    for name in ("build", "profile", "tune", "analyze", "export"):
        assert f"  {name} " in proc.stdout
    proc = _run([tool, "frobnicate"], base)
    assert proc.returncode == 1 and proc.stderr.startswith("error: unknown subcommand 'frobnicate'")
    proc = _run([tool, "build", "--bogus"], base)
    assert proc.returncode == 1 and proc.stderr.strip().splitlines() == [
        "error: unrecognized arguments: --bogus (see mamba-tvm build --help)"]
    proc = _run([tool, "tune", "--bogus"], base)  # a package's CLI (mamba_tvm/tune/__main__.py)
    assert proc.returncode == 1 and proc.stderr.strip().splitlines() == [
        "error: unrecognized arguments: --bogus (see mamba-tvm tune --help)"]
    proc = _run([tool, "build", "--list-targets"], base)
    assert proc.returncode == 0 and "qemu/xtensa_lx7" in proc.stdout


def test_every_package_is_listed():
    """pyproject lists packages by hand (runtime_c is mapped in): a new subpackage must be added."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {str(p.parent.relative_to(ROOT)).replace("/", ".") for p in ROOT.glob("*/**/__init__.py")
             if not str(p.relative_to(ROOT)).startswith(("tests", "build", "bench", "tools"))}
    assert found <= listed, f"add to pyproject [tool.setuptools] packages: {sorted(found - listed)}"


def test_editable_install_finds_the_runtime(tmp_path):
    """`pip install -e`: runtime_c/ stays at the repository root and is found there."""
    venv = tmp_path / "venv"
    assert _run([sys.executable, "-m", "venv", "--system-site-packages", venv], tmp_path).returncode == 0
    # a copy, so the editable install's egg-info and build/ do not land in the checkout
    clone = _copy_checkout(tmp_path / "clone")
    proc = _run([venv / "bin" / "python", "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                 "--disable-pip-version-check", "-e", clone], tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = _run([venv / "bin" / "python", "-c",
                 "from mamba_tvm.resources import runtime_dir; import boards;"
                 "print(runtime_dir()); print(boards.load_board('xtensa_lx7').cflags)"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == str(clone / "runtime_c")
    assert str(clone / "runtime_c" / "minilibc" / "include") in proc.stdout
