"""Names a firmware engineer can follow: constants named after the layer kernel and role they
serve (with their stored layout), const kernel signatures, no const cast away in model.c."""
import re

import pytest

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
    from mamba_tvm.codegen.aot import written_params

    src = ("void k(float* restrict a, float* restrict b, float* restrict c, float* restrict d, float* restrict e) {\n"
           "  float* p = d;\n  c[(i + a[0])] = b[i];\n  e[0] += 1.0f;\n  p[0] = a[b[1] == 0.0f];\n}\n")
    assert written_params(src, "k", ["a", "b", "c", "d", "e"]) == {"c", "d", "e"}
