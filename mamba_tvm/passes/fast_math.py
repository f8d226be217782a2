"""LowerFastMath: exp, softplus, sigmoid, tanh and erf as inline code instead of libm calls.

newlib's `expf` costs about 60 instructions on a Cortex-M7 and the Xtensa LX7 has no libm at
all, while a Mamba step evaluates exp d_inner x d_state times (2,048 per frame for KWS-10).
This pass adds small scalar helper PrimFuncs to the module (`fast_exp`, `fast_softplus`),
written in TIR, and rewrites every `exp(x)` in the kernels into a call to the helper and every
`log1p(exp(x))` (softplus) into `fast_softplus(x)`; sigmoid/SiLU keep their one division
around `fast_exp`. The C emitter prints each helper once, as a `static inline` function.

The helpers are written with plain multiplies and adds; `ContractFMA` (passes/contract_fma.py)
turns them into fused multiply-adds where the schedule record asks for it. Accuracy, measured
over every float32 input the model can feed them, is in docs/fast-math.md (tools/fast_math_accuracy.py):
fast_exp is within 0.88 ulp with FMA (1.17 ulp without) and unbiased (mean error -0.001 ulp).

exp(x), x clamped to [-88, 88.3763]: k = round(x / ln 2) by the 1.5*2^23 shifter, whose low
bits are then k + 127; r = x - k*ln2_hi - k*ln2_lo (Cody-Waite: ln2_hi has 15 significant
bits, so k*ln2_hi and the subtraction are exact); e^r by a degree-6 polynomial with
p(0) = 1, p'(0) = 1 (relative error 3.1e-9 on |r| <= ln2/2, below a twentieth of an ulp, so
only rounding is left and it is unbiased); 2^k from the shifter's bits << 23. Results below
2^-126.5 flush to zero, above 88.3763 saturate at 2.4e38 (the clamp), so no input overflows
the exponent arithmetic.
"""
from __future__ import annotations

import functools

import numpy as np
import tvm
import tvm_ffi
from tvm import ir, tirx

F32 = "float32"

#: exp's clamp: below -88 the shifter's exponent would underflow (the result is 0 there
#: anyway, it flushes from -87.68), above 88.3763 k would reach 128 (2^128 overflows)
EXP_LO, EXP_HI = -88.0, 88.3762626647949
LOG2E = 1.44269504088896341
SHIFTER = 12583039.0  # 1.5 * 2^23 + 127: x*log2e + SHIFTER rounds to an integer whose low bits are k + 127
LN2_HI = 0.693145751953125  # 0x3f317200: 15 significant bits
LN2_LO = 1.428606765330187e-06
#: e^r ~ 1 + r + sum c_i r^i on |r| <= ln2/2 (near-minimax relative fit, max 3.1e-9)
EXP_POLY = (0.4999999403953552, 0.1666652113199234, 0.04166838899254799, 0.008368710055947304,
            0.0013814611593261361)
#: log1p(e) = 2 s g(s^2), s = e / (2 + e) in [0, 1/3]: g(w) = atanh(sqrt w)/sqrt w ~ 1 + sum c_i w^i
#: on [0, 1/9] (near-minimax relative fit, max 4.5e-9)
LOG1P_POLY = (0.33333208137514494102, 0.20010763883230413235, 0.140008986376394409, 0.14006012376551847582)


def _c(value: float) -> tirx.FloatImm:
    return tirx.const(value, F32)


class _Body:
    """Straight-line scalar code: named bindings, then a return."""

    def __init__(self):
        self.stmts: list = []

    def let(self, name: str, value, dtype: str = F32) -> tirx.Var:
        var = tirx.Var(name, dtype)
        self.stmts.append(tirx.Bind(var, value))
        return var

    def ret(self, value, params: list, name: str) -> tirx.PrimFunc:
        body = tirx.SeqStmt(self.stmts + [tirx.Return(value)])
        return tirx.PrimFunc(params, body, ret_type=ir.PrimType(F32)).with_attr("global_symbol", name)


def _estrin(b: "_Body", r, coeffs, name: str, r2=None):
    """c0 + c1 r + c2 r^2 + ... by Estrin's scheme: pairs (c_2i + c_2i+1 r) combined with powers
    of r^2. Same rounding quality as Horner, but each constant addend costs the FPU a register
    copy (VFMA accumulates into its addend), and pairs need half as many."""
    r2 = r2 if r2 is not None else b.let(f"{name}2", r * r)
    pairs = [_pair(coeffs[i], coeffs[i + 1], r) if i + 1 < len(coeffs) else _c(coeffs[i])
             for i in range(0, len(coeffs), 2)]
    acc = pairs[-1]
    for pair in reversed(pairs[:-1]):
        acc = r2 * acc + pair
    return acc


