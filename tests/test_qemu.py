"""The generated model on an emulated Cortex-M7 (QEMU mps2-an500, nucleo_h743zi flags)."""
import numpy as np
import pytest
import torch

import boards
from mamba_tvm.device.qemu import run_elf
from mamba_tvm.frontend import reference_logits
from mamba_tvm.project.baremetal import build_elf, elf_forbidden_symbols, write_baremetal_project
from tests.conftest import torch_logits

H7_FLAGS = list(boards.load_board("nucleo_h743zi").cflags)


@pytest.fixture(scope="module")
def elf(built):
    cache = {}

    def get(name, x=None, mode="sequence", fusion="timestep"):
        key = (name, mode, fusion)
        if key not in cache:
            b = built(name, mode, fusion)
            x = b.spec.sample_input if x is None else x
            write_baremetal_project(b.model_dir.parent, [f"model/{f}" for f in b.compiled.c_files], x, H7_FLAGS)
            cache[key] = (build_elf(b.model_dir.parent), x)
        return cache[key]

    return get


@pytest.mark.parametrize("name", ["kws10", "kws3", "har6"])
def test_fixture_parity_on_qemu(built, elf, name):
    b = built(name)
    path, x = elf(name)
    dev = run_elf(path)
    ref = reference_logits(b.spec, x)[0]
    err = np.abs(dev.logits - ref)
    assert np.argmax(dev.logits) == np.argmax(ref)
    assert err.max() <= 1e-4 and err.mean() <= 2e-5, err
    if "mambalite_c_logits" in b.spec.extras:
        assert np.max(np.abs(dev.logits - b.spec.extras["mambalite_c_logits"])) <= 1e-4
    assert dev.instructions > 0
    assert dev.stack_used - dev.stack_at_call < 1024


def test_random_two_block_model_on_qemu(built, elf):
    b = built("two_blocks")
    x = np.random.default_rng(5).standard_normal((1, 23, b.spec.n_features)).astype(np.float32)
    path, x = elf("two_blocks", x)
    got = run_elf(path).logits
    want = torch_logits(b.torch_model, x, torch.float64)
    assert np.argmax(got) == np.argmax(want) and np.max(np.abs(got - want)) <= 1e-4


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
    ref = reference_logits(built("kws10").spec, built("kws10").spec.sample_input)[0]
    for r in runs.values():
        assert np.max(np.abs(r.logits - ref)) <= 1e-4
    assert runs["sequence", "timestep"].instructions <= 1.2 * runs["sequence", "layer"].instructions
    assert np.max(np.abs(runs["stream", "timestep"].logits - runs["sequence", "timestep"].logits)) <= 1e-5
