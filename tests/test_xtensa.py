"""The second tested core: an Xtensa LX7 with FPU (QEMU sim, de233_fpu), stand-in for the ESP32-S3.

- every kernel form the compiler produces compiles -Werror with clang-22 for the S3's and the
  emulated core's ISA options, and links against runtime_c/minilibc alone;
- no choice between two float constants reaches the C (LLVM 22 for Xtensa crashes on it);
- the fixtures and the random-shape models run on the emulated LX7 with parity in fp32, int8,
  stream and layer forms (RPC firmware, several inputs each);
- `python -m mamba_tvm.build --target qemu/xtensa_lx7 --run` reports the M7 target's fields,
  an instruction count identical on a second run, the device stack, no heap;
- `python -m mamba_tvm.profile --target qemu/xtensa_lx7`: per-kernel counts that add up to the
  run within 1 %, identical runs, --inputs parity;
- a fault on the device (an instruction de233_fpu lacks) ends the run with a FAULT line.
"""
import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

import boards
from mamba_tvm.codegen import STRICT_C99
from mamba_tvm.codegen.plain_c import emit_kernels_c
from mamba_tvm.device.qemu import run_elf
from mamba_tvm.device.qemu_rpc import QemuRpc
from mamba_tvm.driver import DEFAULT_MODEL, build
from mamba_tvm.errors import DeviceError
from mamba_tvm.frontend import reference_logits
from mamba_tvm.project.baremetal import build_elf, elf_forbidden_symbols, write_baremetal_project
from mamba_tvm.project.rpc_firmware import build_rpc_firmware
from tests.conftest import FIXTURES, RANDOM_MODELS, inputs_like

LX7 = boards.load_board("xtensa_lx7")
S3 = boards.load_board("esp32s3_devkitc")
MODELS = [*FIXTURES, *sorted(RANDOM_MODELS)]
#: (mode, fusion, weights): every combination the compiler accepts (streaming needs time-step fusion)
FORMS = [("sequence", "timestep", "fp32"), ("sequence", "layer", "fp32"), ("stream", "timestep", "fp32"),
         ("sequence", "timestep", "int8"), ("sequence", "layer", "int8"), ("stream", "timestep", "int8")]
DEVICE_FORMS = [("sequence", "timestep", "fp32"), ("sequence", "timestep", "int8"),
                ("stream", "timestep", "fp32"), ("sequence", "layer", "fp32")]
#: what the model C may call on the LX7: runtime_c/minilibc's functions
MINILIBC = {"expf", "logf", "log1pf", "fabsf", "sqrtf", "__divsf3", "memset", "memcpy", "memmove", "strlen"}
FLOAT_LITERAL = r"(?:-?\d+\.\d+e[+-]\d+f|-?INFINITY|NAN|-?0x[0-9a-fp.+-]+f)"
CONSTANT_SELECT = re.compile(rf"\?\s*\(?{FLOAT_LITERAL}\)?\s*:\s*\(?{FLOAT_LITERAL}\)?")


def parity(got: np.ndarray, ref: np.ndarray) -> float:
    """The project's bound: max |err| <= 1e-5 * max(1, max |reference|), argmax identical where the
    reference's top-two margin exceeds that bound. Returns the error for reporting."""
    tol = 1e-5 * max(1.0, float(np.max(np.abs(ref))))
    err = float(np.max(np.abs(got - ref)))
    assert err <= tol, (err, tol, got, ref)
    top2 = np.sort(ref)[-2:]
    if top2[1] - top2[0] > tol:
        assert np.argmax(got) == np.argmax(ref)
    return err


def _nm(obj: Path, *flags: str) -> set[str]:
    out = subprocess.run(["llvm-nm-22", *flags, str(obj)], capture_output=True, text=True, check=True).stdout
    return {line.split()[-1] for line in out.splitlines() if line.strip()}


# ---- the C: every form compiles for the LX7, links against minilibc, has no constant select ---------

@pytest.mark.parametrize("mode, fusion, weights", FORMS)
@pytest.mark.parametrize("name", MODELS)
def test_every_kernel_form_compiles_for_lx7(built, name, mode, fusion, weights, tmp_path):
    b = built(name, mode, fusion, weights)
    for c_file in b.compiled.c_files:
        assert not CONSTANT_SELECT.search(b.compiled.sources[c_file]), c_file
    for board in (S3, LX7):  # the real chip's ISA options, and the emulated core's
        defined, undefined = set(), set()
        for c_file in b.compiled.c_files:
            obj = tmp_path / f"{board.name}_{c_file}.o"
            proc = subprocess.run([board.cc, *board.cflags, *STRICT_C99, "-I", str(b.model_dir), "-c",
                                   str(b.model_dir / c_file), "-o", str(obj)], capture_output=True, text=True)
            assert proc.returncode == 0, f"{board.name} {c_file}: {proc.stderr}"
            defined |= _nm(obj, "--defined-only")
            undefined |= _nm(obj, "--undefined-only")
        assert undefined - defined <= MINILIBC, sorted(undefined - defined - MINILIBC)


