"""`--emit mlf` and `--emit zephyr-module`: read back with the format's own structure."""
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import DATA

ROOT = Path(__file__).resolve().parents[1]


def _build(out, *args):
    proc = subprocess.run([sys.executable, "-m", "mamba_tvm.build", "--out", str(out), "--quiet", *map(str, args)],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    return proc


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("emit") / "out"
    proc = _build(out, "--emit", "mlf", "--emit", "zephyr-module")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1]), out


def test_mlf_reads_back(built, tmp_path):
    import tvm

    report, out = built
    assert report["mlf"] == str(out / "model.tar")
    with tarfile.open(out / "model.tar") as tar:
        names = tar.getnames()
        assert all(n == "." or n.startswith("./") for n in names)
        tar.extractall(tmp_path / "mlf", filter="data")
    mlf = tmp_path / "mlf"
    meta = json.loads((mlf / "metadata.json").read_text())
    assert meta["version"] == 7 and list(meta["modules"]) == ["default"]
    mod = meta["modules"]["default"]
    assert mod["executors"] == ["aot"] and mod["style"] == "full-model" and mod["model_name"] == "default"
    main = mod["memory"]["functions"]["main"][0]
    assert main["workspace_size_bytes"] == report["arena_bytes"]
    assert main["constants_size_bytes"] == report["weights_bytes"]
    assert main["inputs"]["input"] == {"size": report["seq_len"] * 40 * 4, "dtype": "float32"}
    assert main["outputs"]["output"] == {"size": 10 * 4, "dtype": "float32"}
    assert main["io_size_bytes"] == main["inputs"]["input"]["size"] + 40
    pools = {p["pool_name"]: p["size_bytes"] for p in mod["memory"]["pools"]}
    assert pools == {"tvmgen_default_arena": report["arena_bytes"], "tvmgen_default_state": report["state_bytes"]}
    plan = json.loads((out / "model" / "plan.json").read_text())
    kernels = {c["kernel"] for p in plan["programs"].values() for c in p["calls"]}
    assert {f["function_name"] for f in mod["memory"]["functions"]["operator_functions"]} == {
        f"tvmgen_default_{k}" for k in kernels}
    src = (mlf / "codegen" / "host" / "src")
    kernels_c = (src / "default_lib1.c").read_text()
    for k in kernels:  # every operator function named in metadata.json is defined in the sources
        assert f" tvmgen_default_{k}(" in kernels_c
    # parameters: TVM's own param-dict reader, the constants' bytes sum to the weights
    params = tvm.runtime.load_param_dict((mlf / "parameters" / "default.params").read_bytes())
    assert sum(v.numpy().nbytes for v in params.values()) == report["weights_bytes"]
    assert json.loads((mlf / "src" / "default.plan.json").read_text())["arena_bytes"] == report["arena_bytes"]
    # codegen/host: compiles against its own include dir and gives the build's logits
    exe = tmp_path / "mlf_runner"
    from mamba_tvm.codegen import STRICT_C99

    proc = subprocess.run(["gcc", *STRICT_C99, "-O2", "-I", str(mlf / "codegen/host/include"),
                           *map(str, sorted(src.glob("*.c"))), str(ROOT / "runtime_c" / "host_main.c"),
                           "-o", str(exe), "-lm"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    with np.load(DATA / "mambalite_kws10.npz") as f:
        sample = np.asarray(f["sample_input"], dtype=np.float32)
    sample.tofile(tmp_path / "in.bin")
    assert subprocess.run([str(exe), str(tmp_path / "in.bin"), str(tmp_path / "out.bin")]).returncode == 0
    np.testing.assert_array_equal(np.fromfile(tmp_path / "out.bin", dtype=np.float32),
                                  np.asarray(report["logits"], dtype=np.float32))
    assert "#include \"model.h\"" in (mlf / "codegen/host/include/tvmgen_default.h").read_text()


def test_zephyr_module_structure(built):
    import yaml

    import boards
    from mamba_tvm.project.zephyr_check import parse_cmake
    from mamba_tvm.project.zephyr_module import check_zephyr_module

    report, out = built
    module = Path(report["zephyr_module"])
    assert module == out / "zephyr_module"
    meta = yaml.safe_load((module / "zephyr" / "module.yml").read_text())
    assert meta == {"name": "mamba_tvm_model", "build": {"cmake": ".", "kconfig": "Kconfig"}}
    cmds = parse_cmake((module / "CMakeLists.txt").read_text())
    sources = next(a for n, a in cmds if n == "zephyr_library_sources")
    assert sorted(sources) == ["src/model.c", "src/model_kernels.c"]
    assert "config MAMBA_TVM_MODEL\n" in (module / "Kconfig").read_text()
    for name in ("mps2_an500", "nucleo_h743zi"):  # the C (made for the M7 core) compiles for both M7 boards
        assert check_zephyr_module(module, boards.load_board(name)) == []


def test_zephyr_module_check_finds_faults(built, tmp_path):
    import shutil

    import boards
    from mamba_tvm.project.zephyr_module import check_zephyr_module

    _, out = built
    board = boards.load_board("mps2_an500")
    faults = {
        "missing source": lambda m: (m / "src" / "model_kernels.c").unlink(),
        "bad Kconfig": lambda m: (m / "Kconfig").write_text((m / "Kconfig").read_text().replace("\tbool", "bool")),
        "undefined symbol": lambda m: (m / "CMakeLists.txt").write_text(
            (m / "CMakeLists.txt").read_text().replace("if(CONFIG_MAMBA_TVM_MODEL)", "if(CONFIG_MAMBA_TVM_MDL)")),
        "app cmake": lambda m: (m / "CMakeLists.txt").write_text("project(x)\n" + (m / "CMakeLists.txt").read_text()),
        "module.yml": lambda m: (m / "zephyr" / "module.yml").write_text("name: x\nbuild:\n  kconfig: Kconfig.missing\n"),
        "C error": lambda m: (m / "src" / "model.c").write_text((m / "src" / "model.c").read_text() + "\nint x = ;\n"),
        "zephyr include": lambda m: (m / "include" / "model.h").write_text(
            "#include <zephyr/kernel.h>\n" + (m / "include" / "model.h").read_text()),
    }
    for name, fault in faults.items():
        module = tmp_path / name.replace(" ", "_")
        shutil.copytree(out / "zephyr_module", module)
        fault(module)
        assert check_zephyr_module(module, board), f"fault not found: {name}"


def test_unknown_emit_is_one_error_line(tmp_path):
    proc = _build(tmp_path / "o", "--emit", "tflite")
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1
    assert proc.stderr.startswith("error: argument --emit: invalid choice")
    assert not (tmp_path / "o").exists()
