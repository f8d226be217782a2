"""Tuning benchmark: the fixed rules vs the checked-in tuned records, on both emulated cores.

For KWS-10 and HAR-6 (fp32, time-step fused, the bundled fixtures) and each core (Cortex-M7 on
QEMU mps2-an500, Xtensa LX7 on QEMU's de233_fpu) it compiles the model three ways, builds it
with the core's toolchain and flags, runs one inference on QEMU and prints the instructions:

- default: the fixed rules only (schedules/<core>.toml);
- tuned: plus the core's tuned record (schedules/<core>.json), as every build applies it;
- cross: the other core's per-kernel choices instead (what one chip's choices cost on the
  other; the model-level knobs stay this core's, since the M7's FMA does not build on the LX7).

Parity: max |logit error| against the float64 reference (the module in float64) and the bound
1e-5 * max(1, max |reference|). The last line is one JSON object:
{"kws10": {"cortex-m7": {"default": N, "tuned": N, "ratio": R, ...}, "xtensa-lx7": {...}}, ...}

    python bench/tune.py [--models kws10 har6] [--cores cortex-m7 xtensa-lx7]
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
import torch  # noqa: E402

from mamba_tvm.compiler import compile_model  # noqa: E402
from mamba_tvm.device.qemu import run_elf  # noqa: E402
from mamba_tvm.driver import resolve_target  # noqa: E402
from mamba_tvm.frontend.model import load_model  # noqa: E402
from mamba_tvm.frontend.reference import reference_logits  # noqa: E402
from mamba_tvm.pipeline import mcu_pipeline  # noqa: E402
from mamba_tvm.project.baremetal import build_elf, write_baremetal_project  # noqa: E402
from mamba_tvm.tune.tuner import PARITY_REL  # noqa: E402  (the bound the tuner and the tests hold)
from schedules import DEFAULT, load_schedule, load_tuned  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "mamba_tvm" / "data"
TARGETS = {"cortex-m7": "qemu/mps2_an500", "xtensa-lx7": "qemu/xtensa_lx7"}


#: what a core's compiler dictates (LLVM 22 for the LX7: no fmaf, no libm, a software divide):
#: kept from its record when measuring the generic rules
TOOLCHAIN_KNOBS = ("fma", "fminmax", "divide")


def generic_rules(core: str) -> dict:
    """The rules every core starts from (schedules.DEFAULT: what the records held when tuning
    began), with the core's toolchain constraints."""
    fixed = load_schedule(core)
    return {**DEFAULT, **{k: fixed[k] for k in TOOLCHAIN_KNOBS}}


def measure(model, core: str, record_core: str | None, work: Path, reference: np.ndarray,
            generic: bool = False) -> dict:
    """One inference of `model` on `core`'s QEMU with the fixed rules (+ `record_core`'s record),
    or with the generic rules."""
    board = resolve_target(TARGETS[core])[1]
    x = model.sample_input
    knobs, tuned, decisions = (generic_rules(core) if generic else load_schedule(core)), None, {}
    if record_core is not None:
        # the model-level knobs stay this core's: the M7's FMA does not build for the LX7 (LLVM 22
        # calls a library fmaf the LX7 lacks), so "cross" is the cost of the per-kernel choices
        knobs.update(load_tuned(core)[0])
        tuned = load_tuned(record_core)[1]
    compiled = compile_model(model, x.shape[1], pipeline=mcu_pipeline(tuned=tuned, decisions=decisions, **knobs))
    compiled.write(work / "model")
    write_baremetal_project(work, [f"model/{f}" for f in compiled.c_files], x, list(board.cflags), core)
    run = run_elf(build_elf(work))
    err = float(np.max(np.abs(run.logits.astype(np.float64) - reference)))
    bound = PARITY_REL * max(1.0, float(np.max(np.abs(reference))))
    tuned_kernels = sorted(n for n, d in decisions.items() if d["schedule"] == "tuned" and n in compiled.kernels)
    return {"instructions": int(run.instructions), "max_abs_err": err, "bound": bound, "parity": err <= bound,
            "argmax": int(np.argmax(run.logits)) == int(np.argmax(reference)), "tuned_kernels": tuned_kernels}


def main(argv=None) -> int:
    warnings.filterwarnings("ignore", category=FutureWarning)
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["kws10", "har6"])
    p.add_argument("--cores", nargs="+", default=list(TARGETS), choices=list(TARGETS))
    p.add_argument("--no-cross", action="store_true", help="skip the other core's record")
    args = p.parse_args(argv)
    summary: dict = {}
    head = (f"{'model':<6} {'core':<11} {'generic':>12} {'default':>12} {'tuned':>12} {'ratio':>6} {'g/t':>6} {'cross':>12} "
            f"{'cross/tuned':>11} {'|err| tuned':>11} {'bound':>8} parity")
    print(head)
    print("-" * len(head))
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            model = load_model(DATA / f"mambalite_{name}.npz")
            reference = reference_logits(model.module, model.sample_input, torch.float64)[0]
            for core in args.cores:
                other = next(c for c in TARGETS if c != core)
                runs = {label: measure(model, core, rc, Path(tmp) / f"{name}_{core}_{label}", reference)
                        for label, rc in (("default", None), ("tuned", core))
                        + ((("cross", other),) if not args.no_cross else ())}
                runs["generic"] = measure(model, core, None, Path(tmp) / f"{name}_{core}_generic", reference, True)
                d, t = runs["default"]["instructions"], runs["tuned"]["instructions"]
                g = runs["generic"]["instructions"]
                c = runs.get("cross", {}).get("instructions")
                ok = all(r["parity"] and r["argmax"] for r in runs.values())
                summary.setdefault(name, {})[core] = {
                    "default": d, "tuned": t, "ratio": round(d / t, 4), "generic": g,
                    "ratio_generic": round(g / t, 4),
                    **({"cross": c, "cross_record": other} if c else {}),
                    "max_abs_err": runs["tuned"]["max_abs_err"], "parity": ok,
                    "tuned_kernels": runs["tuned"]["tuned_kernels"]}
                cross = f"{c:>12,}" if c else f"{'-':>12}"
                cross_ratio = f"{c / t:>11.3f}" if c else f"{'-':>11}"
                print(f"{name:<6} {core:<11} {g:>12,} {d:>12,} {t:>12,} {d / t:>6.3f} {g / t:>6.3f} {cross} {cross_ratio} "
                      f"{runs['tuned']['max_abs_err']:>11.2e} {runs['tuned']['bound']:>8.1e} "
                      f"{'ok' if ok else 'FAIL'}", flush=True)
    print("\ninstructions: one whole inference on QEMU (mps2-an500 -icount; the LX7's ICOUNT). default = the fixed\n"
          "rules (schedules/<core>.toml), tuned = + schedules/<core>.json, cross = + the other core's .json;\n"
          "ratio = default / tuned; generic = the rules every core starts from (schedules.DEFAULT, the\n"
          "core's fma/fminmax/divide), g/t = generic / tuned. parity: every variant within\n"
          "1e-5 * max(1, max|ref|) of the float64 reference with the same argmax.")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