def _constant_select_kernel():
    from tvm.script import tirx as T

    @T.prim_func
    def kernel(x: T.Buffer((6,), "float32"), y: T.Buffer((6,), "float32")):
        T.func_attr({"global_symbol": "sign_and_step"})
        for i in range(6):
            y[i] = (T.Select(x[i] > T.float32(0), T.float32(1), T.float32(-1))
                    + T.if_then_else(x[i] < T.float32(2), T.float32(0.25), T.float32(-3.5)))

    return kernel


def test_float_constant_selects_are_emitted_as_tables(tmp_path):
    """A kernel choosing between float constants (a sign, a step) compiles with clang-22 for the LX7
    at every -O level and computes the right values on the host; the plain ternary LLVM 22 would
    get instead crashes it (the reason for SelectFloatConstantsFromTable)."""
    import tvm

    src, _ = emit_kernels_c(tvm.IRModule({"sign_and_step": _constant_select_kernel()}))
    assert not CONSTANT_SELECT.search(src) and "mamba_select_3f800000_bf800000" in src, src
    c = tmp_path / "k.c"
    c.write_text("#include <stdbool.h>\n#include <stdint.h>\n" + src)
    for board in (S3, LX7):
        for opt in ("-O1", "-O2", "-O3", "-Os"):
            proc = subprocess.run([board.cc, *board.cflags, opt, *STRICT_C99, "-c", str(c), "-o", str(tmp_path / "k.o")],
                                  capture_output=True, text=True)
            assert proc.returncode == 0, f"{board.name} {opt}: {proc.stderr[-2000:]}"
    main = tmp_path / "main.c"
    main.write_text('#include <stdio.h>\nvoid sign_and_step(float* restrict x, float* restrict y);\n'
                    'int main(void) { float x[6] = {-5.0f, -0.0f, 0.0f, 1.0f, 2.0f, 3.0f}, y[6]; int i;\n'
                    '  sign_and_step(x, y); for (i = 0; i < 6; i++) printf("%a\\n", (double)y[i]); return 0; }\n')
    subprocess.run(["gcc", *STRICT_C99, "-O2", str(c), str(main), "-o", str(tmp_path / "host")], check=True)
    got = [float.fromhex(v) for v in subprocess.run([str(tmp_path / "host")], capture_output=True, text=True,
                                                    check=True).stdout.split()]
    x = np.array([-5.0, -0.0, 0.0, 1.0, 2.0, 3.0])
    assert got == list(np.where(x > 0, 1.0, -1.0) + np.where(x < 2, 0.25, -3.5))
    raw = tmp_path / "raw.c"  # what CodeGenC prints without the pass
    raw.write_text("float sign(float x) { return (0.000000e+00f < x) ? 1.000000e+00f : -1.000000e+00f; }\n")
    proc = subprocess.run([LX7.cc, *LX7.cflags, "-c", str(raw), "-o", str(tmp_path / "raw.o")],
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "Cannot select" in proc.stderr, "LLVM 22 compiles it now: the pass can go"


# ---- on the emulated LX7: parity in every execution form -------------------------------------------

def _like(sample: np.ndarray, n: int, seed: int) -> np.ndarray:
    """n inputs drawn like the sample (its per-feature mean and std)."""
    return inputs_like(sample, n, seed)


def _inputs(b, name: str) -> np.ndarray:
    """The model's sample and inputs drawn like it (the random models carry calibrated samples)."""
    return np.concatenate([b.spec.sample_input, _like(b.spec.sample_input, 2, seed=3)])


@pytest.mark.parametrize("mode, fusion, weights", DEVICE_FORMS)
@pytest.mark.parametrize("name", MODELS)
def test_parity_on_lx7(built, name, mode, fusion, weights, tmp_path):
    b = built(name, mode, fusion, weights)
    elf = build_rpc_firmware(tmp_path, b.model_dir, b.compiled, b.spec.name, "semihost", profile=False,
                             cflags=list(LX7.cflags), core=LX7.core)
    assert elf_forbidden_symbols(elf) == []
    x = _inputs(b, name)
    ref = b.reference(x)  # the independent float64 reference of this form (int8: fold, then quantize)
    with QemuRpc(elf, "semihost", timeout=10.0) as q:
        assert q.session.info().unit == "instructions"
        errs = [parity(q.session.infer(xi[None])[0], ri) for xi, ri in zip(x, ref)]
    print(f"{name} {mode}/{fusion}/{weights} on LX7: max |err| {max(errs):.2e} vs float64")


# ---- the build CLI's target and the profiler ---------------------------------------------------------

@pytest.fixture(scope="module")
def lx7_report(tmp_path_factory):
    return build(target="qemu/xtensa_lx7", model=DEFAULT_MODEL, out=tmp_path_factory.mktemp("lx7") / "out", run=True)


def test_build_run_reports_like_the_m7_target(lx7_report, tmp_path):
    r = lx7_report
    m7 = build(target="qemu/mps2_an500", model=DEFAULT_MODEL, out=tmp_path / "m7", run=True)
    assert set(r) == set(m7) and r["logits_from"] == "qemu" and r["placement"] == "SYSRAM_DATA"
    spec = _kws10_spec()
    parity(np.array(r["logits"], np.float32), reference_logits(spec, spec.sample_input, torch.float64)[0])
    assert r["argmax"] == r["argmax_torch"] == m7["argmax"]
    assert r["instructions"] > m7["instructions"]  # 32 windowed registers, libcalls for division: more instructions
    assert 0 < r["device_stack_bytes"] < 1024 and r["stack_bytes"] > 0 and r["model_flash_bytes"] > r["weights_bytes"]
    elf = Path(r["elf"])
    assert elf_forbidden_symbols(elf) == []
    again = run_elf(elf)  # `--run` a second time: the same count, the same bits
    assert again.instructions == r["instructions"]
    assert np.array_equal(again.logits, np.array(r["logits"], np.float32))


def _kws10_spec():
    from mamba_tvm.frontend import load_checkpoint

    return load_checkpoint(DEFAULT_MODEL)


def test_build_cli_json(lx7_report):
    """The CLI itself: one JSON line on stdout (a second process, as a user runs it twice)."""
    import sys

    proc = subprocess.run([sys.executable, "-m", "mamba_tvm.build", "--target", "qemu/xtensa_lx7", "--run", "--out",
                           str(Path(lx7_report["out_dir"]).parent / "cli")], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1], timeout=600)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["instructions"] == lx7_report["instructions"] and report["logits"] == lx7_report["logits"]


