"""Lower TIR kernels to plain C99: raw pointers, no TVM headers, no runtime.

This is TVM's s_tir default lowering minus the GPU, packed-API and FP8/BF16 passes, plus
MakePlainCAPI; `target.build.c` then prints the functions and we strip the few TVM
boilerplate lines it still writes (they are unused by the code).
"""
from __future__ import annotations

import re

import numpy as np
import tvm
from tvm import s_tir, tirx

from ..passes.make_plain_c_api import MakePlainCAPI
from ..passes.select_constants import HELPER_PREFIX, SelectFloatConstantsFromTable

TARGET = "c"


def structural_lowering() -> list:
    """Blocks -> flat loops over flat buffers (allocations compacted to what each use needs)."""
    return [
        s_tir.transform.CanonicalizeLoop(),
        s_tir.transform.LowerInitBlock(),
        s_tir.transform.PlanAndUpdateBufferAllocationLocation(),
        s_tir.transform.ConvertBlocksToOpaque(),
        s_tir.transform.CompactBufferAllocation(),
        s_tir.transform.LowerMatchBuffer(),
        s_tir.transform.StmtSimplify(),
        s_tir.transform.LowerOpaqueBlock(),
        tirx.transform.FlattenBuffer(),
    ]


def plain_c_pipeline() -> tvm.transform.Pass:
    return tvm.transform.Sequential(structural_lowering() + [
        tirx.transform.NarrowDataType(32),
        s_tir.transform.LoopPartition(),
        tirx.transform.VectorizeLoop(False),  # CodeGenC would print float4: keep loops scalar
        tirx.transform.StorageRewrite(),
        tirx.transform.UnrollLoop(),
        s_tir.transform.RenormalizeSplitPattern(),
        tirx.transform.StmtSimplify(),
        tirx.transform.RemoveNoOp(),
        s_tir.transform.RewriteUnsafeSelect(),
        tirx.transform.CommonSubexprElim(),
        tirx.transform.VerifyMemory(),
        MakePlainCAPI,
        tirx.transform.SkipAssert(),
        tirx.transform.LowerIntrin(),
        SelectFloatConstantsFromTable,  # last: nothing after it may fold a select back
    ])


def _bind_target(mod: tvm.IRModule) -> tvm.IRModule:
    return tirx.transform.BindTarget(tvm.target.Target(TARGET))(mod)  # no host: no packed API


def lower_kernels(mod: tvm.IRModule) -> tvm.IRModule:
    return plain_c_pipeline()(_bind_target(mod))


def emit_kernels_c(mod: tvm.IRModule) -> tuple[str, tvm.IRModule]:
    """C source of every PrimFunc in `mod` (symbols from their global_symbol attr)."""
    lowered = lower_kernels(mod)
    source = tvm.get_global_func("target.build.c")(lowered, tvm.target.Target(TARGET)).inspect_source()
    return strip_tvm_boilerplate(source), lowered


_LIBM_PROTO = re.compile(r"^TVM_DLL \w+ (expf|logf|log1pf|tanhf|sqrtf|powf|exp|log|fabsf|fmaxf|fminf|"
                         + HELPER_PREFIX + r"\w+)\(")
_SELECT_HELPER = re.compile(HELPER_PREFIX + r"([0-9a-f]{8})_([0-9a-f]{8})\(")


def strip_tvm_boilerplate(src: str) -> str:
    lines = []
    for line in src.splitlines():
        if line.startswith('#include "tvm/') or line.startswith("#define TVM_EXPORTS"):
            continue
        if "__tvm_ffi__library_ctx" in line or _LIBM_PROTO.match(line):
            continue
        lines.append(line.replace("TVM_DLL ", ""))
    text = "\n".join(lines)
    # CodeGenC wraps every declaration in an extern "C" guard and forward-declares each
    # function; the AOT emitter writes one prototype header instead.
    text = text.replace('#ifdef __cplusplus\nextern "C"\n#endif\n', "")
    text = re.sub(r"^// tvm target:.*\n", "", text, flags=re.M)
    text = re.sub(r"^#include <(math|stdbool)\.h>\n", "", text, flags=re.M)
    text = re.sub(r"^void \w+\([^)]*\);\n", "", text, flags=re.M)
    text = re.sub(r"^(void \w+\()([^)]*)(\) \{)$", lambda m: m[1] + restrict_params(m[2]) + m[3], text, flags=re.M)
    # CodeGenC prints a non-finite float constant as `inff` / `nanf`, which is not C
    text = re.sub(r"(?<![\w.])inff\b", "INFINITY", text)
    text = re.sub(r"(?<![\w.])nanf\b", "NAN", text)
    text = re.sub(r"\n{3,}", "\n\n", text).strip("\n")
    return constant_select_helpers(text) + text + "\n"


def constant_select_helpers(text: str) -> str:
    """Definitions of the mamba_select_<a>_<b> helpers `text` calls (passes/select_constants.py):
    a static table of the two exact float bits, read by the condition."""
    pairs = sorted(set(_SELECT_HELPER.findall(text)))
    if not pairs:
        return ""
    out = ["/* A choice between two float constants reads a two-entry table: LLVM 22 for Xtensa cannot",
           " * compile `c ? 1.0f : -1.0f` (passes/select_constants.py). Entries are exact IEEE-754 bits. */",
           "typedef union { uint32_t bits; float value; } mamba_select_entry;"]
    for a, b in pairs:
        name = f"{HELPER_PREFIX}{a}_{b}"
        out += [f"static const mamba_select_entry {name}_table[2] = {{{{0x{b}u}}, {{0x{a}u}}}};",
                f"static inline float {name}(int32_t c) {{ return {name}_table[c != 0].value; }}"]
    return "\n".join(out) + "\n\n"


def restrict_params(params: str) -> str:
    """`float* a, int8_t* b` -> `float* restrict a, int8_t* restrict b`.

    Sound because the arena plan never gives two tensors that are live at the same call
    overlapping memory (plan.check_plan), so no two arguments of a kernel call alias; the
    caller's input and output buffers must not overlap either (as in TFLite Micro)."""
    return re.sub(r"(\w+)\* (\w+)", r"\1* restrict \2", params)


def allocations(func: tirx.PrimFunc) -> list[tuple[str, int]]:
    """(name, bytes) of every buffer the kernel allocates once lowered: its C stack arrays."""
    mod = tvm.transform.Sequential(structural_lowering())(_bind_target(tvm.IRModule({"k": func})))
    found: list[tuple[str, int]] = []

    def walk(node):
        if isinstance(node, tirx.AllocBuffer):
            buf = node.buffer
            n = int(np.prod([int(s) for s in buf.shape])) if len(buf.shape) else 1
            found.append((buf.name, n * tvm.DataType(buf.dtype).bits // 8))
        for attr in ("seq", "body", "then_case", "else_case"):
            child = getattr(node, attr, None)
            if child is None:
                continue
            for c in (child if attr == "seq" else [child]):
                walk(c)

    walk(mod["k"].body)
    return found