def _pair(c0: float, c1: float, r):
    return r + _c(c0) if c1 == 1.0 else _c(c1) * r + _c(c0)


def _exp_core(b: _Body, x) -> tirx.Var:
    """e^x for x already inside [EXP_LO, EXP_HI]."""
    kd = b.let("kd", x * _c(LOG2E) + _c(SHIFTER))
    kf = b.let("kf", kd - _c(SHIFTER))
    r = b.let("r", kf * _c(-LN2_HI) + x)
    r = b.let("r_lo", kf * _c(-LN2_LO) + r)
    # 1 + (r + r^2 q(r)): adding the 1 last keeps r's low bits (0.88 ulp; (1 + r) + ... gives 1.23)
    r2 = b.let("r2", r * r)
    poly = b.let("p", (r2 * _estrin(b, r, EXP_POLY, "r", r2) + r) + _c(1.0))
    bits = b.let("kd_bits", tirx.op.reinterpret("uint32", kd), "uint32")
    scale_bits = b.let("scale_bits", tirx.op.shift_left(bits, tirx.const(23, "uint32")), "uint32")
    scale = b.let("scale", tirx.op.reinterpret(F32, scale_bits))
    return b.let("e", poly * scale)


def _core(b: _Body, x, table: int):
    return _exp_core_table(b, x, table) if table else _exp_core(b, x)


def fast_exp(table: int = 0) -> tirx.PrimFunc:
    """table: 0 for the degree-6 polynomial, else the size of the 2^(j/N) table."""
    x = tirx.Var("x", F32)
    b = _Body()
    xc = b.let("xc", tirx.Min(tirx.Max(x, _c(EXP_LO)), _c(EXP_HI)))
    return b.ret(_core(b, xc, table), [x], "fast_exp")


def fast_exp_in_range(table: int = 0) -> tirx.PrimFunc:
    """fast_exp without the clamp, for callers that proved EXP_LO <= x <= EXP_HI."""
    x = tirx.Var("x", F32)
    b = _Body()
    return b.ret(_core(b, x, table), [x], "fast_exp_in_range")


#: 2^f ~ 1 + sum c_i f^i on |f| <= 1/2 (near-minimax relative fit, max 2.0e-9)
EXP2_POLY = (0.693147202857755, 0.24022647913279854, 0.055503324663802575, 0.00961843737964845,
             0.0013398876065584498, 0.0001535335976063834)


def fast_exp2_in_range(table: int = 0) -> tirx.PrimFunc:
    """2^t for -127 <= t <= 127 (callers prove the range): k = round(t) by the shifter, f = t - k
    exactly, 2^f by a degree-6 polynomial. exp(a*b) = 2^((a*log2 e)*b) saves the Cody-Waite
    steps where a is a loop invariant; the extra rounding of a*log2 e is of the order of the
    rounding of a*b itself."""
    t = tirx.Var("t", F32)
    b = _Body()
    if table:  # k + j/N = round(N t)/N, g = t - that exactly, 2^g by the short polynomial
        sh = _table_shifter(table)
        kd = b.let("kd", t + _c(sh))
        g = b.let("g", t - (kd - _c(sh)))
        u = _poly_times(b, g, table_poly(table, True))
        scale = _table_scale(b, kd, table)
        return b.ret(scale * u + scale, [t], "fast_exp2_in_range")
    kd = b.let("kd", t + _c(SHIFTER))
    f = b.let("f", t - (kd - _c(SHIFTER)))
    f2 = b.let("f2", f * f)
    # 1 + (c1 f + f^2 q(f)): the 1 added last, as in fast_exp
    poly = b.let("p", (_c(EXP2_POLY[0]) * f + f2 * _estrin(b, f, EXP2_POLY[1:], "f", f2)) + _c(1.0))
    bits = b.let("kd_bits", tirx.op.reinterpret("uint32", kd), "uint32")
    scale_bits = b.let("scale_bits", tirx.op.shift_left(bits, tirx.const(23, "uint32")), "uint32")
    scale = b.let("scale", tirx.op.reinterpret(F32, scale_bits))
    return b.ret(poly * scale, [t], "fast_exp2_in_range")