def test_profile_on_lx7(tmp_path, capsys):
    from mamba_tvm.profile import main

    x = np.concatenate([_kws10_spec().sample_input, _like(_kws10_spec().sample_input, 2, seed=9)])
    np.savez(tmp_path / "in.npz", inputs=x)
    out = tmp_path / "profile.json"
    assert main(["--target", "qemu/xtensa_lx7", "--repeat", "2", "--json", str(out), "--inputs",
                 str(tmp_path / "in.npz")]) == 0
    report = json.loads(out.read_text())
    assert report["unit"] == "instructions" and len(set(report["runs"])) == 1  # two runs, identical counts
    assert abs(report["total"] - report["kernels_sum"]) <= 0.01 * report["total"]
    assert any("scan_step" in k["name"] for k in report["kernels"])  # kernels are named after their layers
    assert report["inputs"]["n"] == 3 and report["inputs"]["argmax_agreement"] == 1.0
    ref = reference_logits(_kws10_spec(), x).reshape(3, -1)
    assert report["inputs"]["max_abs_err_vs_torch"] <= 1e-5 * max(1.0, float(np.abs(ref).max()))
    printed = capsys.readouterr().out
    assert "QEMU xtensa_lx7 over semihost" in printed and "identical" in printed


def test_profile_refuses_uart_on_lx7(capsys):
    from mamba_tvm.profile import main

    assert main(["--target", "qemu/xtensa_lx7", "--transport", "uart"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "semihost" in err[0], err


# ---- faults -----------------------------------------------------------------------------------------

MULHI_MODEL_H = """#ifndef MODEL_H_
#define MODEL_H_
#include <stdint.h>
struct tvmgen_default_inputs { float* input; };
struct tvmgen_default_outputs { float* output; };
int32_t tvmgen_default_run(struct tvmgen_default_inputs* inputs, struct tvmgen_default_outputs* outputs);
#define TVMGEN_DEFAULT_INPUT_ELEMS 2
#define TVMGEN_DEFAULT_OUTPUT_ELEMS 1
#endif
"""
MULHI_MODEL_C = """#include "model.h"
int32_t tvmgen_default_run(struct tvmgen_default_inputs* inputs, struct tvmgen_default_outputs* outputs) {
  volatile uint32_t a = (uint32_t)(inputs->input[0] * 1e9f), b = (uint32_t)(inputs->input[1] * 1e9f);
  outputs->output[0] = (float)(uint32_t)(((uint64_t)a * b) >> 32);  /* MULUH with +mul32high */
  return 0;
}
"""


def test_instruction_the_core_lacks_is_a_device_fault(tmp_path):
    """Built for the S3's ISA (MUL32_HIGH), the code uses MULUH, which de233_fpu lacks: the run ends
    with a FAULT line naming the exception (UserException vector, IllegalInstruction cause 0) and
    where, not a hang or a wrong number. (Without MUL32_HIGH the same C needs __muldi3, which no runtime here provides.)"""
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.h").write_text(MULHI_MODEL_H)
    (model / "model.c").write_text(MULHI_MODEL_C)
    flags = list(LX7.cflags) + ["-Xclang", "-target-feature", "-Xclang", "+mul32high"]
    write_baremetal_project(tmp_path, ["model/model.c"], np.array([[[2.0, 3.0]]], np.float32), flags, core=LX7.core)
    elf = build_elf(tmp_path)
    dis = subprocess.run(["llvm-objdump-22", "-d", "--mattr=+mul32high", str(elf)], capture_output=True, text=True).stdout
    assert "muluh" in dis
    with pytest.raises(DeviceError, match=r"FAULT vector=0x00000340 exccause=0x00000000 pc=[0-9a-f]{8}") as exc:
        run_elf(elf, timeout=30)
    assert len(str(exc.value)) < 5000
