"""Lower TIR kernels to plain C99: raw pointers, no TVM headers, no runtime.

This is TVM's s_tir default lowering minus the GPU, packed-API and FP8/BF16 passes, plus
MakePlainCAPI; `target.build.c` then prints the functions and we strip the few TVM
boilerplate lines it still writes (they are unused by the code).
"""
from __future__ import annotations

import re

import numpy as np
import tvm
import tvm_ffi
from tvm import ir, s_tir, tirx

from ..errors import CompileError

from ..passes.make_plain_c_api import MakePlainCAPI
from ..passes.pair_accesses import PairAdjacentAccesses
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


_LITERAL = "mamba_f32_literal_"
_LITERAL_CALL = re.compile(_LITERAL + r"([0-9a-f]{8})\(\)")


def _c_float_literal(value: float) -> str:
    """Shortest decimal that reads back as the same float32."""
    text = repr(float(np.float32(value)))
    for digits in range(6, 10):
        candidate = f"{value:.{digits}g}"
        if np.float32(float(candidate)) == np.float32(value):
            text = candidate
            break
    if not any(c in text for c in ".en"):
        text += ".0"
    return text + "f"


def _printed_exactly(value: float) -> bool:
    """CodeGenC prints float constants as `%.6e`: only 7 significant digits survive."""
    return np.float32(float(f"{value:.6e}")) == np.float32(value)


@tvm.transform.module_pass(opt_level=0, name="ExactFloatLiterals")
def ExactFloatLiterals(mod: tvm.IRModule, _ctx) -> tvm.IRModule:
    """float32 constants that TVM's C printer would round (it keeps 7 digits: 0.693145751953125
    would become 0.6931458f, another float) become placeholders that strip_tvm_boilerplate
    replaces with the shortest exact literal."""

    def literal(imm):
        if str(imm.ty.dtype) != "float32" or not np.isfinite(imm.value) or _printed_exactly(imm.value):
            return imm
        bits = int(np.float32(imm.value).view(np.uint32))
        return tirx.op.call_pure_extern("float32", f"{_LITERAL}{bits:08x}")

    for gv, func in [(gv, f) for gv, f in mod.functions.items() if isinstance(f, tirx.PrimFunc)]:
        mod[gv] = tvm_ffi.structural_map(func, (ir.prim.expr.FloatImm, literal))
    return mod


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
        PairAdjacentAccesses,  # before CSE names the indices it compares
        tirx.transform.CommonSubexprElim(),
        tirx.transform.VerifyMemory(),
        MakePlainCAPI,
        tirx.transform.SkipAssert(),
        tirx.transform.LowerIntrin(),
        BindMinMaxLoads,
        SelectFloatConstantsFromTable,  # after every pass that could fold a select back
        ExactFloatLiterals,
    ])


def _has_load(expr) -> bool:
    found = []
    tvm_ffi.structural_map(expr, (ir.expr.TensorLoad, lambda load: found.append(load) or load))
    return bool(found)


def _bind_min_max_loads(stmt):
    """`stmt` preceded by Binds of every min/max operand that reads memory, the operands
    replaced by the bound variables."""
    binds = []

    def on_min_max(node):
        operands = []
        for operand in (node.a, node.b):
            if _has_load(operand):
                var = tirx.Var("mm", operand.ty)
                binds.append(tirx.Bind(var, operand))
                operand = var
            operands.append(operand)
        return type(node)(*operands)

    value = tvm_ffi.structural_map(stmt.value, ((ir.prim.expr.Max, ir.prim.expr.Min), on_min_max))
    if not binds:
        return stmt
    if isinstance(stmt, tirx.BufferStore):
        return tirx.SeqStmt(binds + [tirx.BufferStore(stmt.buffer, value, stmt.indices)])
    return tirx.SeqStmt(binds + [tirx.Bind(stmt.var, value)])


