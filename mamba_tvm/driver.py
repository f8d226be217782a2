"""The build driver: checkpoint -> compiled model -> host check -> target project -> (run).

Kept apart from the CLI so tests and the profiler call the same function.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np

from .errors import CompileError, MambaTVMError
from .project.budget import check_budget, check_flash

MODEL_DIR = "model"
DEFAULT_MODEL = Path(__file__).resolve().parent / "data" / "mambalite_kws10.npz"


def resolve_target(target: str):
    import boards

    table = boards.targets()
    if target not in table:
        raise CompileError(f"unknown target '{target}' (known: {', '.join(sorted(table))})")
    platform = target.split("/", 1)[0]
    return platform, table[target]


def compile_for_board(board, spec, seq_len: int, mode: str, fusion: str, weights: str):
    """compile_model with the kernel passes set by the schedule record of the board's core."""
    from schedules import load_schedule

    from .compiler import compile_model
    from .pipeline import mcu_pipeline

    return compile_model(spec, seq_len, mode=mode, fusion=fusion, weights=weights,
                         pipeline=mcu_pipeline(**load_schedule(board.core)))


def build(target: str, model: Path, out: Path | None = None, seq_len: int | None = None, run: bool = False,
          mode: str = "sequence", fusion: str = "timestep", weights: str = "fp32", app: str = "run") -> dict:
    """Compile `model` for `target` into `out`; return the report.

    app (Zephyr targets): "run" writes the run-once app, "rpc" the app that serves the model
    over the console UART for `python -m mamba_tvm.profile --port` (docs/rpc.md)."""
    from .frontend import load_checkpoint, reference_logits
    from .importer import example_input

    platform, board = resolve_target(target)
    if run and platform != "qemu":
        raise CompileError(f"--run needs an emulated target (qemu/...); '{target}' runs on real hardware only")
    if app not in ("run", "rpc"):
        raise CompileError(f"unknown app '{app}' (known: run, rpc)")
    if app != "run" and platform != "zephyr":
        raise CompileError(f"--app {app} is for Zephyr targets; for '{target}' use `python -m mamba_tvm.profile "
                           f"--target {target}`, which builds the RPC firmware and serves it on QEMU")
    spec = load_checkpoint(model)
    check_flash(board, spec.weight_bytes, platform=platform)  # weights are known now: refuse before compiling
    x = example_input(spec, seq_len)
    out = Path(out) if out else Path("build") / target
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        compiled = compile_for_board(board, spec, x.shape[1], mode, fusion, weights)
        check_budget(board, compiled.arena_bytes, 0, compiled.state_bytes, compiled.weights_bytes,
                     platform=platform)  # the arena is known now: refuse before writing and building the C
        model_dir = staging / MODEL_DIR
        compiled.write(model_dir)
        # the C must match the model it was given: with int8 weights, the int8 reference
        reference = reference_logits(spec, x, int8=weights == "int8")[0]
        report = {"target": target, "model": str(model), "seq_len": int(x.shape[1]),
                  "mode": mode, "fusion": fusion, "weights": weights,
                  "arena_bytes": compiled.arena_bytes,
                  "state_bytes": compiled.state_bytes,
                  "weights_bytes": compiled.weights_bytes,
                  # the input stays in the caller's buffer (a (1, T, F) array, or one frame when streaming)
                  "input_owned_by": "caller"}
        report.update(_host_check(model_dir, compiled.c_files, x, reference))
        report.update(_target_build(platform, board, staging, compiled, x, run, app, spec.name))
        logits = np.asarray(report["logits"], dtype=np.float32)
        report["max_abs_err_vs_torch"] = float(np.max(np.abs(logits - reference)))
        report["mean_abs_err_vs_torch"] = float(np.mean(np.abs(logits - reference)))
        report["argmax"] = int(np.argmax(logits))
        report["argmax_torch"] = int(np.argmax(reference))
        report["total_ram_bytes"] = report["arena_bytes"] + report["state_bytes"] + report["stack_bytes"]
        if weights == "int8":
            from .frontend.quantize import quantization_error

            report["fp32_weights_bytes"] = spec.weight_bytes
            report.update(quantization_error(spec, x))
        if "mambalite_c_logits" in spec.extras and spec.sample_input is not None and x is spec.sample_input:
            report["max_abs_err_vs_mambalite"] = float(np.max(np.abs(logits - spec.extras["mambalite_c_logits"])))
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    report["out_dir"] = str(out)
    return _relocate(report, staging, out)