#: exp="tableN": 2^x = 2^k * 2^(j/N) * 2^g with the N values 2^(j/N) in a table, so the
#: polynomial only covers |g| <= 1/(2N): degree 2 for N >= 64 (fit error below 1e-8); N = 1024
#: is linear (s + s c1 g: two instructions fewer per exp, 4 KB of table; see table_bits).
TABLE_SIZES = (16, 32, 64, 128, 256, 1024)
LINEAR_TABLE = 1024
TABLE_EXTERN = "mamba_exp2_table"


def table_size(exp: str) -> int:
    """N of exp="tableN", 0 for the polynomial and libm variants."""
    if exp in ("poly6", "libm"):
        return 0
    n = int(exp[5:]) if exp.startswith("table") and exp[5:].isdigit() else -1
    if n not in TABLE_SIZES:
        raise ValueError(f"unknown exp variant '{exp}' (known: poly6, libm, "
                         + ", ".join(f"table{t}" for t in TABLE_SIZES) + ")")
    return n


def exp_needs_fma(exp: str) -> bool:
    """The linear-table exp's Cody-Waite product kf * ln2_hi is exact only when fused
    (k + j/1024 has 17 significant bits): kernel_passes refuses it without FMA, the tuner
    does not try that point."""
    return table_size(exp) >= LINEAR_TABLE


def _table_degree(n: int) -> int:
    return 1 if n >= LINEAR_TABLE else 2 if n >= 64 else 3


def _linear_centering(n: int) -> float:
    """The linear form 1 + x falls short of e^x by about x^2/2 on |x| <= h = ln2/(2n): scaling
    the table by 1 + h^2/6 makes that error zero on average over x (max h^2/3 = 3.8e-8 for
    n = 1024), so a slowly decaying scan state does not accumulate a one-sided bias. The
    Cody-Waite step needs FMA here: k + j/1024 has 17 significant bits (kernel_passes)."""
    h = np.log(2.0) / (2 * n)
    return 1.0 + h * h / 6.0


@functools.lru_cache(maxsize=None)
def table_poly(n: int, base2: bool) -> tuple[float, ...]:
    """c1..cd with 2^g ~ 1 + g (c1 + c2 g + ...) on |g| <= 1/(2n) (base2), or e^r ~ 1 + r (c1 + ...)
    on |r| <= ln2/(2n): a near-minimax fit of the relative error (iteratively reweighted least
    squares on Chebyshev nodes), each coefficient rounded to float32."""
    degree, half = _table_degree(n), (0.5 / n) * (1.0 if base2 else np.log(2.0))
    if degree == 1:  # the slope of e^x at 0 (the table's centering takes the curvature)
        return (float(np.float32(np.log(2.0))),) if base2 else (1.0,)
    x = np.cos(np.linspace(0.0, np.pi, 2001)) * half
    x = x[x != 0]
    f = np.exp2(x) if base2 else np.exp(x)
    target, weight = (f - 1.0) / x, x / f
    basis = np.vstack([x ** i for i in range(degree)]).T
    w = np.ones_like(x)
    for _ in range(60):
        c, *_ = np.linalg.lstsq(basis * (weight * w)[:, None], target * weight * w, rcond=None)
        err = np.abs((basis @ c - target) * weight)
        w *= (err / err.max()) ** 0.3 + 1e-3
    return tuple(float(np.float32(v)) for v in c)


def table_bits(n: int) -> list[int]:
    """Entry j: the float32 bits of 2^(j/n) minus j << (23 - log2 n), so that adding the
    rounded argument's bits shifted left by 23 - log2 n yields 2^k * 2^(j/n) in one add."""
    shift = 23 - int(np.log2(n))
    scale = _linear_centering(n) if _table_degree(n) == 1 else 1.0
    return [(int(np.float32(2.0 ** (j / n) * scale).view(np.uint32)) - (j << shift)) & 0xFFFFFFFF for j in range(n)]


def _table_scale(b: _Body, kd, n: int):
    """2^k * 2^(j/n) from the shifter sum kd (its low bits are round(n t) = n k + j)."""
    bits = b.let("kd_bits", tirx.op.reinterpret("uint32", kd), "uint32")
    j = b.let("j", tirx.op.bitwise_and(bits, tirx.const(n - 1, "uint32")), "uint32")
    entry = tirx.op.call_pure_extern("uint32", f"{TABLE_EXTERN}{n}", j)
    shift = tirx.const(23 - int(np.log2(n)), "uint32")
    scale_bits = b.let("scale_bits", entry + tirx.op.shift_left(bits, shift), "uint32")
    return b.let("scale", tirx.op.reinterpret(F32, scale_bits))


