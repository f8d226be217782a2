"""Memory and instruction benchmark: every fixture in every execution mode, measured in one run.

For each bundled model it compiles the layer-by-layer plan (TVM's usual whole-tensor
schedule, the baseline), time-step fused whole-sequence inference, streaming, and both
fused modes with int8 weights, with the Cortex-M7 schedule record (schedules/cortex-m7.toml);
builds each for the Cortex-M7 (nucleo_h743zi flags), links it
for QEMU mps2-an500 and runs it there. Bytes come from the plan and from the arm-none-eabi
linker map; instructions from the on-device timer under `-icount shift=0` (instructions,
not cycles). Ratios are against the layer-by-layer plan of the same model.

    python bench/memory.py [--models kws10 kws3 har6] [--json out.json]
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
from mamba_tvm.compiler import compile_model  # noqa: E402
from mamba_tvm.device.qemu import run_elf  # noqa: E402
from mamba_tvm.frontend import load_checkpoint, reference_logits  # noqa: E402
from mamba_tvm.pipeline import mcu_pipeline  # noqa: E402
from mamba_tvm.project.baremetal import build_elf, write_baremetal_project  # noqa: E402
from mamba_tvm.project.linker_map import model_footprint  # noqa: E402
from schedules import load_schedule  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "mamba_tvm" / "data"
VARIANTS = [  # (label, mode, fusion, weights)
    ("layer (baseline)", "sequence", "layer", "fp32"),
    ("timestep fused", "sequence", "timestep", "fp32"),
    ("stream", "stream", "timestep", "fp32"),
    ("timestep int8", "sequence", "timestep", "int8"),
    ("stream int8", "stream", "timestep", "int8"),
]


def measure(spec, mode: str, fusion: str, weights: str, work: Path) -> dict:
    x = spec.sample_input
    board = boards.load_board("nucleo_h743zi")
    compiled = compile_model(spec, x.shape[1], mode=mode, fusion=fusion, weights=weights,
                             pipeline=mcu_pipeline(**load_schedule(board.core)))  # the kernels the board gets
    compiled.write(work / "model")
    write_baremetal_project(work, [f"model/{f}" for f in compiled.c_files], x, list(board.cflags))
    elf = build_elf(work)
    run = run_elf(elf)
    ref = reference_logits(spec, x, int8=weights == "int8")[0]
    fp32 = reference_logits(spec, x)[0]
    stack = run.stack_used - run.stack_at_call
    return {"arena": compiled.arena_bytes, "state": compiled.state_bytes, "stack": stack,
            "total_ram": compiled.arena_bytes + compiled.state_bytes + stack,
            **model_footprint(elf.with_suffix(".map")), "instructions": run.instructions,
            "err_vs_own_ref": float(abs(run.logits - ref).max()), "err_vs_fp32": float(abs(run.logits - fp32).max())}


def main(argv=None) -> int:
    warnings.filterwarnings("ignore", category=FutureWarning)
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["kws10", "kws3", "har6"])
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    results = {}
    header = (f"{'model':<7} {'variant':<17} {'arena':>8} {'state':>7} {'stack':>6} {'total RAM':>10} "
              f"{'flash':>8} {'instructions':>13} {'RAM x':>7} {'instr x':>8} {'|err| own':>10} {'|err| fp32':>10}")
    print(header)
    print("-" * len(header))
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            spec = load_checkpoint(DATA / f"mambalite_{name}.npz")
            base = None
            for label, mode, fusion, weights in VARIANTS:
                r = measure(spec, mode, fusion, weights, Path(tmp) / f"{name}_{mode}_{fusion}_{weights}")
                base = base or r
                results[f"{name}/{label}"] = r
                print(f"{name:<7} {label:<17} {r['arena']:>8} {r['state']:>7} {r['stack']:>6} {r['total_ram']:>10} "
                      f"{r['model_flash_bytes']:>8} {r['instructions']:>13,} "
                      f"{r['total_ram'] / base['total_ram']:>7.3f} {r['instructions'] / base['instructions']:>8.3f} "
                      f"{r['err_vs_own_ref']:>10.2e} {r['err_vs_fp32']:>10.2e}")
    print("\nbytes: arena/state from the plan, stack measured on QEMU (stack painting), flash = the model's own\n"
          ".text/.rodata sections in the linker map. The input (T x F floats) stays in the caller's buffer.\n"
          "x = ratio to the layer-by-layer plan of the same model. |err| own = vs the PyTorch model with the\n"
          "same weights (fp32 or int8); |err| fp32 = vs the fp32 PyTorch model.")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