def _relocate(report: dict, old: Path, new: Path) -> dict:
    return {k: (v.replace(str(old), str(new)) if isinstance(v, str) else v) for k, v in report.items()}


def _host_check(model_dir: Path, c_files: list[str], x: np.ndarray, reference: np.ndarray) -> dict:
    from .device.host import build_host_runner, run_host

    exe = build_host_runner(model_dir, c_files, out=model_dir.parent / "host_runner")
    logits = run_host(exe, x)
    return {"logits": logits.tolist(), "logits_from": "host",
            "host_max_abs_err_vs_torch": float(np.max(np.abs(logits - reference)))}


def _target_build(platform: str, board, staging: Path, compiled, x: np.ndarray, run: bool,
                  app: str = "run", model_name: str | None = None) -> dict:
    from .project.stack_usage import model_stack_bytes, stack_usage

    model_dir = staging / MODEL_DIR
    cflags = list(board.cflags)
    if shutil.which(board.cc) is None:
        raise MambaTVMError(f"{board.cc} not found: run tools/setup.sh to install the toolchains")
    usage = stack_usage(model_dir, compiled.c_files, board.cc, cflags)
    result = {"stack_bytes": model_stack_bytes(usage), "kernel_stack_bytes": usage, "instructions": None}
    result["placement"] = check_budget(board, compiled.arena_bytes, result["stack_bytes"], compiled.state_bytes,
                                       compiled.weights_bytes, platform=platform).region
    if platform == "qemu":
        result.update(_qemu_build(staging, compiled, x, cflags, run, board.core))
    elif platform == "zephyr":
        result.update(_zephyr_build(staging, board, compiled, x, result, app, model_name))
    return result


def _zephyr_build(staging: Path, board, compiled, x: np.ndarray, result: dict, app: str = "run",
                  model_name: str | None = None) -> dict:
    from .errors import BuildError
    from .project.zephyr import write_zephyr_app
    from .project.zephyr_check import check_zephyr_app

    sizes = {"arena_bytes": compiled.arena_bytes, "weights_bytes": compiled.weights_bytes,
             "state_bytes": compiled.state_bytes, "stack_bytes": result["stack_bytes"],
             "placement": result["placement"]}
    app_dir = write_zephyr_app(staging, board, staging / MODEL_DIR, x, sizes, app=app, compiled=compiled,
                               model_name=model_name)
    problems = check_zephyr_app(app_dir, board)
    if problems:
        raise BuildError(f"generated Zephyr app fails its structural check: {'; '.join(problems)}")
    return {"zephyr_app": str(app_dir), "zephyr_app_kind": app}


def _qemu_build(staging: Path, compiled, x: np.ndarray, cflags: list[str], run: bool,
                core: str = "cortex-m7") -> dict:
    from .device.qemu import run_elf
    from .project.baremetal import build_elf, elf_forbidden_symbols, elf_size, write_baremetal_project
    from .project.linker_map import model_footprint

    write_baremetal_project(staging, [f"{MODEL_DIR}/{f}" for f in compiled.c_files], x, cflags, core)
    elf = build_elf(staging)
    heap = elf_forbidden_symbols(elf)
    if heap:
        raise CompileError(f"the firmware links heap functions {heap}: the model must not allocate")
    size = elf_size(elf)
    result = {"elf": str(elf), "flash_bytes": size["text"] + size["data"],
              **model_footprint(elf.with_suffix(".map"))}
    if run:
        dev = run_elf(elf)
        result.update({"logits": dev.logits.tolist(), "logits_from": "qemu", "instructions": dev.instructions,
                       "device_stack_bytes": (dev.stack_used - dev.stack_at_call)
                       if dev.stack_used is not None and dev.stack_at_call is not None else None})
    return result
