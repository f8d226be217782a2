"""PairAdjacentAccesses (passes/pair_accesses.py): two adjacent floats in one 64-bit load.

What must hold: the rewrite keeps the kernel's meaning (a state entry read after its update
sees the new value), only tensors the build aligns are paired (never the caller's input), and
every paired tensor is 8-byte aligned in the linked firmware.
"""
import ctypes
import re
import shutil
import subprocess

import numpy as np
import pytest
import tvm
from tvm.script import tirx as T

from mamba_tvm.codegen.plain_c import emit_kernels_c
from mamba_tvm.passes.pair_accesses import PAIRABLE
from tests.conftest import host_library
from tests.test_fast_kernels import _kernel, built_m7  # noqa: F401  (session fixture)


@T.prim_func(private=True)
def _state_update(w: T.Buffer((8,), "float32"), h: T.Buffer((4,), "float32"), out: T.Buffer((6,), "float32")):
    h[0] = h[0] * w[0] + w[1]
    out[0] = h[0] + h[1]          # the new h[0], the old h[1]
    h[1] = h[1] * w[2] + h[0]     # reads the new h[0]
    out[1] = h[1] + h[0] * w[3]   # both new
    out[2] = w[5] + w[6]          # an odd first index: not a pair
    h[2] = h[2] + w[4]
    out[3] = h[2] + h[3]
    out[4] = w[7]
    out[5] = h[3]


@T.prim_func(private=True)
def _state_update_with_gather(w: T.Buffer((8,), "float32"), h: T.Buffer((4,), "float32"),
                              i: T.Buffer((1,), "int32"), out: T.Buffer((2,), "float32")):
    h[0] = h[0] * w[0] + w[1]
    out[0] = h[i[0]]              # h[0] (new) or another entry: an index the pass cannot compare
    h[1] = h[1] * w[2] + w[3]
    out[1] = h[0] + h[1]


def _expected(w, h):
    h, out = h.astype(np.float32).copy(), np.zeros(6, np.float32)
    h[0] = np.float32(h[0] * w[0]) + w[1]
    out[0] = h[0] + h[1]
    h[1] = np.float32(h[1] * w[2]) + h[0]
    out[1] = h[1] + np.float32(h[0] * w[3])
    out[2] = w[5] + w[6]
    h[2] = h[2] + w[4]
    out[3] = h[2] + h[3]
    out[4], out[5] = w[7], h[3]
    return h, out


def _compiled(prim_func, tmp_path):
    """(C body of `k`, the function loaded from a gcc build) with w and h pairable."""
    func = prim_func.with_attr(PAIRABLE, ["w", "h"]).with_attr("global_symbol", "k")
    src, _ = emit_kernels_c(tvm.IRModule({"k": func}))
    return src[src.index("void k("):], host_library(tmp_path, src).k


def test_pairing_keeps_the_kernels_meaning(tmp_path):
    """Read-only pairs, an in-place state pair whose new values are read before and after the
    second update, and an unpaired odd offset: compiled with gcc and run against numpy."""
    body, k = _compiled(_state_update, tmp_path)
    assert "mamba_load_pair((&(w[0])))" in body and "mamba_store_pair((&(h[0]))" in body, body
    assert not re.search(r"mamba_load_pair\(\(&\(w\[5\]\)\)\)", body) and "out[" in body
    assert "mamba_load_pair((&(out" not in body
    rng = np.random.default_rng(1)
    for _ in range(20):
        w, h = rng.standard_normal(8).astype(np.float32), rng.standard_normal(4).astype(np.float32)
        h_dev, out = h.copy(), np.zeros(6, np.float32)
        k(*(a.ctypes.data_as(ctypes.c_void_p) for a in (w, h_dev, out)))
        h_ref, out_ref = _expected(w, h)
        np.testing.assert_array_equal(h_dev, h_ref)
        np.testing.assert_array_equal(out, out_ref)