@tirx.transform.prim_func_pass(opt_level=0, name="BindMinMaxLoads")
def BindMinMaxLoads(func: tirx.PrimFunc, _mod, _ctx) -> tirx.PrimFunc:
    """CodeGenC prints min/max through its SSA table, keyed by the operand's printed text and
    kept for the whole scope: after `acc[i] = max(acc[i], x0)` an unrolled `max(acc[i], x1)`
    reuses the value read before the store (a wrong max pooling). Reading each memory operand
    into its own variable first makes the printed text unique."""
    return tvm_ffi.structural_map(func, ((tirx.BufferStore, tirx.Bind), _bind_min_max_loads))


def _bind_target(mod: tvm.IRModule) -> tvm.IRModule:
    return tirx.transform.BindTarget(tvm.target.Target(TARGET))(mod)  # no host: no packed API


def lower_kernels(mod: tvm.IRModule) -> tvm.IRModule:
    return plain_c_pipeline()(_bind_target(mod))


def helper_pipeline() -> tvm.transform.Pass:
    """Scalar helpers (fast math) are straight-line code already: only the C calling convention
    and intrinsic lowering, so no simplifier folds their bindings back into one expression."""
    return tvm.transform.Sequential([MakePlainCAPI, tirx.transform.LowerIntrin(), ExactFloatLiterals])


def emit_helpers_c(helpers: dict[str, tirx.PrimFunc]) -> str:
    """C of scalar helpers alone (static inline, named as given), e.g. for an accuracy harness."""
    mod = tvm.IRModule({ir.GlobalVar(n): f.with_attr("global_symbol", n) for n, f in helpers.items()})
    lowered = helper_pipeline()(_bind_target(mod))
    return strip_tvm_boilerplate(tvm.get_global_func("target.build.c")(lowered, tvm.target.Target(TARGET)).inspect_source())


def callees(func: tirx.PrimFunc) -> dict[str, ir.GlobalVar]:
    """The module functions a kernel calls (the fast-math helpers), by name."""
    found: dict[str, ir.GlobalVar] = {}

    def visit(call):
        if isinstance(call.op, ir.GlobalVar):
            found[call.op.name_hint] = call.op
        return call

    tvm_ffi.structural_map(func, (ir.expr.Call, visit))
    return found


def emit_kernels_c(mod: tvm.IRModule, helpers: dict[str, tirx.PrimFunc] | None = None,
                   prefix: str = "") -> tuple[str, tvm.IRModule]:
    """C source of every PrimFunc in `mod` (symbols from their global_symbol attr), preceded by
    the helpers they call, each a `static inline` function named `<prefix>_<name>`."""
    lowered = lower_kernels(mod)
    called = {name: gv for f in mod.functions.values() for name, gv in callees(f).items()}
    missing = set(called) - set(helpers or {})
    if missing:
        raise CompileError(f"kernels call {sorted(missing)}, which are not in the compiled module")
    helper_mod = tvm.IRModule({gv: helpers[name].with_attr("global_symbol", f"{prefix}_{name}" if prefix else name)
                               for name, gv in called.items()})
    combined = tvm.IRModule({**helper_pipeline()(_bind_target(helper_mod)).functions, **lowered.functions})
    source = tvm.get_global_func("target.build.c")(combined, tvm.target.Target(TARGET)).inspect_source()
    return strip_tvm_boilerplate(source), lowered


#: C library math functions CodeGenC declares (math.h has them): their prototypes are dropped
_LIBM = ("exp|exp2|expm1|log|log2|log10|log1p|pow|sqrt|rsqrt|tanh|sinh|cosh|tan|sin|cos|asin|acos|atan|atan2|"
         "erf|fabs|fmax|fmin|fma|floor|ceil|round|trunc|fmod")
_LIBM_PROTO = re.compile(r"^TVM_DLL \w+ ((?:" + _LIBM + r")f?|" + HELPER_PREFIX + r"\w+|mamba_exp2_table\d+|"
                         r"mamba_load_pair|mamba_store_pair|mamba_pair_lo|mamba_pair_hi|mamba_smlad|mamba_sxtb16\w*)\(")
