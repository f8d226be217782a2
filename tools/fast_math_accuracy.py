"""Accuracy of the fast-math helpers over every float32 input the model can feed them.

The helpers are printed by the compiler's own C path (the TIR of passes/fast_math.py through
ContractFMA and the plain-C backend), compiled into a harness with gcc and compared with the
double-precision C library on every float32 in each range (or every `--stride`-th bit
pattern). Reports the largest error in ulps of the float32 result, the largest relative
error and the mean signed error (the bias a scan would accumulate).

    python tools/fast_math_accuracy.py [--stride N] [--no-fma] [--exp poly6|table128] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mamba_tvm.passes import fast_math as fm  # noqa: E402  (before codegen: passes <-> codegen import cycle)
from mamba_tvm.codegen.plain_c import emit_helpers_c  # noqa: E402
from mamba_tvm.passes.contract_fma import contract_fma  # noqa: E402

#: (helper, double-precision reference in C, input range, what feeds it)
CASES = [
    ("fast_exp", "exp(x)", (fm.EXP_LO, fm.EXP_HI), "every exp: SiLU's exp(-x), the scan's exp(delta*A) outside the proven range"),
    ("fast_exp_in_range", "exp(x)", (fm.EXP_LO, fm.EXP_HI), "exp(delta*A) where the scan proved the range"),
    ("fast_exp2_in_range", "exp2(x)", (-127.0, 127.0), "2^((delta*log2 e)*A) in the scan's proven range"),
    ("fast_softplus", "(x > 20 ? x : x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)))", (-88.0, 3.0e38),
     "softplus(dt_proj), torch's threshold of 20 included (LowerFastMath drops the branch)"),
    ("sigmoid", "1.0 / (1.0 + exp(-x))", (-88.0, 88.0), "SiLU: x / (1 + fast_exp(-x))"),
    # odd: the positive half; beyond 2^126 the helper clamps (documented)
    ("fast_reciprocal", "1.0 / x", (1.1754943508222875e-38, 8.507059173023462e37),
     "a / b as a * fast_reciprocal(b) where the compiler has no hardware divide (divide='newton')"),
    # odd functions: the harness measures the positive half (the helpers are exactly odd)
    ("fast_tanh", "tanh(x)", (-3.0e38, 3.0e38), "tanh and GELU(approximate='tanh') in the user's layers"),
    ("fast_erf", "erf(x)", (-3.0e38, 3.0e38), "GELU: x/2 (1 + erf(x/sqrt 2))"),
]

HARNESS = r"""
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
%(helpers)s
static float sigmoid(float x) { return 1.0f / (1.0f + fast_exp(0.0f - x)); }
static double reference(double x) { return %(ref)s; }
int main(int argc, char** argv) {
  float lo = strtof(argv[1], 0), hi = strtof(argv[2], 0);
  uint32_t stride = (uint32_t)strtoul(argv[3], 0, 10);
  double max_ulp = 0, max_rel = 0, sum_ulp = 0, worst = 0;
  long n = 0, flushed = 0;
  for (int sign = 0; sign < 2; ++sign) {
    for (uint32_t b = 0; b < 0x7f800000u; b += stride) {
      float x = mamba_float_of_bits(b | (sign ? 0x80000000u : 0u));
      if (!(x >= lo && x <= hi)) continue;
      double want = reference((double)x);
      double got = (double)%(name)s(x);
      if (want < 1.1754943508222875e-38) { if (got > 1.1754943508222875e-38) flushed++; continue; }
      double ulp = ldexp(1.0, ilogb((float)want) - 23);
      double e = (got - want) / ulp, rel = fabs(got - want) / want;
      if (fabs(e) > max_ulp) { max_ulp = fabs(e); worst = x; }
      if (rel > max_rel) max_rel = rel;
      sum_ulp += e;
      n++;
    }
  }
  printf("{\"inputs\": %%ld, \"max_ulp\": %%.4f, \"max_rel\": %%.4g, \"mean_ulp\": %%.4g, \"worst_x\": %%.9g, "
         "\"wrong_below_flt_min\": %%ld}\n", n, max_ulp, max_rel, sum_ulp / n, worst, flushed);
  return 0;
}
"""


def helpers_c(fma: bool, exp: str = "poly6") -> str:
    table = fm.table_size(exp)
    makers = {"fast_exp": fm.fast_exp, "fast_exp_in_range": fm.fast_exp_in_range,
              "fast_exp2_in_range": fm.fast_exp2_in_range, "fast_softplus": fm.fast_softplus}
    helpers = {name: make(table) for name, make in makers.items()}
    helpers.update(fast_tanh=fm.fast_tanh(), fast_erf=fm.fast_erf(),  # no exp inside: no table
                   fast_reciprocal=fm.fast_reciprocal())
    return emit_helpers_c({name: (contract_fma(func) if fma else func) for name, func in helpers.items()})


def measure(stride: int = 1, fma: bool = True, exp: str = "poly6") -> dict:
    """exp: the LowerFastMath variant ("poly6" or "tableN")."""
    helpers = helpers_c(fma, exp)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, ref, (lo, hi), fed in CASES:
            src = Path(tmp) / f"{name}.c"
            src.write_text(HARNESS % {"helpers": helpers, "ref": ref, "name": name})
            exe = Path(tmp) / name
            # -ffp-contract=off keeps the C compiler from fusing anything the TIR did not
            subprocess.run(["gcc", "-O2", "-std=c99", "-ffp-contract=off", "-w", str(src), "-o", str(exe), "-lm"],
                           check=True)
            out = subprocess.run([str(exe), repr(lo), repr(hi), str(stride)], check=True, capture_output=True,
                                 text=True).stdout
            results[name] = {"range": [lo, hi], "fed_by": fed, **json.loads(out)}
    return results


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stride", type=int, default=1, help="test every N-th float32 bit pattern (1: all)")
    p.add_argument("--no-fma", action="store_true", help="helpers with mul+add (the Xtensa LX7 build)")
    p.add_argument("--exp", default="poly6", help="helper variant: poly6 or tableN (N = 16 ... 256, 1024)")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    results = measure(args.stride, not args.no_fma, args.exp)
    print(f"{'helper':<20} {'range':>18} {'inputs':>11} {'max ulp':>8} {'max rel':>10} {'mean ulp':>10}")
    for name, r in results.items():
        lo, hi = r["range"]
        print(f"{name:<20} {f'[{lo:g}, {hi:g}]':>18} {r['inputs']:>11,} {r['max_ulp']:>8.3f} {r['max_rel']:>10.3g} "
              f"{r['mean_ulp']:>10.2g}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
