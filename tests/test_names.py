"""Names a firmware engineer can follow: constants named after the layer kernel and role they
serve (with their stored layout), const kernel signatures, no const cast away in model.c."""
import re

import pytest
import tvm

from mamba_tvm.codegen import STRICT_C99
from mamba_tvm.codegen.aot import C_TYPES

FORMS = [("timestep", "fp32"), ("timestep", "int8"), ("layer", "fp32")]


@pytest.fixture(scope="module")
def kws10():
    from mamba_tvm.driver import DEFAULT_MODEL
    from mamba_tvm.frontend.model import load_model

    return load_model(DEFAULT_MODEL)


@pytest.mark.parametrize("fusion,weights", FORMS)
def test_constants_named_after_layers(kws10, fusion, weights, tmp_path):
    import subprocess

    from mamba_tvm.driver import compile_for_board, resolve_target

    _, board = resolve_target("qemu/mps2_an500")
    compiled = compile_for_board(board, kws10, 100, "sequence", fusion, weights)
    model_c = compiled.sources["model.c"]
    header = compiled.sources["model_kernels.h"]
    consts = {t.name: (p, t) for p in compiled.programs.values() for t in p.tensors.values() if t.kind == "const"}
    assert consts
    assert not re.search(r"\b[sf]?_?w\d+\b", model_c), "an anonymous constant name is left"
    for name, (program, t) in consts.items():
        users = [c for c in program.calls if name in c.args]
        assert users, name
        kernel = users[0].kernel
        assert re.fullmatch(rf"([sf]_)?w_{kernel}_\w+", name), (name, kernel)
        comment = re.search(rf"/\* {name}: shape [^*]*\*/", model_c)
        assert comment, name
        if len(t.shape) == 3 and t.value.dtype.name == "uint32":  # packed for SMLAD: four int8 per word
            assert f"words of four int8 weights (out/{t.shape[2]}, in/4, {t.shape[2]})" in comment.group()
        elif len(t.shape) == 3:  # blocked by BlockMatvec: the comment says how it is stored
            assert f"register-blocked by {t.shape[2]}" in comment.group()
        # the call passes the array itself: no cast, the kernel parameter is const
        assert f"({C_TYPES[t.value.dtype.name]}*){name}" not in model_c
        index = users[0].args.index(name)
        proto = re.search(rf"^void tvmgen_default_{kernel}\(([^)]*)\);$", header, flags=re.M).group(1)
        assert proto.split(", ")[index].startswith("const "), (kernel, proto)
    assert "(float*)" not in model_c.replace("(float*)&tvmgen_default_arena", "")
    # the names in plan.json are the C names
    report = compiled.memory_report()
    args = {a for p in report["programs"].values() for c in p["calls"] for a in c["args"]}
    assert set(consts) <= args
    # -Wcast-qual is in the strict set, and the C passes it
    assert "-Wcast-qual" in STRICT_C99
    compiled.write(tmp_path)
    for f in compiled.c_files:
        proc = subprocess.run(["gcc", *STRICT_C99, "-O2", "-I", str(tmp_path), "-c", str(tmp_path / f), "-o",
                               str(tmp_path / (f + ".o"))], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr


def test_written_params_sees_stores_and_escapes():
    """const only for what the lowered TIR reads: a store, a paired store and an address handed
    to any call but a paired load all count as writes."""
    from tvm.script import tirx as T

    from mamba_tvm.codegen.aot import written_params
    from mamba_tvm.codegen.plain_c import lower_kernels

    @T.prim_func
    def k(a: T.Buffer((4,), "float32"), b: T.Buffer((4,), "float32"), c: T.Buffer((4,), "float32"),
          d: T.Buffer((4,), "float32"), e: T.Buffer((4,), "float32"), f: T.Buffer((4,), "float32")):
        T.func_attr({"global_symbol": "k"})
        pair = T.call_extern("float64", "mamba_load_pair", T.address_of(b[0]))
        c[T.Cast("int32", a[0])] = T.call_extern("float32", "mamba_pair_lo", pair)
        T.evaluate(T.call_extern("int32", "mamba_store_pair", T.address_of(d[0]), a[1], a[2]))
        T.evaluate(T.call_extern("int32", "consume", T.address_of(e[0])))
        f[0] = f[0] + T.float32(1)

    lowered = lower_kernels(tvm.IRModule({"k": k}))["k"]
    assert written_params(lowered) == {"c", "d", "e", "f"}