_EXP2_TABLE = re.compile(r"mamba_exp2_table(\d+)\(")
_SELECT_HELPER = re.compile(HELPER_PREFIX + r"([0-9a-f]{8})_([0-9a-f]{8})\(")
#: TVM's CodeGenC prints reinterpret as `(*(T *)(&(v)))`, which breaks C's aliasing rules (GCC
#: -O2 warns and miscompiles it); our C uses a union instead, which C99 defines
_REINTERPRET = re.compile(r"\(\*\((float|uint32_t|int32_t) \*\)\(&\((\w+)\)\)\)")
_BIT_CASTS = {
    "float": ("mamba_float_of_bits", "static inline float mamba_float_of_bits(uint32_t bits) {\n"
              "  union { uint32_t u; float f; } v;\n  v.u = bits;\n  return v.f;\n}\n"),
    "uint32_t": ("mamba_bits_of_float", "static inline uint32_t mamba_bits_of_float(float x) {\n"
                 "  union { float f; uint32_t u; } v;\n  v.f = x;\n  return v.u;\n}\n"),
}


def strip_tvm_boilerplate(src: str) -> str:
    lines = []
    for line in src.splitlines():
        if line.startswith('#include "tvm/') or line.startswith("#define TVM_EXPORTS"):
            continue
        if "__tvm_ffi__library_ctx" in line or _LIBM_PROTO.match(line) or line.startswith(f"TVM_DLL float {_LITERAL}"):
            continue
        lines.append(line.replace("TVM_DLL ", ""))
    text = "\n".join(lines)
    # CodeGenC wraps every declaration in an extern "C" guard and forward-declares each
    # function; the AOT emitter writes one prototype header instead.
    text = text.replace('#ifdef __cplusplus\nextern "C"\n#endif\n', "")
    text = re.sub(r"^// tvm target:.*\n", "", text, flags=re.M)
    text = re.sub(r"^#include <(math|stdbool)\.h>\n", "", text, flags=re.M)
    text = re.sub(r"^void \w+\([^)]*\);\n", "", text, flags=re.M)
    # scalar helpers (declared before the kernels): defined once, inlined by the C compiler
    text = re.sub(r"^float (\w+\()", r"static inline float \1", text, flags=re.M)
    text = _bit_casts(text)
    text = _LITERAL_CALL.sub(lambda m: _c_float_literal(np.uint32(int(m[1], 16)).view(np.float32)), text)
    text = re.sub(r"^(void \w+\()([^)]*)(\) \{)$", lambda m: m[1] + restrict_params(m[2]) + m[3], text, flags=re.M)
    # CodeGenC prints a non-finite float constant as `inff` / `nanf`, which is not C
    text = re.sub(r"(?<![\w.])inff\b", "INFINITY", text)
    text = re.sub(r"(?<![\w.])nanf\b", "NAN", text)
    text = re.sub(r"\n{3,}", "\n\n", text).strip("\n")
    return constant_select_helpers(text) + exp2_tables(text) + pair_helpers(text) + smlad_helpers(text) + text + "\n"


PAIR_HELPERS = """/* Two adjacent floats in one 64-bit load (VLDR.64 on the Cortex-M7), made by
 * passes/pair_accesses.py only at even offsets of tensors the build aligns to 8 bytes. GCC and
 * Clang read them through a may_alias type; other compilers through memcpy. */
typedef union { double bits; float f[2]; } mamba_float_pair;
#if defined(__GNUC__)
typedef double __attribute__((may_alias)) mamba_pair_word;
static inline double mamba_load_pair(const float* p) { return *(const mamba_pair_word*)p; }
#else
#include <string.h>
static inline double mamba_load_pair(const float* p) { double d; memcpy(&d, p, sizeof d); return d; }
#endif
/* Stored as two floats: GCC seldom has the two values in one register pair, and moving
 * them there costs more than the second store. */
static inline void mamba_store_pair(float* p, float lo, float hi) {
  p[0] = lo;
  p[1] = hi;
}
static inline float mamba_pair_lo(double d) { mamba_float_pair v; v.bits = d; return v.f[0]; }
static inline float mamba_pair_hi(double d) { mamba_float_pair v; v.bits = d; return v.f[1]; }

"""


def pair_helpers(text: str) -> str:
    """The pair-access helpers, if the kernels call them (passes/pair_accesses.py)."""
    return PAIR_HELPERS if "mamba_load_pair(" in text or "mamba_store_pair(" in text else ""


