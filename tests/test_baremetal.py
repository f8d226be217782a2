"""The bare-metal M7 harness end to end: write, build and run a fake model on QEMU mps2-an500.

Nothing is skipped: without arm-none-eabi-gcc or qemu-system-arm these tests fail,
because the compiler's correctness claims rest on this harness.
"""

import ctypes
import ctypes.util
import shutil

import numpy as np
import pytest

from mamba_tvm.device.qemu import parse_output, qemu_available, run_elf
from mamba_tvm.errors import BuildError, DeviceError
from mamba_tvm.project.baremetal import (
    build_elf,
    elf_forbidden_symbols,
    elf_size,
    write_baremetal_project,
)

N = 8
# Ordinary values plus bit patterns a decimal round trip would get wrong.
SAMPLE = np.array([0.5, -3.0, 4.5, 0.1, -20.0, -0.0, 1e-45, 3.4028235e38], dtype=np.float32)

MODEL_H = """#ifndef MODEL_H_
#define MODEL_H_
#include <stdint.h>
struct tvmgen_default_inputs { float* input; };
struct tvmgen_default_outputs { float* output; };
int32_t tvmgen_default_run(struct tvmgen_default_inputs* inputs, struct tvmgen_default_outputs* outputs);
#define TVMGEN_DEFAULT_INPUT_ELEMS %d
#define TVMGEN_DEFAULT_OUTPUT_ELEMS %d
#endif
"""

# output[i] = expf(input[i]); output[N + i] = input[i] (checks the transport of raw bits).
KERNELS_C = """#include <math.h>
#include <stdint.h>
void fake_exp(const float* x, float* y, int32_t n) {
  int32_t i;
  for (i = 0; i < n; i++) y[i] = expf(x[i]);
}
"""

MODEL_C = """#include "model.h"
void fake_exp(const float* x, float* y, int32_t n);
int32_t tvmgen_default_run(struct tvmgen_default_inputs* inputs, struct tvmgen_default_outputs* outputs) {
  int32_t i;
  fake_exp(inputs->input, outputs->output, TVMGEN_DEFAULT_INPUT_ELEMS);
  for (i = 0; i < TVMGEN_DEFAULT_INPUT_ELEMS; i++) outputs->output[TVMGEN_DEFAULT_INPUT_ELEMS + i] = inputs->input[i];
  return 0;
}
"""

# Links because it supplies _sbrk; must be caught by elf_forbidden_symbols.
MALLOC_C = """#include <stddef.h>
#include <stdlib.h>
#include "model.h"
static char arena[4096];
static size_t arena_used;
void* _sbrk(ptrdiff_t inc);
void* _sbrk(ptrdiff_t inc) {
  void* p = &arena[arena_used];
  arena_used += (size_t)inc;
  return p;
}
int32_t tvmgen_default_run(struct tvmgen_default_inputs* inputs, struct tvmgen_default_outputs* outputs) {
  int32_t i;
  float* tmp = malloc(sizeof(float) * TVMGEN_DEFAULT_INPUT_ELEMS);
  if (tmp == NULL) return 1;
  for (i = 0; i < TVMGEN_DEFAULT_INPUT_ELEMS; i++) tmp[i] = inputs->input[i];
  for (i = 0; i < TVMGEN_DEFAULT_OUTPUT_ELEMS; i++) outputs->output[i] = tmp[i % TVMGEN_DEFAULT_INPUT_ELEMS];
  free(tmp);
  return 0;
}
"""

RUN_SIGNATURE = (
    "int32_t tvmgen_default_run(struct tvmgen_default_inputs* inputs, struct tvmgen_default_outputs* outputs)"
)


def _write_model(d, files, n_in=N, n_out=2 * N):
    d.mkdir(parents=True, exist_ok=True)
    (d / "model.h").write_text(MODEL_H % (n_in, n_out))
    for name, text in files.items():
        (d / name).write_text(text)
    return d


def _host_expf(x: np.ndarray) -> np.ndarray:
    """expf from the host C library (glibc): the same ARM optimized-routines code as newlib's.

    numpy is not a bit-exact reference here: its SIMD expf differs from the C
    library by up to 2 ulp on about a third of inputs.
    """
    libm = ctypes.CDLL(ctypes.util.find_library("m"))
    libm.expf.restype = ctypes.c_float
    libm.expf.argtypes = [ctypes.c_float]
    return np.array([libm.expf(float(v)) for v in x], dtype=np.float32)


