"""The generated model on an emulated Cortex-M7 (QEMU mps2-an500, nucleo_h743zi flags)."""
import numpy as np
import pytest

import boards
from mamba_tvm.device.qemu import run_elf
from mamba_tvm.project.baremetal import build_elf, elf_forbidden_symbols, write_baremetal_project
from tests.conftest import DATA, PUBLISHED_F64, inputs_like
from tests.reference_f64 import parity_errors

H7_FLAGS = list(boards.load_board("nucleo_h743zi").cflags)


@pytest.fixture(scope="module")
def elf(built):
    cache = {}

    def get(name, x=None, mode="sequence", fusion="timestep", weights="fp32"):
        key = (name, mode, fusion, weights)
        if key not in cache:
            b = built(name, mode, fusion, weights)
            x = b.spec.sample_input if x is None else x
            write_baremetal_project(b.model_dir.parent, [f"model/{f}" for f in b.compiled.c_files], x, H7_FLAGS)
            cache[key] = (build_elf(b.model_dir.parent), x)
        return cache[key]

    return get


@pytest.mark.parametrize("name", ["kws10", "kws3", "har6"])
def test_fixture_parity_on_qemu(built, elf, name):
    """The device's logits for each fixture's sample against the float64 reference."""
    b = built(name)
    path, x = elf(name)
    dev = run_elf(path)
    assert not parity_errors(dev.logits, b.reference(x)[0]), parity_errors(dev.logits, b.reference(x)[0])
    assert dev.instructions > 0
    assert dev.stack_used - dev.stack_at_call < 1024


@pytest.mark.published_logits
def test_kws10_matches_mambalite_on_qemu(elf):
    """MambaLite-Micro's own C engine's logits (6 decimals; 1.3e-5 from float64): the device is
    no further from the published float64 logits than MambaLite's C (within their rounding)."""
    path, _ = elf("kws10")
    published = np.array(PUBLISHED_F64["kws10"])
    with np.load(DATA / "mambalite_kws10.npz") as f:
        mambalite = f["mambalite_c_logits"]
    got = run_elf(path).logits
    assert np.max(np.abs(got - published)) <= np.max(np.abs(mambalite - published)) + 5e-6


@pytest.mark.parametrize("name, mode, weights", [("two_blocks", "sequence", "fp32"), ("odd_dims", "stream", "fp32"),
                                                 ("odd_dims", "sequence", "int8")])
def test_random_models_on_qemu(built, elf, name, mode, weights):
    """Calibrated random models of other shapes, on a random input drawn like their sample,
    in the streaming and int8 forms too, against the float64 reference of that form."""
    b = built(name, mode, weights=weights)
    x = inputs_like(b.spec.sample_input, 1, seed=5)
    path, x = elf(name, x, mode=mode, weights=weights)
    got = run_elf(path).logits
    assert not parity_errors(got, b.reference(x)[0]), parity_errors(got, b.reference(x)[0])


def test_no_heap_and_repeatable_instruction_count(elf):
    path, _ = elf("har6")
    assert elf_forbidden_symbols(path) == []
    first, second = run_elf(path), run_elf(path)
    assert first.instructions == second.instructions
    assert np.array_equal(first.logits.view(np.uint32), second.logits.view(np.uint32))


def test_fusion_choices_on_qemu(built, elf):
    """Layer-by-layer, time-step fused and streaming builds of KWS-10 agree on the device, and
    time-step fusion costs no more than 1.2x the instructions of the layer-by-layer schedule."""
    runs = {}
    for mode, fusion in (("sequence", "timestep"), ("sequence", "layer"), ("stream", "timestep")):
        path, _ = elf("kws10", mode=mode, fusion=fusion)
        runs[mode, fusion] = run_elf(path)
    ref = built("kws10").reference(built("kws10").spec.sample_input)[0]
    for r in runs.values():
        assert not parity_errors(r.logits, ref), parity_errors(r.logits, ref)
    assert runs["sequence", "timestep"].instructions <= 1.2 * runs["sequence", "layer"].instructions
    assert np.max(np.abs(runs["stream", "timestep"].logits - runs["sequence", "timestep"].logits)) <= 1e-5