def _poly_times(b: _Body, x, coeffs):
    """x (c1 + c2 x + ...) by Horner."""
    acc = _c(coeffs[-1])
    for c in reversed(coeffs[:-1]):
        acc = acc * x + _c(c)
    return b.let("u", x * acc)


def _table_shifter(n: int) -> float:
    return 1.5 * 2.0 ** (23 - int(np.log2(n)))  # its ulp is 1/n: t + it rounds t to a multiple of 1/n


def _exp_core_table(b: _Body, x, n: int) -> tirx.Var:
    """e^x for x inside [EXP_LO, EXP_HI] with a 2^(j/n) table: kf = k + j/n = round(n x log2 e)/n
    by the shifter, r = x - kf ln2 by Cody-Waite (ln2's high part has 11 significant bits and
    kf at most 13, so kf * hi is exact), e^r by 1 + r (c1 + c2 r ...), times the table's
    2^k 2^(j/n) as s + s u (one rounding)."""
    sh = _table_shifter(n)
    kd = b.let("kd", x * _c(LOG2E) + _c(sh))
    kf = b.let("kf", kd - _c(sh))
    r = b.let("r", kf * _c(-LN2_HI11) + x)
    r = b.let("r_lo", kf * _c(-LN2_LO11) + r)
    u = _poly_times(b, r, table_poly(n, False))
    scale = _table_scale(b, kd, n)
    return b.let("e", scale * u + scale)


LN2_HI11 = 0.693359375  # ln 2 to 11 significant bits (0x3f318000)
LN2_LO11 = float(np.float32(0.6931471805599453 - 0.693359375))


def fast_softplus(table: int = 0) -> tirx.PrimFunc:
    """log(1 + e^x) = max(x, 0) + log1p(e^-|x|), the log1p by the atanh series in s = e/(2+e)."""
    x = tirx.Var("x", F32)
    b = _Body()
    neg_abs = b.let("neg_abs", tirx.Min(x, _c(0.0) - x))
    e = _core(b, b.let("xc", tirx.Max(neg_abs, _c(EXP_LO))), table)
    s = b.let("s", e / (_c(2.0) + e))
    w = b.let("w", s * s)
    g = _estrin(b, w, (1.0,) + LOG1P_POLY, "w")
    return b.ret(tirx.Max(x, _c(0.0)) + (s + s) * g, [x], "fast_softplus")


#: the reciprocal's seed: 0x7ef311c3 - bits(|b|) is 1/|b| within 5.1% (a first-order fit of
#: log2 by the float's own bits); three Newton steps r(2 - b r) leave 2 ulp
RECIPROCAL_SEED = 0x7EF311C3
RECIPROCAL_CLAMP = 0x7E800000  # |b| above 2^126 is taken as 2^126 (the seed needs a positive result)


def fast_reciprocal() -> tirx.PrimFunc:
    """1/b without a division, for cores whose compiler calls a software divide (LLVM 22 for
    the LX7 calls __divsf3, about 80 instructions): a bit-trick seed on |b| and three Newton
    steps, the sign put back on the bits. Max 2.0 ulp, mean -0.05 ulp; b = 0 gives NaN (a
    division by zero, which the build's self-check reports as a non-finite result, not a
    quiet inf); |b| beyond 2^126 counts as 2^126 (a quotient below 1e-38, which the models
    only meet as SiLU's x / (1 + e^88))."""
    b = tirx.Var("b", F32)
    body = _Body()
    bits = body.let("b_bits", tirx.op.reinterpret("uint32", b), "uint32")
    sign = body.let("sign", tirx.op.bitwise_and(bits, tirx.const(0x80000000, "uint32")), "uint32")
    abs_bits = body.let("abs_bits", tirx.op.bitwise_and(bits, tirx.const(0x7FFFFFFF, "uint32")), "uint32")
    mag_bits = body.let("mag_bits", tirx.Min(abs_bits, tirx.const(RECIPROCAL_CLAMP, "uint32")), "uint32")
    mag = body.let("mag", tirx.op.reinterpret(F32, mag_bits))
    seed_bits = body.let("seed_bits", tirx.const(RECIPROCAL_SEED, "uint32") - mag_bits, "uint32")
    r = body.let("r0", tirx.op.reinterpret(F32, seed_bits))
    for i in range(1, 4):
        r = body.let(f"r{i}", r * (_c(2.0) - mag * r))
    r_bits = body.let("r_bits", tirx.op.reinterpret("uint32", r), "uint32")
    signed = body.let("signed_bits", tirx.op.bitwise_or(r_bits, sign), "uint32")
    return body.ret(body.let("reciprocal", tirx.op.reinterpret(F32, signed)), [b], "fast_reciprocal")


