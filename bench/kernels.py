"""Kernel benchmark: what each group of schedule rules buys, measured in one run on the M7.

For KWS-10 and HAR-6 (fp32 and int8 weights, time-step fused) it compiles the model with the
kernel rules switched on step by step, builds each for the Cortex-M7 (nucleo_h743zi flags),
runs it on QEMU mps2-an500 and prints:

- instructions (QEMU `-icount shift=0`: every instruction counts 1);
- VDIV/VSQRT executed (counted on the emulated device, mamba_tvm/device/qemu_trace.py) and
  `charged`: instructions + 13 per VDIV/VSQRT, their extra cycles on a Cortex-M7 (14 each),
  so a variant cannot look faster by trading instructions for divisions;
- model flash (the model's sections in the linker map), RAM (arena + state + measured stack);
- max |logit error| against the float64 reference, on the sample (device logits) and over
  `--inputs` random inputs drawn like it (host build of the same C).

Steps: "before" (every issue-12 rule off: no graph folding, libm exp, mul+add, one output
per pass: the kernels as they were before issue 12), "+ folding" (linear_in folded into
in_proj, out_proj moved after the mean over time and folded into the classifier),
"+ fast math" (inline table exp/softplus, FMA, min/max as VMINNM/VMAXNM, the scan's
range-check hoisting and base-2 exp), "+ blocking" (register-blocked matvecs with build-time
weight layout, unrolling, the unrolled state loop, the integer int8 matvec: the Cortex-M7
schedule record).

    python bench/kernels.py [--models kws10 har6] [--weights fp32 int8] [--inputs 50] [--no-trace] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

import boards  # noqa: E402
from mamba_tvm.compiler import compile_model  # noqa: E402
from mamba_tvm.device.host import build_host_runner, run_host  # noqa: E402
from mamba_tvm.device.qemu import run_elf  # noqa: E402
from mamba_tvm.device.qemu_trace import charged_cycles, count_executed  # noqa: E402
from mamba_tvm.frontend import load_checkpoint  # noqa: E402
from mamba_tvm.frontend.check_inputs import inputs_like  # noqa: E402
from mamba_tvm.pipeline import mcu_pipeline  # noqa: E402
from mamba_tvm.project.baremetal import build_elf, write_baremetal_project  # noqa: E402
from mamba_tvm.project.linker_map import model_footprint  # noqa: E402
from schedules import load_schedule  # noqa: E402
from tests import reference_f64  # noqa: E402  (the independent float64 reference)

DATA = Path(__file__).resolve().parents[1] / "mamba_tvm" / "data"
BOARD = "nucleo_h743zi"
BEFORE = {"unroll": 4, "exp": "libm", "fma": False, "matvec_block": 1, "scan_unroll": 1, "scan_hoist": False,
          "scan_base2": False, "int8_matvec": "float"}


def steps(record: dict) -> list[tuple[str, bool, dict]]:
    """(label, graph folding on, kernel knobs), each step adding one group of rules."""
    fast_math = {**BEFORE, "exp": record["exp"], "fma": record["fma"], "scan_hoist": record["scan_hoist"],
                 "scan_base2": record["scan_base2"], "fminmax": record["fminmax"]}
    return [("before", False, BEFORE), ("+ folding", True, BEFORE), ("+ fast math", True, fast_math),
            ("+ blocking", True, dict(record))]


def measure(spec, weights: str, knobs: dict, work: Path, n_inputs: int, trace: bool, fold: bool = True) -> dict:
    x = spec.sample_input
    params = reference_f64.load_npz(DATA / f"mambalite_{spec.name.removeprefix('mambalite_')}.npz")[0]
    params = reference_f64.int8_params(params) if weights == "int8" else params
    compiled = compile_model(spec, x.shape[1], weights=weights, pipeline=mcu_pipeline(**knobs), fold=fold)
    compiled.write(work / "model")
    write_baremetal_project(work, [f"model/{f}" for f in compiled.c_files], x, list(boards.load_board(BOARD).cflags))
    elf = build_elf(work)
    run = run_elf(elf)
    long_latency = count_executed(elf) if trace else {}
    stack = run.stack_used - run.stack_at_call
    ref = reference_f64.sequence_logits(params, x)[0]
    # the reference quantizes the folded model's weights: an unfolded int8 build rounds other
    # weights (in_proj before folding), so its error against it says nothing
    comparable = fold or weights != "int8"
    err = float(np.abs(run.logits - ref).max()) if comparable else None
    if n_inputs and comparable:  # the same C on the host, over inputs drawn like the sample
        exe = build_host_runner(work / "model", compiled.c_files)
        xs = inputs_like(x, n_inputs, x.shape[1], x.shape[2], seed=1)
        refs = reference_f64.sequence_logits(params, xs)
        err_random = max(float(np.abs(run_host(exe, xs[i:i + 1]) - refs[i]).max()) for i in range(n_inputs))
    else:
        err_random = None
    return {"instructions": run.instructions, **{k: v for k, v in long_latency.items()},
            "charged": charged_cycles(run.instructions, long_latency) if trace else None,
            "flash": model_footprint(elf.with_suffix(".map"))["model_flash_bytes"],
            "ram": compiled.arena_bytes + compiled.state_bytes + stack,
            "err_sample": err, "err_random": err_random, "max_ref_logit": float(np.abs(ref).max())}


def main(argv=None) -> int:
    warnings.filterwarnings("ignore", category=FutureWarning)
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["kws10", "har6"])
    p.add_argument("--weights", nargs="+", default=["fp32", "int8"], choices=["fp32", "int8"])
    p.add_argument("--inputs", type=int, default=50, help="random inputs for the host error column (0: none)")
    p.add_argument("--no-trace", action="store_true", help="skip the VDIV/VSQRT count (the slow part)")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    record = load_schedule(boards.load_board(BOARD).core)
    results = {}
    header = (f"{'model':<7} {'weights':<7} {'step':<12} {'instructions':>12} {'VDIV':>7} {'charged':>12} "
              f"{'x before':>8} {'flash':>8} {'RAM':>7} {'|err| sample':>12} {'|err| random':>12}")
    print(header)
    print("-" * len(header))
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            spec = load_checkpoint(DATA / f"mambalite_{name}.npz")
            for weights in args.weights:
                first = None
                for label, fold, knobs in steps(record):
                    r = measure(spec, weights, knobs, Path(tmp) / f"{name}_{weights}_{len(results)}", args.inputs,
                                not args.no_trace, fold)
                    key = "charged" if r["charged"] is not None else "instructions"
                    first = first or r[key]
                    results[f"{name}/{weights}/{label}"] = {**r, "knobs": knobs}
                    vdiv = f"{r.get('vdiv', 0):>7,}" if r["charged"] is not None else f"{'-':>7}"
                    charged = f"{r['charged']:>12,}" if r["charged"] is not None else f"{'-':>12}"
                    rnd = f"{r['err_random']:>12.2e}" if r["err_random"] is not None else f"{'-':>12}"
                    smp = f"{r['err_sample']:>12.2e}" if r["err_sample"] is not None else f"{'-':>12}"
                    print(f"{name:<7} {weights:<7} {label:<12} {r['instructions']:>12,} {vdiv} {charged} "
                          f"{r[key] / first:>8.3f} {r['flash']:>8,} {r['ram']:>7,} {smp} {rnd}",
                          flush=True)
    print("\ninstructions: QEMU mps2-an500 -icount shift=0, one whole inference. VDIV: VDIV/VSQRT executed in that\n"
          "run, counted on the emulated device; charged = instructions + 13 x VDIV/VSQRT (14 cycles each on a\n"
          "Cortex-M7). x before = charged (or instructions) / the 'before' step. flash = the model's sections in the\n"
          "linker map; RAM = arena + state + stack measured on QEMU. |err| = max |logit error| vs the float64\n"
          "reference with the same weights: on the sample (device logits) and over the random inputs (host C);\n"
          "'-' for int8 before folding (the reference quantizes the folded weights).\n"
          f"'+ blocking' is the {boards.load_board(BOARD).core} schedule record (schedules/).")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
