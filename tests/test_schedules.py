"""Schedule records and the rules they drive: unrolling keeps results bit-identical and
costs fewer instructions on the M7."""
import numpy as np
import pytest

from mamba_tvm.compiler import compile_model
from mamba_tvm.device.host import build_host_runner, run_host
from mamba_tvm.device.qemu import run_elf
from mamba_tvm.pipeline import mcu_pipeline
from mamba_tvm.project.baremetal import build_elf, write_baremetal_project
from schedules import DEFAULT, load_schedule


def test_records_per_core():
    m7, lx7 = load_schedule("cortex-m7"), load_schedule("xtensa-lx7")
    assert m7["matvec_block"] > 1 and m7["fma"] and m7["exp"] == "table1024" and m7["fminmax"] and m7["pair_loads"]
    # LLVM 22 calls fmaf on Xtensa; the LX7 has no libm (no fmaxf either), no 64-bit FP load
    assert not lx7["fma"] and lx7["exp"] == "poly6" and not lx7["fminmax"] and not lx7["pair_loads"]
    assert load_schedule("no-such-core") == DEFAULT


def test_unrolling_is_bit_identical_and_cheaper(built, tmp_path):
    spec = built("har6").spec
    x = spec.sample_input
    runs = {}
    for unroll in (1, 4):
        compiled = compile_model(spec, x.shape[1], pipeline=mcu_pipeline(unroll=unroll, matvec_block=1))
        out = tmp_path / f"u{unroll}"
        compiled.write(out / "model")
        host = run_host(build_host_runner(out / "model", compiled.c_files), x)
        write_baremetal_project(out, [f"model/{f}" for f in compiled.c_files], x)
        runs[unroll] = (host, run_elf(build_elf(out)))
    assert np.array_equal(runs[1][0].view(np.uint32), runs[4][0].view(np.uint32))
    assert np.array_equal(runs[1][1].logits.view(np.uint32), runs[4][1].logits.view(np.uint32))
    assert runs[4][1].instructions < runs[1][1].instructions


def test_float_min_max_is_bit_identical_and_cheaper(built, tmp_path):
    """FloatMinMax (fminmax): fmaxf/fminf instead of compare-and-select, the same bits on the
    host and on the M7, fewer instructions there (VMAXNM/VMINNM)."""
    spec = built("har6").spec
    x = spec.sample_input
    runs = {}
    for on in (False, True):
        compiled = compile_model(spec, x.shape[1], pipeline=mcu_pipeline(**{**load_schedule("cortex-m7"), "fminmax": on}))
        assert ("fmaxf(" in compiled.sources["model_kernels.c"]) == on
        out = tmp_path / f"m{on}"
        compiled.write(out / "model")
        host = run_host(build_host_runner(out / "model", compiled.c_files), x)
        write_baremetal_project(out, [f"model/{f}" for f in compiled.c_files], x)
        runs[on] = (host, run_elf(build_elf(out)))
    assert np.array_equal(runs[False][0].view(np.uint32), runs[True][0].view(np.uint32))
    assert np.array_equal(runs[False][1].logits.view(np.uint32), runs[True][1].logits.view(np.uint32))
    assert runs[True][1].instructions < runs[False][1].instructions


def test_unknown_schedule_key_is_refused(tmp_path, monkeypatch):
    import schedules

    (tmp_path / "weird.toml").write_text("unrol = 4\n")
    monkeypatch.setattr(schedules, "SCHEDULE_DIR", tmp_path)
    with pytest.raises(ValueError, match="unknown schedule keys"):
        schedules.load_schedule("weird")