def DivideByReciprocal(divide: str = "hardware") -> tvm.transform.Pass:
    """divide="newton": every float division a / b in the kernels and helpers becomes
    a * fast_reciprocal(b) (inline); "hardware": left to the C compiler (VDIV on the M7)."""
    if divide not in ("hardware", "newton"):
        raise ValueError(f"unknown divide variant '{divide}' (known: hardware, newton)")

    @tvm.transform.module_pass(opt_level=0, name="DivideByReciprocal")
    def _pass(mod: tvm.IRModule, _ctx) -> tvm.IRModule:
        if divide == "hardware":
            return mod
        helpers = _Helpers(mod)

        def on_div(node):
            if _dtype(node) != F32:
                return node
            return node.a * helpers.call("fast_reciprocal", fast_reciprocal, node.b)

        funcs = [(gv, f) for gv, f in mod.functions.items()
                 if isinstance(f, tirx.PrimFunc) and gv.name_hint != "fast_reciprocal"]
        for gv, func in funcs:
            mod[gv] = tvm_ffi.structural_map(func, (ir.prim.expr.Div, on_div))
        return mod

    return _pass


#: tanh and erf: the odd/even rationals TVM's topi.fast_tanh and topi.fast_erf emit (Eigen's),
#: as numerator coefficients of x (in x^2, highest first) over denominator ones, and the clamp
#: beyond which the rational is used at the clamp (tanh(9) and erf(4) round to +-1 within 2 ulp).
#: Measured against double precision (docs/fast-math.md): tanh 5.7 ulp, erf 7.0 ulp, at most
#: 4.2e-7 absolute, both near +-1.
TANH_RATIONAL = (9.0, (-2.76076847742355e-16, 2.00018790482477e-13, -8.60467152213735e-11, 5.12229709037114e-08,
                       1.48572235717979e-05, 6.37261928875436e-04, 4.89352455891786e-03),
                 (1.19825839466702e-06, 1.18534705686654e-04, 2.26843463243900e-03, 4.89352518554385e-03))
ERF_RATIONAL = (4.0, (-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06, -5.69250639462346e-05,
                      -7.34990630326855e-04, -2.95459980854025e-03, -1.60960333262415e-02),
                (-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03, -7.37332916720468e-03,
                 -1.42647390514189e-02))


def _odd_rational(name: str, table) -> tirx.PrimFunc:
    clamp, numerator, denominator = table
    # tanh's numerator rescaled so that p/q is exactly 1 at 0 (Eigen's float constants leave it
    # at 1 - 1.3e-7: a one-ulp bias on every small input)
    if name == "fast_tanh":
        numerator = tuple(c * denominator[-1] / numerator[-1] for c in numerator)
    x = tirx.Var("x", F32)
    b = _Body()
    xc = b.let("xc", tirx.Min(tirx.Max(x, _c(-clamp)), _c(clamp)))
    w = b.let("w", xc * xc)
    p = b.let("p", _estrin(b, w, numerator[::-1], "w_p"))
    q = b.let("q", _estrin(b, w, denominator[::-1], "w_q"))
    return b.ret(xc * (p / q), [x], name)  # x (p/q): x p underflows for tiny x


def fast_tanh() -> tirx.PrimFunc:
    return _odd_rational("fast_tanh", TANH_RATIONAL)


def fast_erf() -> tirx.PrimFunc:
    return _odd_rational("fast_erf", ERF_RATIONAL)


def _dtype(expr) -> str:
    return str(getattr(expr.ty, "dtype", ""))


def _is_op(expr, name: str) -> bool:
    return isinstance(expr, ir.expr.Call) and isinstance(expr.op, ir.Op) and expr.op.name == name