def test_a_read_at_an_unknown_index_keeps_the_stores_in_place(tmp_path):
    """h[i] between two in-place updates may read h[0]: its store cannot be deferred, so h is
    not paired (w still is), and the results match numpy for every i."""
    body, k = _compiled(_state_update_with_gather, tmp_path)
    assert "mamba_store_pair" not in body and "mamba_load_pair((&(h" not in body
    assert "mamba_load_pair((&(w[0])))" in body
    rng = np.random.default_rng(2)
    for index in range(4):
        w, h = rng.standard_normal(8).astype(np.float32), rng.standard_normal(4).astype(np.float32)
        h_dev, out, i = h.copy(), np.zeros(2, np.float32), np.array([index], np.int32)
        k(*(a.ctypes.data_as(ctypes.c_void_p) for a in (w, h_dev, i, out)))
        want = h.copy()
        want[0] = np.float32(h[0] * w[0]) + w[1]
        gathered = want[index]
        want[1] = np.float32(h[1] * w[2]) + w[3]
        np.testing.assert_array_equal(h_dev, want)
        np.testing.assert_array_equal(out, [gathered, want[0] + want[1]])


def test_m7_kernels_pair_weights_and_state_not_the_input(built_m7):  # noqa: F811
    """KWS-10 with the Cortex-M7 record: the matvec weights, the scan's A, B, C and state come
    in pairs; the caller's frame (in_proj's first parameter) never does."""
    _, compiled, _, _ = built_m7("kws10")
    src = compiled.sources["model_kernels.c"]
    scan = _kernel(src, "scan_step")
    for tensor in ("A", "h", "x_dbl"):
        assert f"mamba_load_pair((&({tensor}[" in scan, tensor
    assert "mamba_store_pair((&(h[" in scan
    in_proj = _kernel(src, "in_proj_0")
    frame = re.search(r"\(const float\* restrict (\w+),", in_proj)[1]
    assert "mamba_load_pair" in in_proj and f"mamba_load_pair((&({frame}[" not in in_proj
    assert "mamba_load_pair" in _kernel(src, "x_proj")


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="needs arm-none-eabi-gcc (tools/setup.sh)")
def test_paired_tensors_are_8_byte_aligned_in_the_firmware(built_m7, tmp_path):  # noqa: F811
    """Weights, arena and state in the linked Cortex-M7 ELF start at multiples of 8, in sequence
    and in stream mode (the caller's state struct is 8-byte aligned by its first member)."""
    import boards
    from mamba_tvm.project.baremetal import build_elf, write_baremetal_project

    spec, compiled, out, _ = built_m7("kws10")
    write_baremetal_project(tmp_path, [str(out / f) for f in compiled.c_files], spec.sample_input,
                            list(boards.load_board("nucleo_h743zi").cflags))
    elf = build_elf(tmp_path)
    symbols = subprocess.run(["arm-none-eabi-nm", str(elf)], capture_output=True, text=True, check=True).stdout
    found = {name: int(addr, 16) for addr, _, name in (line.split() for line in symbols.splitlines()
                                                       if len(line.split()) == 3)}
    tensors = [n for n in found if n.startswith(("s_w_", "f_w_")) or n in ("tvmgen_default_arena",
                                                                          "tvmgen_default_state")]
    assert "tvmgen_default_state" in tensors and any(n.startswith("s_w_") for n in tensors), sorted(found)
    assert all(found[n] % 8 == 0 for n in tensors), {n: hex(found[n]) for n in tensors if found[n] % 8}
    header = compiled.sources["model.h"]
    assert "#define TVMGEN_DEFAULT_ALIGN8 __attribute__((aligned(8)))" in header
    stream = built_m7("kws10", mode="stream")[1].sources["model.h"]
    first = re.search(r"struct tvmgen_default_state \{\n  float \w+\[\d+\]( TVMGEN_DEFAULT_ALIGN8)?;", stream)
    assert first and first[1], stream[:2000]