@pytest.fixture(scope="module")
def fake_elf(tmp_path_factory):
    out = _write_model(tmp_path_factory.mktemp("fake"), {"model.c": MODEL_C, "kernels.c": KERNELS_C})
    write_baremetal_project(out, ["model.c", "kernels.c"], SAMPLE)
    return build_elf(out)


def test_toolchain_present():
    assert shutil.which("arm-none-eabi-gcc"), "apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi"
    assert qemu_available(), "apt-get install qemu-system-arm"


def test_project_layout(fake_elf):
    project = fake_elf.parent
    for name in ("startup_m7.c", "board_mps2_an500.c", "board.h", "main_run_once.c", "mps2_an500.ld",
                 "sample_input.h", "Makefile", "model.elf", "model.map"):
        assert (project / name).is_file(), name
    assert "../model.c ../kernels.c" in (project / "Makefile").read_text()


def test_logits_bit_exact(fake_elf):
    result = run_elf(fake_elf)
    assert result.rc == 0
    assert result.logits.dtype == np.float32 and result.logits.shape == (2 * N,)
    got = result.logits.view(np.uint32)
    np.testing.assert_array_equal(got[N:], SAMPLE.view(np.uint32))  # input bits survive the trip
    np.testing.assert_array_equal(got[:N], _host_expf(SAMPLE).view(np.uint32))
    with np.errstate(over="ignore"):  # expf(FLT_MAX) is +inf on both sides
        ref = np.exp(SAMPLE)
    ulp = np.abs(got[:N].astype(np.int64) - ref.view(np.uint32).astype(np.int64))
    assert ulp.max() <= 2


def test_instruction_count_repeatable(fake_elf):
    a, b = run_elf(fake_elf), run_elf(fake_elf)
    assert a.ticks == b.ticks and a.instructions == b.instructions
    assert a.instructions == a.ticks * 40
    assert 10 * N <= a.instructions <= 400 * N  # a newlib expf is ~45 instructions


def test_stack_used_plausible(fake_elf):
    result = run_elf(fake_elf)
    assert result.stack_at_call is not None and result.stack_used is not None
    assert 0 < result.stack_at_call < result.stack_used < 1024
    assert result.stack_reserved == 0x10000 and not result.stack_overflow


def test_no_heap_symbols(fake_elf):
    assert elf_forbidden_symbols(fake_elf) == []
    size = elf_size(fake_elf)
    assert 0 < size["text"] < 64 * 1024


def test_heap_symbols_detected(tmp_path):
    out = _write_model(tmp_path, {"model.c": MALLOC_C})
    write_baremetal_project(out, ["model.c"], SAMPLE)
    elf = build_elf(out)
    found = elf_forbidden_symbols(elf)
    assert "malloc" in found and "free" in found
    assert run_elf(elf).rc == 0  # it does run; only the audit rejects it


def test_compiler_error_is_build_error(tmp_path):
    out = _write_model(tmp_path, {"model.c": '#include "model.h"\n' + RUN_SIGNATURE + " { int unused; return 0; }\n"})
    write_baremetal_project(out, ["model.c"], SAMPLE)
    with pytest.raises(BuildError, match="unused"):
        build_elf(out)


def test_fault_is_device_error(tmp_path):
    body = " { (void)inputs; (void)outputs; __builtin_trap(); return 0; }\n"
    out = _write_model(tmp_path, {"model.c": '#include "model.h"\n' + RUN_SIGNATURE + body})
    write_baremetal_project(out, ["model.c"], SAMPLE)
    with pytest.raises(DeviceError, match="FAULT"):
        run_elf(build_elf(out))


def test_model_rc_is_device_error(tmp_path):
    body = " { (void)inputs; (void)outputs; return -7; }\n"
    out = _write_model(tmp_path, {"model.c": '#include "model.h"\n' + RUN_SIGNATURE + body})
    write_baremetal_project(out, ["model.c"], SAMPLE)
    elf = build_elf(out)
    with pytest.raises(DeviceError, match="returned -7"):
        run_elf(elf)
    result = run_elf(elf, check_rc=False)
    assert result.rc == -7
    assert (result.logits.view(np.uint32) == 0x7FC0DEAD).all()  # unwritten outputs are marked


def test_sample_input_size_checked(tmp_path):
    out = _write_model(tmp_path, {"model.c": MODEL_C, "kernels.c": KERNELS_C})
    write_baremetal_project(out, ["model.c", "kernels.c"], SAMPLE[:3])
    with pytest.raises(BuildError, match="sample_input_size_matches_model"):
        build_elf(out)


def test_missing_done_is_device_error():
    with pytest.raises(DeviceError, match="DONE"):
        parse_output("LOGIT 0 3f800000\nTICKS 3\nRC 0\n")