SMLAD_HELPERS = """/* The int8 linear layers' dual 16-bit multiply-add (relay_ops/linear_int8.py, "smlad"):
 * SMLAD adds both halfword products of two words to a sum, SXTB16 sign-extends bytes 0 and 2
 * of a word to two halfwords. One instruction each on cores with the DSP extension
 * (Cortex-M4/M7/M33); the same integers in plain C elsewhere. */
#if defined(__ARM_FEATURE_SIMD32) && __ARM_FEATURE_SIMD32
#include <arm_acle.h>
static inline int32_t mamba_smlad(uint32_t x, uint32_t w, int32_t sum) {
  return __smlad((int16x2_t)x, (int16x2_t)w, sum);
}
static inline uint32_t mamba_sxtb16(uint32_t w) { return (uint32_t)__sxtb16((int8x4_t)w); }
#if defined(__GNUC__) /* ACLE has no rotated form and GCC does not fold the rotation in */
static inline uint32_t mamba_sxtb16_ror8(uint32_t w) {
  uint32_t r;
  __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(w));
  return r;
}
#else
static inline uint32_t mamba_sxtb16_ror8(uint32_t w) { return (uint32_t)__sxtb16((int8x4_t)((w >> 8) | (w << 24))); }
#endif
#else
static inline int32_t mamba_half(uint32_t v) { return (int32_t)((v & 0xFFFFu) ^ 0x8000u) - 0x8000; }
static inline int32_t mamba_smlad(uint32_t x, uint32_t w, int32_t sum) {
  return sum + mamba_half(x) * mamba_half(w) + mamba_half(x >> 16) * mamba_half(w >> 16);
}
static inline uint32_t mamba_sxtb16(uint32_t w) {
  return ((((w & 0xFFu) ^ 0x80u) - 0x80u) & 0xFFFFu) | ((((w >> 16) & 0xFFu) ^ 0x80u) - 0x80u) << 16;
}
static inline uint32_t mamba_sxtb16_ror8(uint32_t w) { return mamba_sxtb16(w >> 8); }
#endif

"""


def smlad_helpers(text: str) -> str:
    """The dual 16-bit multiply-add helpers, if the kernels call them."""
    return SMLAD_HELPERS if "mamba_smlad(" in text else ""


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


def exp2_tables(text: str) -> str:
    """Definitions of the mamba_exp2_table<N> lookups `text` calls (exp="tableN",
    passes/fast_math.py): N words, 2^(j/N)'s float bits less j << (23 - log2 N)."""
    from ..passes.fast_math import table_bits

    out = []
    for n in sorted({int(m) for m in _EXP2_TABLE.findall(text)}):
        words = table_bits(n)
        rows = [", ".join(f"0x{w:08x}u" for w in words[i:i + 6]) for i in range(0, n, 6)]
        centered = " times 1 - h^2/6 (centers the linear form's error)," if n >= 1024 else ""
        out += [f"/* 2^(j/{n}) as float bits,{centered} less j << {23 - n.bit_length() + 1}: adding the exp argument's",
                f" * shifter bits shifted left by that much gives 2^k * 2^(j/{n}) (passes/fast_math.py). */",
                f"static const uint32_t mamba_exp2_table{n}_bits[{n}] = {{", *(f"  {r}," for r in rows), "};",
                f"static inline uint32_t mamba_exp2_table{n}(uint32_t j) {{ return mamba_exp2_table{n}_bits[j]; }}"]
    return "\n".join(out) + "\n\n" if out else ""


def _bit_casts(text: str) -> str:
    used = []

    def cast(m):
        if m[1] not in _BIT_CASTS:
            raise CompileError(f"reinterpret to {m[1]} has no C99 bit cast here")
        name, definition = _BIT_CASTS[m[1]]
        if definition not in used:
            used.append(definition)
        return f"{name}({m[2]})"

    text = _REINTERPRET.sub(cast, text)
    if used:
        text = "/* Bit casts through a union: defined behaviour in C99, one register move. */\n" + "\n".join(used) + "\n" + text
    return text


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