class _Helpers:
    """The helper PrimFuncs a module needs, added once each."""

    def __init__(self, mod: tvm.IRModule):
        self.mod = mod
        self.gvs: dict[str, ir.GlobalVar] = {}

    def call(self, name: str, make, arg) -> ir.expr.Call:
        """A call to helper `name`, added to the module (built by `make`) on first use."""
        if name not in self.gvs:
            existing = [gv for gv in self.mod.get_global_vars() if gv.name_hint == name]
            gv = existing[0] if existing else ir.GlobalVar(name)
            if not existing:
                self.mod[gv] = make()
            self.gvs[name] = gv
        return ir.expr.Call(self.gvs[name], [arg], ret_ty=F32)


#: softplus's linear threshold (torch: x above 20 is returned as is) may go where it changes
#: nothing in float32: for x >= 17, log1p(e^-x) < 4.2e-8 is below half an ulp of x
SOFTPLUS_EXACT_ABOVE = 17.0


def _thresholded_softplus(call):
    """x of `if_then_else(x > c, x, log1p(exp(x)))` with c >= SOFTPLUS_EXACT_ABOVE, else None."""
    if not _is_op(call, "prim.if_then_else"):
        return None
    cond, then, other = call.args
    if not (_is_op(other, "tirx.log1p") and _is_op(other.args[0], "tirx.exp")):
        return None
    x = other.args[0].args[0]
    if isinstance(cond, ir.prim.expr.GT) and isinstance(cond.b, ir.prim.expr.FloatImm):
        a, c = cond.a, cond.b.value
    elif isinstance(cond, ir.prim.expr.LT) and isinstance(cond.a, ir.prim.expr.FloatImm):
        a, c = cond.b, cond.a.value
    else:
        return None
    same = tvm_ffi.structural_equal(a, x) and tvm_ffi.structural_equal(then, x)
    return x if same and c >= SOFTPLUS_EXACT_ABOVE else None


def lower_fast_math(func: tirx.PrimFunc, helpers: _Helpers, table: int = 0) -> tirx.PrimFunc:
    def on_call(call):
        thresholded = _thresholded_softplus(call)
        if thresholded is not None:  # fast_softplus(x) is x there already: no branch
            return helpers.call("fast_softplus", lambda: fast_softplus(table), thresholded)
        if _is_op(call, "tirx.log1p") and _is_op(call.args[0], "tirx.exp"):
            return helpers.call("fast_softplus", lambda: fast_softplus(table), call.args[0].args[0])
        if _is_op(call, "tirx.exp") and _dtype(call) == F32:
            return helpers.call("fast_exp", lambda: fast_exp(table), call.args[0])
        if _is_op(call, "tirx.tanh") and _dtype(call) == F32:
            return helpers.call("fast_tanh", fast_tanh, call.args[0])
        if _is_op(call, "tirx.erf") and _dtype(call) == F32:
            return helpers.call("fast_erf", fast_erf, call.args[0])
        return call

    # pre-order: log1p(exp(x)) is matched before its inner exp is rewritten
    return tvm_ffi.structural_map(func, (ir.expr.Call, on_call), order="pre")


LIBM_CALLS = ("tirx.exp", "tirx.log1p", "tirx.log", "tirx.sigmoid", "tirx.tanh", "tirx.erf", "tirx.exp2", "tirx.pow")


def remaining_libm_calls(func: tirx.PrimFunc) -> set[str]:
    found: set[str] = set()

    def visit(call):
        if isinstance(call.op, ir.Op) and call.op.name in LIBM_CALLS:
            found.add(call.op.name)
        return call

    tvm_ffi.structural_map(func, (ir.expr.Call, visit))
    return found


def LowerFastMath(exp: str = "poly6") -> tvm.transform.Pass:
    """exp="poly6": the helpers above; exp="tableN": the same with a 2^(j/N) table and a
    degree-2 (N >= 64) or 3 polynomial; exp="libm": leave exp/log1p to the C library (baseline)."""
    table = table_size(exp)

    @tvm.transform.module_pass(opt_level=0, name="LowerFastMath")
    def _pass(mod: tvm.IRModule, _ctx) -> tvm.IRModule:
        if exp == "libm":
            return mod
        helpers = _Helpers(mod)
        kernels = [(gv, f) for gv, f in mod.functions.items() if isinstance(f, tirx.PrimFunc)]
        for gv, func in [(gv, lower_fast_math(f, helpers, table)) for gv, f in kernels]:
            mod[gv] = func
        return mod

    return _pass
