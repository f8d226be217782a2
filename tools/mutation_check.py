#!/usr/bin/env python3
"""Mutation check: break the compiler one named bug at a time and see which test notices.

Each mutant is a list of exact text substitutions in the product's sources (a kernel, the
planner, the quantizer, the emitter, the RPC firmware). For each one the tool copies the
working tree (tracked and untracked, not ignored, files) into a temporary directory once,
applies the mutant there, runs the tests chosen for it with `pytest -x`, restores the file, and
prints a table: killed by which test, or SURVIVED. The working tree is never modified.

Tests marked `published_logits` are left out: every mutant must be caught by a test that
checks the compiler against something other than the numbers published with the bundled
fixtures (the float64 reference, the random models, a property).

A mutant whose text is no longer in its file is refused loudly ("mutant X no longer applies:
pattern not found in FILE") before anything runs: when the kernels change, update the
patterns here so the list keeps testing the code that exists. Slow (one pytest session, with
its TVM builds, per mutant); not part of CI. Run it before resolving any issue that changes
kernels; the table of its last run is in docs/testing.md.

    python tools/mutation_check.py            # all mutants
    python tools/mutation_check.py -k scan    # mutants whose name contains "scan"
    python tools/mutation_check.py --list     # names, files and tests, without running
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.conftest import RANDOM_MODELS  # noqa: E402  (the tests' own model list)

PARITY = "tests/test_parity_host.py::test_c_matches_float64_reference"


def parity(forms=("timestep", "layer", "stream", "int8"), models=tuple(RANDOM_MODELS)) -> list[str]:
    """Node ids of the host parity test on the random models (nothing from the fixtures)."""
    return [f"{PARITY}[{m}-{f}]" for m in models for f in forms]


@dataclass
class Mutant:
    name: str
    edits: list[tuple[str, str, str]]  # (file, exact text, replacement); every occurrence is replaced
    tests: list[str]  # pytest node ids, run in this order with -x
    note: str = ""
    files: list[str] = field(init=False)

    def __post_init__(self):
        self.files = sorted({f for f, _, _ in self.edits})


SCAN = "relay_ops/selective_scan.py"
CONV = "relay_ops/causal_conv1d.py"
INT8_OP = "relay_ops/linear_int8.py"
QUANT = "mamba_tvm/frontend/quantize.py"
FRONT = "mamba_tvm/nn.py"
FAST = "mamba_tvm/passes/fast_math.py"
MINMAX = "mamba_tvm/passes/float_minmax.py"
LOWER = "mamba_tvm/passes/lower_mamba_ops.py"
PAIR = "mamba_tvm/passes/pair_accesses.py"
PLAIN_C = "mamba_tvm/codegen/plain_c.py"
PAIR_MEANING = "tests/test_pair_accesses.py::test_pairing_keeps_the_kernels_meaning"
M7_PARITY = "tests/test_fast_kernels.py::test_m7_kernels_match_float64_reference"
SMLAD_BITS = "tests/test_int8.py::test_smlad_kernel_gives_the_int64_kernels_bits"
AOT = "mamba_tvm/codegen/aot.py"
PLAN = "mamba_tvm/plan.py"
RPC_FRAME = "runtime_c/rpc/rpc_frame.c"
REPEATED = "tests/test_parity_host.py::test_repeated_inferences_in_one_process"

MUTANTS = [
    Mutant("scan: B and C swapped",
           [(SCAN, "b_off, c_off = dt_rank, dt_rank + d_state", "c_off, b_off = dt_rank, dt_rank + d_state")],
           parity()),
    Mutant("scan: D skip dropped",
           [(SCAN, "acc[0] = D[d] * u[b, t, d]", "acc[0] = T.min(D[d], T.float32(0)) * u[b, t, d]"),
            (SCAN, "acc[0] = D[d] * u[b, d]", "acc[0] = T.min(D[d], T.float32(0)) * u[b, d]")],
           parity(), "min(D, 0) is 0 for the positive D of every model; D stays read, so the C compiles"),
    Mutant("scan: exp argument sign",
           [(SCAN, "T.exp(delta[0] * A_rows[a_row, n])", "T.exp(T.float32(0) - delta[0] * A_rows[a_row, n])")],
           parity()),
    Mutant("scan: softplus threshold comparison reversed (every scan kernel)",
           [(SCAN, "v > T.float32(20)", "v < T.float32(20)")],
           parity(), "removing the threshold, or moving it to 2, is not seen: fast_softplus is "
                     "max(x, 0) + log1p(e^-|x|), which returns x above 20 anyway, and no test "
                     "model feeds it a dt between 2 and 20"),
    Mutant("scan: dt bias dropped (every scan kernel)",
           [(SCAN, "delta[0] = dt_bias[d]",
             "delta[0] = T.if_then_else(dt_bias[d] > T.float32(1e30), dt_bias[d], T.float32(0))"),
            (SCAN, "acc[0] = dt_bias[d]",
             "acc[0] = T.if_then_else(dt_bias[d] > T.float32(1e30), dt_bias[d], T.float32(0))"),
            (SCAN, "dl[0] = dt_bias[d]",
             "dl[0] = T.if_then_else(dt_bias[d] > T.float32(1e30), dt_bias[d], T.float32(0))")],
           parity(("timestep", "stream", "int8", "layer")), "written so dt_bias stays read and the C compiles"),
    Mutant("scan: A state order reversed",
           [(SCAN, "A_rows[a_row, n]", "A_rows[a_row, d_state - 1 - n]")],
           parity()),
    Mutant("scan: SiLU gate exp sign (every scan kernel)",
           [(SCAN, "T.exp(T.float32(0) - v)", "T.exp(v)")],
           parity()),
    Mutant("conv: window off by one (step kernel)",
           [(CONV, "acc[0] = bias[d] + weight[d, hist] * x[b, d]",
             "acc[0] = bias[d] + weight[d, hist] * conv_state[b, d, hist - 1]")],
           parity(("timestep", "stream", "int8"))),
    Mutant("conv: window off by one (sequence kernel)",
           [(CONV, "if t + k >= kernel - 1:", "if t + k >= kernel:"),
            (CONV, "x[b, t + k - (kernel - 1), d]", "x[b, t + k - kernel, d]")],
           parity(("layer",))),
    Mutant("plan: live tensors overlap (elements taken for bytes), plan check bypassed",
           [(PLAN, "busy = sorted((p.offset, p.offset + _align(p.nbytes))",
             "busy = sorted((p.offset, p.offset + _align(p.nbytes // 4))"),
            (PLAN, "    check_plan(program)\n    return program", "    return program")],
           parity(("layer", "timestep")) + [f"{REPEATED}[layer]",
                                            "tests/test_plan.py::test_no_two_live_tensors_share_bytes"]),
    Mutant("plan: tensors whose lifetimes touch share bytes, plan check bypassed",
           [(PLAN, "if not (p.last_use < t.first_use or t.last_use < p.first_use))",
             "if not (p.last_use <= t.first_use or t.last_use <= p.first_use))"),
            (PLAN, "    check_plan(program)\n    return program", "    return program")],
           parity(("layer", "timestep")) + [f"{REPEATED}[layer]",
                                            "tests/test_plan.py::test_no_two_live_tensors_share_bytes"]),
    Mutant("int8: stored scales 1% off (quantizer)",
           [(QUANT, "    return q, scale\n", "    return q, (scale * np.float32(1.01)).astype(np.float32)\n")],
           parity(("int8",))),
    Mutant("int8: A's scales 1% off (quantizer)",
           [(QUANT, "return np.ascontiguousarray(q.T), scale",
             "return np.ascontiguousarray(q.T), (scale * np.float32(1.01)).astype(np.float32)")],
           parity(("int8",)), "the bug the product's own int8 reference cannot see"),
    Mutant("int8: weights widened as unsigned",
           [(INT8_OP, 'T.Cast("float32", w_q[vn, vk])', 'T.Cast("float32", T.Cast("uint8", w_q[vn, vk]))')],
           parity(("int8",))),
    Mutant("int8 smlad: x's low half loses its top bit",
           [(INT8_OP, "T.bitwise_and(v0, 0x7FFF)", "T.bitwise_and(v0, 0x3FFF)")],
           [SMLAD_BITS, f"{M7_PARITY}[har6-int8]"]),
    Mutant("int8 smlad: weights packed in plain byte order",
           [(INT8_OP, "[..., [0, 2, 1, 3]]", "[..., [0, 1, 2, 3]]")],
           [SMLAD_BITS, f"{M7_PARITY}[har6-int8]"]),
    Mutant("front end: in_proj x and z halves swapped",
           [(FRONT, "x, z = self.in_proj(hidden_states).chunk(2, dim=-1)",
             "z, x = self.in_proj(hidden_states).chunk(2, dim=-1)")],
           parity(("timestep",)), "reaches the product's PyTorch reference too"),
    Mutant("front end: conv taps reversed",
           [(FRONT, "self.conv1d.weight.squeeze(1)", "self.conv1d.weight.squeeze(1).flip(-1)")],
           parity(("timestep",)), "reaches the product's PyTorch reference too"),
    Mutant("scan step: exp argument sign (both step kernels)",
           [(SCAN, "T.exp(y[b, d] * _a_float(A, A_scale, d, n))", "T.exp(T.float32(0) - y[b, d] * _a_float(A, A_scale, d, n))"),
            (SCAN, "T.exp(dl[0] * _a_float(A, A_scale, d, n))", "T.exp(T.float32(0) - dl[0] * _a_float(A, A_scale, d, n))")],
           parity(("timestep", "stream", "int8"))),
    Mutant("scan step over u: y written inside the state loop, before u is read again",
           [(SCAN, "            acc[0] = acc[0] + x_dbl[b, c_off + n] * h[b, d, n]\n        u[b, d] = acc[0]",
             "            acc[0] = acc[0] + x_dbl[b, c_off + n] * h[b, d, n]\n            u[b, d] = acc[0]")],
           parity(("timestep", "stream", "int8"))),
    Mutant("in place: a view's later reads ignored (consumable_args)",
           [(LOWER, "root[v] = storage(value.args[0])", "root[v] = v")],
           ["tests/test_plan.py::test_consumable_args_spares_parameters_views_and_later_reads"],
           "the bundled graphs read nothing through a view after the step kernels: only the unit test sees it"),
    Mutant("exp table: entries 2 ulp low",
           [(FAST, "np.float32(2.0 ** (j / n) * scale)", "np.float32(2.0 ** (j / n) * scale * (1 - 2 ** -22))")],
           ["tests/test_fast_kernels.py::test_exp_table_is_exact", M7_PARITY]),
    Mutant("exp table: polynomial one degree short",
           [(FAST, "else 2 if n >= 64 else 3", "else 1 if n >= 64 else 2")],
           [M7_PARITY, "tests/test_fast_kernels.py::test_fast_math_helpers_accuracy"]),
    Mutant("pair accesses: the two halves of a pair swapped",
           [(PLAIN_C, "return v.f[0]; }", "return v.f[1]; }")],
           [PAIR_MEANING, M7_PARITY]),
    Mutant("pair accesses: an updated state entry read as its old value until the second update",
           [(PAIR, "if k <= i and old:", "if k <= j and old:")],
           [PAIR_MEANING, M7_PARITY]),
    Mutant("reciprocal: two Newton steps instead of three",
           [(FAST, "for i in range(1, 4):", "for i in range(1, 3):")],
           ["tests/test_fast_kernels.py::test_reciprocal_keeps_sign_and_ieee_ends",
            "tests/test_fast_kernels.py::test_fast_math_helpers_accuracy"]),
    Mutant("FloatMinMax: fminf and fmaxf swapped",
           [(MINMAX, 'name = "fmaxf" if isinstance(node, ir.prim.expr.Max) else "fminf"',
             'name = "fminf" if isinstance(node, ir.prim.expr.Max) else "fmaxf"')],
           [M7_PARITY, "tests/test_schedules.py::test_float_min_max_is_bit_identical_and_cheaper"]),
    Mutant("AOT: init does not reset the state",
           [(AOT, 'state->{t.name}[i] = {init};")', '(void)state->{t.name}[i];")')],
           [f"{REPEATED}[timestep]", f"{REPEATED}[stream]"], "one inference per process cannot see it"),
    Mutant("AOT: mean over T+1 frames",
           [(AOT, '"  inv_steps[0] = 1.0f / (float)state->steps;"', '"  inv_steps[0] = 1.0f / (float)(state->steps + 1);"')],
           parity(("timestep", "stream"))),
    Mutant("RPC: CRC check disabled",
           [(RPC_FRAME, "if (rpc_crc16(frame, n - RPC_CRC_BYTES, RPC_CRC_INIT) != msg->crc)",
             "if (0 && rpc_crc16(frame, n - RPC_CRC_BYTES, RPC_CRC_INIT) != msg->crc)")],
           ["tests/test_rpc.py::test_fuzz_frame_parser_asan", "tests/test_rpc.py::test_flipped_bit_gets_crc_error"]),
]


class StaleMutant(Exception):
    pass


def check_applies(mutant: Mutant, tree: Path) -> None:
    for file, old, _ in mutant.edits:
        path = tree / file
        if not path.is_file() or old not in path.read_text():
            raise StaleMutant(f"mutant '{mutant.name}' no longer applies: pattern not found in {file}: {old!r}")


def copy_tree(dst: Path) -> None:
    """The working tree as it is (uncommitted edits included), without ignored files."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           check=True, capture_output=True).stdout.decode().split("\0")
    for rel in filter(None, files):
        src = ROOT / rel
        if src.is_file():
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / rel)


