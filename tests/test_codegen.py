"""Properties of the generated C: portable, strict-warning clean, no runtime, no big stack,
no materialized discretization, and an arena that fits the promise."""
import re
import shutil
import subprocess

import pytest

import boards
from mamba_tvm.codegen import STRICT_C99
from mamba_tvm.project.stack_usage import model_stack_bytes, stack_usage

_S3 = boards.load_board("esp32s3_devkitc")
COMPILERS = {
    "gcc": ["gcc", "-O2"],
    "clang": ["clang", "-O2"],
    "arm-none-eabi-gcc": ["arm-none-eabi-gcc", "-mcpu=cortex-m7", "-mthumb", "-mfpu=fpv5-d16", "-mfloat-abi=hard", "-O2"],
    "clang-22-xtensa-lx7": [_S3.cc, *_S3.cflags],  # the ESP32-S3's LX7 with its FPU
}


VARIANTS = [("kws10", "sequence", "timestep"), ("kws10", "sequence", "layer"), ("two_blocks", "stream", "timestep")]


@pytest.mark.parametrize("compiler", sorted(COMPILERS))
@pytest.mark.parametrize("name, mode, fusion", VARIANTS)
def test_strict_c99_on_every_compiler(built, name, mode, fusion, compiler, tmp_path):
    cmd = COMPILERS[compiler]
    assert shutil.which(cmd[0]), f"{cmd[0]} missing: run tools/setup.sh"
    b = built(name, mode, fusion)
    for f in b.compiled.c_files:
        proc = subprocess.run([*cmd, *STRICT_C99, "-I", str(b.model_dir), "-c", str(b.model_dir / f),
                               "-o", str(tmp_path / (f + ".o"))], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr


def test_no_tvm_runtime_in_generated_c(built):
    b = built("kws10")
    for name, text in b.compiled.sources.items():
        assert "tvm/" not in text and "TVMFFI" not in text and "DLTensor" not in text, name
        assert not re.search(r"\b(malloc|calloc|realloc|free)\s*\(", text), name
    header = b.compiled.sources["model.h"]
    for api in ("struct tvmgen_default_inputs", "struct tvmgen_default_outputs", "tvmgen_default_run(",
                "#define TVMGEN_DEFAULT_WORKSPACE_SIZE"):
        assert api in header


@pytest.mark.parametrize("fusion", ["timestep", "layer"])
def test_kws10_arena_below_200k_and_no_discretization_tensor(built, fusion):
    b = built("kws10", fusion=fusion)
    p, spec = b.compiled.program, b.spec
    assert p.arena_bytes < 200 * 1024, p.arena_bytes
    assert f"#define TVMGEN_DEFAULT_WORKSPACE_SIZE {p.arena_bytes}" in b.compiled.sources["model.h"]
    t, di, ds = 100, spec.d_inner, spec.d_state
    for tensor in p.arena_tensors():
        n = 1
        for s in tensor.shape:
            n *= s
        assert n < t * di * ds // 4, f"{tensor.name} {tensor.shape} is a discretization-sized tensor"
        assert not (di in tensor.shape and ds in tensor.shape and t in tensor.shape)


@pytest.mark.parametrize("name, mode, fusion", VARIANTS)
def test_kernel_stack_below_1k(built, name, mode, fusion):
    b = built(name, mode, fusion)
    temporaries = b.compiled.kernel_temporaries()
    assert sum(temporaries.values()) < 1024, temporaries
    usage = stack_usage(b.model_dir, b.compiled.c_files, "arm-none-eabi-gcc", COMPILERS["arm-none-eabi-gcc"][1:])
    assert set(usage) >= {f"tvmgen_default_{k}" for k in b.compiled.kernels}
    assert model_stack_bytes(usage) < 1024, usage


def test_memory_floor_kws10(built):
    """Time-step fusion: arena + state + stack within 32 KB for whole-sequence inference and
    16 KB streaming (the input stays in the caller's buffer); no tensor has a time axis."""
    for mode, limit in (("sequence", 32 * 1024), ("stream", 16 * 1024)):
        b = built("kws10", mode)
        c = b.compiled
        usage = stack_usage(b.model_dir, c.c_files, "arm-none-eabi-gcc", COMPILERS["arm-none-eabi-gcc"][1:])
        total = c.arena_bytes + c.state_bytes + model_stack_bytes(usage)
        assert total <= limit, (mode, c.arena_bytes, c.state_bytes)
        spec = b.spec
        # the step counter, the pooled scan output (out_proj runs after the mean), conv window, scan state
        floats = 1 + spec.d_inner + spec.d_inner * (spec.d_conv - 1 + spec.d_state)  # + the step counter
        assert c.state_bytes == -(-4 * floats // 8) * 8  # the struct is 8-byte aligned
        for p in c.programs.values():
            assert all(100 not in t.shape for t in p.tensors.values() if t.kind != "const")


@pytest.mark.parametrize("name, mode, fusion", VARIANTS)
def test_header_sizes_are_bytes_as_in_microtvm(built, name, mode, fusion, tmp_path):
    """Every TVMGEN_DEFAULT_*_SIZE is in bytes (microTVM's convention), element counts are
    *_ELEMS: a buffer declared `uint8_t buf[TVMGEN_DEFAULT_INPUT_SIZE]` holds the whole input.
    Checked by the C compiler itself, against the plan's shapes."""
    b = built(name, mode, fusion)
    spec, c = b.spec, b.compiled
    checks = [("TVMGEN_DEFAULT_OUTPUT_SIZE", 4 * spec.n_classes), ("TVMGEN_DEFAULT_OUTPUT_ELEMS", spec.n_classes),
              ("TVMGEN_DEFAULT_FEATURES", spec.n_features), ("TVMGEN_DEFAULT_WORKSPACE_SIZE", c.arena_bytes)]
    if mode == "stream":
        checks += [("TVMGEN_DEFAULT_FRAME_SIZE", 4 * spec.n_features), ("TVMGEN_DEFAULT_FRAME_ELEMS", spec.n_features),
                   ("TVMGEN_DEFAULT_STATE_SIZE", c.state_bytes), ("TVMGEN_DEFAULT_STREAM", 1)]
    else:
        checks += [("TVMGEN_DEFAULT_SEQ_LEN", c.seq_len), ("TVMGEN_DEFAULT_INPUT_ELEMS", c.seq_len * spec.n_features),
                   ("TVMGEN_DEFAULT_INPUT_SIZE", 4 * c.seq_len * spec.n_features)]
    src = tmp_path / "sizes.c"
    src.write_text('#include "model.h"\n' + "".join(
        f"typedef char check_{i}[({macro} == {value}) ? 1 : -1];\n" for i, (macro, value) in enumerate(checks)))
    proc = subprocess.run(["gcc", *STRICT_C99, "-Wno-unused-local-typedefs", "-I", str(b.model_dir), "-c", str(src),
                           "-o", str(tmp_path / "sizes.o")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
