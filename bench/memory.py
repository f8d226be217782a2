"""Memory and instruction benchmark on both emulated cores, side by side, measured in one run.

For each bundled model it compiles the layer-by-layer plan (TVM's usual whole-tensor
schedule, the baseline), time-step fused whole-sequence inference, streaming, and both
fused modes with int8 weights (each core's schedule record, schedules/<core>.toml), and builds and
runs each on both emulated cores:
- Cortex-M7: the nucleo_h743zi flags, arm-none-eabi-gcc, QEMU mps2-an500 (instructions from
  the on-device timer under `-icount shift=0`);
- Xtensa LX7 with FPU: clang-22 with de233_fpu's ISA options (the ESP32-S3's but MUL32_HIGH),
  QEMU sim (instructions from the core's ICOUNT register).
Instructions, not cycles. Bytes come from the plan and from each core's linker map; the
stack is measured on the device (stack painting). Ratios are against the layer-by-layer plan
of the same model on the same core, and LX7/M7 compares the cores.

    python bench/memory.py [--models kws10 kws3 har6] [--cores m7 lx7] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import boards  # noqa: E402
from mamba_tvm.device.qemu import run_elf  # noqa: E402
from mamba_tvm.driver import compile_for_board  # noqa: E402
from mamba_tvm.frontend import load_checkpoint  # noqa: E402
from mamba_tvm.project.baremetal import build_elf, write_baremetal_project  # noqa: E402
from mamba_tvm.project.linker_map import model_footprint  # noqa: E402
from schedules import load_schedule  # noqa: E402
from tests import reference_f64  # noqa: E402  (the independent float64 reference)

DATA = Path(__file__).resolve().parents[1] / "mamba_tvm" / "data"
VARIANTS = [  # (label, mode, fusion, weights)
    ("layer (baseline)", "sequence", "layer", "fp32"),
    ("timestep fused", "sequence", "timestep", "fp32"),
    ("stream", "stream", "timestep", "fp32"),
    ("timestep int8", "sequence", "timestep", "int8"),
    ("stream int8", "stream", "timestep", "int8"),
]
#: core label -> (board whose compiler flags are used, board whose core the firmware is for)
CORES = {"m7": ("nucleo_h743zi", "mps2_an500"), "lx7": ("xtensa_lx7", "xtensa_lx7")}


_COMPILED: dict = {}


def compiled_for(spec, variant, board):
    """The model compiled with the schedule record of the board's core; cores whose records
    agree share one compile."""
    key = (spec.name, variant, tuple(sorted(load_schedule(board.core).items())))
    if key not in _COMPILED:
        _, mode, fusion, weights = variant
        _COMPILED[key] = compile_for_board(board, spec, spec.sample_input.shape[1], mode, fusion, weights)
    return _COMPILED[key]


def measure(spec, variant: tuple[str, str, str, str], core: str, work: Path) -> dict:
    weights = variant[3]
    flags_board, target_board = (boards.load_board(n) for n in CORES[core])
    x = spec.sample_input
    compiled = compiled_for(spec, variant, target_board)
    compiled.write(work / "model")
    write_baremetal_project(work, [f"model/{f}" for f in compiled.c_files], x, list(flags_board.cflags),
                            core=target_board.core)
    elf = build_elf(work)
    run = run_elf(elf)
    params = reference_f64.load_npz(DATA / f"{spec.name}.npz")[0]
    fp32 = reference_f64.sequence_logits(params, x)[0]
    ref = reference_f64.sequence_logits(reference_f64.int8_params(params), x)[0] if weights == "int8" else fp32
    stack = run.stack_used - run.stack_at_call
    return {"arena": compiled.arena_bytes, "state": compiled.state_bytes, "stack": stack,
            "total_ram": compiled.arena_bytes + compiled.state_bytes + stack,
            **model_footprint(elf.with_suffix(".map")), "instructions": run.instructions,
            "err_vs_own_ref": float(abs(run.logits - ref).max()), "err_vs_fp32": float(abs(run.logits - fp32).max())}


def main(argv=None) -> int:
    warnings.filterwarnings("ignore", category=FutureWarning)
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["kws10", "kws3", "har6"])
    p.add_argument("--cores", nargs="+", choices=sorted(CORES), default=["m7", "lx7"])
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    cores = [c for c in CORES if c in args.cores]
    results: dict[str, dict] = {}
    per_core = "".join(f" | {c.upper() + ' stack':>9} {'flash':>7} {'instructions':>13} {'instr x':>7}" for c in cores)
    header = (f"{'model':<7} {'variant':<17} {'arena':>7} {'state':>6} {'RAM x':>6}{per_core}"
              + (f" | {'LX7/M7':>6}" if len(cores) == 2 else "") + f" | {'|err| own':>9} {'|err| fp32':>10}")
    print(header)
    print("-" * len(header))
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            spec = load_checkpoint(DATA / f"mambalite_{name}.npz")
            base: dict[str, dict] = {}
            for variant in VARIANTS:
                row = {c: measure(spec, variant, c, Path(tmp) / f"{name}_{c}_{'_'.join(variant[1:])}") for c in cores}
                for c in cores:
                    base.setdefault(c, row[c])
                    results[f"{name}/{variant[0]}/{c}"] = row[c]
                first = row[cores[0]]
                line = (f"{name:<7} {variant[0]:<17} {first['arena']:>7} {first['state']:>6} "
                        f"{first['total_ram'] / base[cores[0]]['total_ram']:>6.3f}")
                for c in cores:
                    r = row[c]
                    line += (f" | {r['stack']:>9} {r['model_flash_bytes']:>7} {r['instructions']:>13,} "
                             f"{r['instructions'] / base[c]['instructions']:>7.3f}")
                if len(cores) == 2:
                    line += f" | {row['lx7']['instructions'] / row['m7']['instructions']:>6.3f}"
                err_own = max(row[c]["err_vs_own_ref"] for c in cores)
                err_fp32 = max(row[c]["err_vs_fp32"] for c in cores)
                print(line + f" | {err_own:>9.2e} {err_fp32:>10.2e}", flush=True)
    print("\nbytes: arena/state from the plan (the same on both cores), stack measured on QEMU (stack painting),\n"
          "flash = the model's own .text/.rodata sections in each core's linker map; the input (T x F floats)\n"
          "stays in the caller's buffer. instructions: M7 from TIMER0 under -icount, LX7 from ICOUNT (window\n"
          "spill handlers included); not cycles. x = ratio to the layer-by-layer plan of the same model on the\n"
          "same core (RAM x on the first core); LX7/M7 = instructions on the LX7 over the M7. |err| own = vs\n"
          "the float64 reference (tests/reference_f64.py) with the same weights (fp32 or int8), |err| fp32 = vs\n"
          "the fp32 model's float64 reference;\n"
          "the larger of the two cores.")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