def run_tests(tree: Path, tests: list[str], log: Path) -> tuple[bool, str]:
    """(killed, by what) for one pytest -x session in the mutated tree."""
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-rfE", "-p", "no:cacheprovider", "-m", "not published_logits",
           *tests]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run(cmd, cwd=tree, capture_output=True, text=True, env=env)
    log.write_text(f"$ {' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}")
    if proc.returncode == 0:
        return False, ""
    if proc.returncode == 5:
        raise RuntimeError(f"no tests collected for {tests} (see {log})")
    failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", proc.stdout, re.M)
    if failed:
        how = " (the C did not compile)" if "failed on the generated C" in proc.stdout else ""
        return True, failed[0] + how
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    return True, f"pytest exit {proc.returncode}: {lines[-1] if lines else ''}"


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-k", dest="select", default="", help="only mutants whose name contains this text")
    ap.add_argument("--list", action="store_true", help="print the mutants and their tests, run nothing")
    ap.add_argument("--no-baseline", action="store_true", help="skip running the tests on the unmutated copy first")
    ap.add_argument("--log-dir", type=Path, default=ROOT / "build" / "mutation_check",
                    help="pytest output of each run (default build/mutation_check)")
    args = ap.parse_args(argv)
    mutants = [m for m in MUTANTS if args.select in m.name]
    stale = []
    for m in mutants:
        try:
            check_applies(m, ROOT)
        except StaleMutant as e:
            stale.append(str(e))
    if stale:
        for s in stale:
            print(f"error: {s}", file=sys.stderr)
        return 1
    if args.list:
        for m in mutants:
            print(f"{m.name}  [{', '.join(m.files)}]\n    " + "\n    ".join(m.tests))
        return 0
    args.log_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="mutation_check_") as tmp:
        tree = Path(tmp) / "tree"
        copy_tree(tree)
        if not args.no_baseline:
            tests = list(dict.fromkeys(t for m in mutants for t in m.tests))
            failed, by = run_tests(tree, tests, args.log_dir / "baseline.log")
            if failed:
                print(f"error: the unmutated tree fails {by}; fix that first (see {args.log_dir / 'baseline.log'})",
                      file=sys.stderr)
                return 1
            print(f"baseline: {len(tests)} tests pass on the unmutated copy", flush=True)
        for m in mutants:
            originals = {f: (tree / f).read_text() for f in m.files}
            start = time.monotonic()
            try:
                for file, old, new in m.edits:
                    text = (tree / file).read_text()
                    (tree / file).write_text(text.replace(old, new))
                killed, by = run_tests(tree, m.tests, args.log_dir / f"{_slug(m.name)}.log")
            finally:
                for f, text in originals.items():
                    (tree / f).write_text(text)
            rows.append((m, killed, by, time.monotonic() - start))
            print(f"{m.name}: {'killed by ' + by if killed else 'SURVIVED'} ({time.monotonic() - start:.0f} s)",
                  flush=True)
    print()
    print("| mutant | file | result |")
    print("|---|---|---|")
    for m, killed, by, _ in rows:
        result = "killed by `" + by.replace(" (", "` (", 1) if killed else "**SURVIVED**"
        result += "" if not killed or "` (" in result else "`"
        print(f"| {m.name} | {', '.join(m.files)} | {result} |")
    survived = [m.name for m, killed, _, _ in rows if not killed]
    print(f"\n{len(rows) - len(survived)} of {len(rows)} mutants killed" +
          (f"; survived: {', '.join(survived)}" if survived else ""))
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
