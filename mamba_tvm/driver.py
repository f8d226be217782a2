"""The build driver: checkpoint -> compiled model -> host check -> target project -> (run).

Kept apart from the CLI so tests and the profiler call the same function.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import __version__
from .codegen import ARENAS
from .codegen.module_name import DEFAULT as DEFAULT_MODULE, api_prefix, check_module_name
from .errors import BuildError, CompileError, MambaTVMError
from .progress import step
from .project.budget import check_budget, check_flash

MODEL_DIR = "model"
REPORT = "report.json"
DEFAULT_MODEL = Path(__file__).resolve().parent / "data" / "mambalite_kws10.npz"


def resolve_target(target: str):
    import boards

    table = boards.targets()
    if target not in table:
        raise CompileError(f"unknown target '{target}' (known: {', '.join(sorted(table))})")
    platform = target.split("/", 1)[0]
    return platform, table[target]


def compile_for_board(board, model, seq_len: int, mode: str, fusion: str, weights: str,
                      module_name: str = DEFAULT_MODULE, arena: str = "static"):
    """compile_model with the kernel passes set by the schedule records of the board's core: the
    fixed rules (<core>.toml), and per kernel the tuned record (<core>.json) where it has the
    kernel's signature and shape. `compiled.schedule` says which each kernel got, and why not."""
    from schedules import load_schedule, load_tuned, unmatched_notes

    from .compiler import compile_model
    from .pipeline import mcu_pipeline

    model_knobs, tuned, notes, record = load_tuned(board.core)
    decisions: dict = {}
    knobs = {**load_schedule(board.core), **model_knobs}
    compiled = compile_model(model, seq_len, mode=mode, fusion=fusion, weights=weights, module_name=module_name,
                             arena=arena, pipeline=mcu_pipeline(tuned=tuned, decisions=decisions, **knobs))
    compiled.schedule = {name: d["schedule"] for name, d in decisions.items() if name in compiled.kernels}
    compiled.schedule_notes = notes + unmatched_notes(record, decisions, board.core)
    return compiled


def build(target: str, model, out: Path | None = None, seq_len: int | None = None, run: bool = False,
          mode: str = "sequence", fusion: str = "timestep", weights: str = "fp32", app: str = "run",
          trust_pickle: bool = False, emit: tuple = (), module_name: str = DEFAULT_MODULE,
          arena: str = "static") -> dict:
    """build_model's report (the CLI's JSON)."""
    return build_model(target, model, out, seq_len, run, mode, fusion, weights, app, trust_pickle, emit,
                       module_name, arena)[0]


#: extra outputs `--emit` writes beside model/: name -> where in the output folder
EMITS = {"mlf": "model.tar", "zephyr-module": "zephyr_module"}


def build_model(target: str, model, out: Path | None = None, seq_len: int | None = None, run: bool = False,
                mode: str = "sequence", fusion: str = "timestep", weights: str = "fp32", app: str = "run",
                trust_pickle: bool = False, emit: tuple = (), module_name: str = DEFAULT_MODULE,
                arena: str = "static"):
    """Compile `model` (a model file, or a frontend.model.Model) for `target` into `out`; return
    (the report, the CompiledModel).

    module_name: the prefix of the model's C names, tvmgen_<module_name>_ (several models in one
    firmware); the harnesses and apps written around the model use it too. arena "caller": the
    application owns the arena and passes it to every call (the harnesses and the run app do).

    app (Zephyr targets): "run" writes the run-once app, "rpc" the app that serves the model
    over the console UART for `python -m mamba_tvm.profile --port` (docs/rpc.md).
    The output folder follows outdir.py's contract: written only on success, replacing only
    a previous mamba_tvm output."""
    from .frontend.check_inputs import check_input
    from .frontend.model import Model, load_model
    from .outdir import OutputDir, check_output_dir

    platform, board = resolve_target(target)
    if run and platform != "qemu":
        raise CompileError(f"--run needs an emulated target (qemu/...); '{target}' runs on real hardware only")
    unknown = [e for e in emit if e not in EMITS]
    if unknown:
        raise CompileError(f"unknown --emit {', '.join(unknown)} (known: {', '.join(EMITS)})")
    if app not in ("run", "rpc"):
        raise CompileError(f"unknown app '{app}' (known: run, rpc)")
    check_module_name(module_name)
    if arena not in ARENAS:
        raise CompileError(f"unknown --arena '{arena}' (known: {', '.join(ARENAS)})")
    if arena == "caller" and app == "rpc":
        raise CompileError("--arena caller is for the run app and your own firmware; the RPC app and profiling "
                           "use the static arena")
    if app != "run" and platform != "zephyr":
        raise CompileError(f"--app {app} is for Zephyr targets; for '{target}' use `python -m mamba_tvm.profile "
                           f"--target {target}`, which builds the RPC firmware and serves it on QEMU")
    inputs = [] if isinstance(model, Model) else [Path(model)]
    out = Path(out) if out else Path("build") / target
    check_output_dir(out, inputs)  # cheap: refuse a bad --out before loading anything
    if not isinstance(model, Model):
        with step("loading the model"):
            model = load_model(model, trust_pickle=trust_pickle)
    x, check_desc = check_input(model, seq_len)
    # refuse before compiling: the weights as stored (int8 when quantized) must fit the flash
    check_flash(board, model.estimated_weight_bytes(weights), platform=platform)
    output = OutputDir(out, inputs)
    with output as staging:
        with step("running the reference"):
            reference = _finite_reference(model, x)  # the user's module: what the C must compute
        with step(f"compiling ({fusion}, {mode}, {weights})"):
            compiled = compile_for_board(board, model, x.shape[1], mode, fusion, weights, module_name, arena)
        check_budget(board, compiled.arena_bytes, 0, compiled.state_bytes, compiled.weights_bytes,
                     platform=platform)  # the arena is known now: refuse before writing and building the C
        model_dir = staging / MODEL_DIR
        compiled.write(model_dir)
        report = {"target": target, "model": str(inputs[0]) if inputs else model.name, "seq_len": int(x.shape[1]),
                  "mode": mode, "fusion": fusion, "weights": weights, "module_name": module_name, "arena": arena,
                  "check_input": check_desc,
                  "arena_bytes": compiled.arena_bytes,
                  "state_bytes": compiled.state_bytes,
                  "weights_bytes": compiled.weights_bytes,
                  # the input stays in the caller's buffer (a (1, T, F) array, or one frame when streaming)
                  "input_owned_by": "caller"}
        report["reference"] = ("the ONNX model in onnx's reference evaluator" if model.onnx_model is not None
                               else "the PyTorch module, float32")
        report["schedule"] = dict(sorted(compiled.schedule.items()))  # per kernel: tuned | default
        if model.notes or compiled.schedule_notes:
            report["notes"] = list(model.notes) + list(compiled.schedule_notes)
        with step("host build and check"):
            host = _host_check(model_dir, compiled.c_files, x, reference, module_name)
        report.update(host.report)
        target_report = _target_build(platform, board, staging, compiled, x, run, app, model.name)
        target_notes = target_report.pop("notes", [])
        report.update(target_report)
        if target_notes:
            report["notes"] = report.get("notes", []) + target_notes
        report.update(_emit(emit, staging, compiled, board, model.name, target))
        logits = np.asarray(report["logits"], dtype=np.float32)
        demo = x[:, :report.get("demo_input_frames", x.shape[1])]
        if report["logits_from"] != "host" and demo.shape[1] != x.shape[1]:  # the device ran a shortened demo
            reference = _finite_reference(model, demo)
        _require_finite(logits, f"{report['logits_from']} logits")
        report["max_abs_err_vs_torch"] = float(np.max(np.abs(logits - reference)))
        if weights != "int8":  # int8 logits differ from the float model by design: checked against the int8 graph
            _require_agreement(logits, reference, report["reference"], report["logits_from"])
        report["mean_abs_err_vs_torch"] = float(np.mean(np.abs(logits - reference)))
        report["argmax"] = int(np.argmax(logits))
        report["argmax_torch"] = int(np.argmax(reference))
        report["total_ram_bytes"] = report["arena_bytes"] + report["state_bytes"] + report["stack_bytes"]
        if weights == "int8":
            from .frontend.quantize import quantization_error

            report["fp32_weights_bytes"] = model.weight_bytes
            with step("int8 checks"):
                graph = int8_graph_logits(model, demo if report["logits_from"] != "host" else x)
                report["max_abs_err_vs_int8_graph"] = float(np.max(np.abs(logits - graph)))
                _require_agreement(logits, graph, "the int8 graph on TVM's VM", report["logits_from"])
                report.update(quantization_error(model, x, host.run))
            _require_finite(np.asarray([report["int8_max_logit_change"]]), "int8 logit change")
        if "mambalite_c_logits" in model.extras and check_desc == "sample_input" and "demo_input_frames" not in report:
            report["max_abs_err_vs_mambalite"] = float(np.max(np.abs(logits - model.extras["mambalite_c_logits"])))
        report = _relocate(report, staging, out)
        report["out_dir"] = str(out)
        json.dumps(report, allow_nan=False)  # every report is valid JSON: no NaN or Inf anywhere
        (staging / REPORT).write_text(json.dumps(report, indent=1) + "\n")
        output.commit({"written_by": "mamba_tvm", "version": __version__, "target": target,
                       "model": report["model"]})
    return report, compiled


def _emit(emit, staging: Path, compiled, board, model_name: str, target: str) -> dict:
    """--emit: the Model Library Format tarball and/or the Zephyr module, each checked."""
    result = {}
    if "mlf" in emit:
        from .project.mlf import write_mlf

        with step("Model Library Format"):
            result["mlf"] = str(write_mlf(staging / EMITS["mlf"], compiled, board))
    if "zephyr-module" in emit:
        from .project.zephyr_module import check_zephyr_module, write_zephyr_module

        with step("Zephyr module"):
            module = write_zephyr_module(staging / EMITS["zephyr-module"], compiled, model_name, target)
            problems = check_zephyr_module(module, board)
        if problems:
            raise BuildError(f"generated Zephyr module fails its structural check: {'; '.join(problems)}")
        result["zephyr_module"] = str(module)
    return result


def int8_graph_logits(model, x: np.ndarray) -> np.ndarray:
    """What the int8 C must compute: the quantized graph on TVM's VM (graph_reference.py)."""
    import tvm

    from .compiler import import_model
    from .graph_reference import run_graph
    from .pipeline import model_passes

    mod = import_model(model, x.shape[1])
    mod = tvm.transform.Sequential(model_passes("layer", "int8", lower=False))(mod)
    return run_graph(mod, x)[0]


def _finite_reference(model, x: np.ndarray) -> np.ndarray:
    """The user's module's float32 logits; a model whose values overflow on the check input is
    refused, naming where they stop being finite."""
    from .frontend.reference import first_nonfinite_layer

    logits = model.reference(x)[0]
    if not np.all(np.isfinite(logits)):
        where = (first_nonfinite_layer(model.module, x) if model.module is not None else None) or "the logits"
        raise CompileError(f"the model's values stop being finite {where} on the check input "
                           f"(float32 overflow: weights too large?); nothing was built")
    return logits


def _require_finite(values: np.ndarray, what: str) -> None:
    if not np.all(np.isfinite(values)):
        raise BuildError(f"the {what} are not finite ({values.tolist()}) although the PyTorch reference is: "
                         "the generated code is wrong; please report it with the model")


#: the self-check's gate, relative to max(1, max |reference logit|): ten times the parity bound
#: the test suite holds every form to against float64 (the reference here is float32)
AGREEMENT_BOUND = 1e-4


def _require_agreement(logits: np.ndarray, reference: np.ndarray, what: str, where: str) -> None:
    """A build whose logits disagree with the reference is a miscompile: refuse it rather than
    write a binary that is silently wrong."""
    from .errors import MiscompileError

    bound = AGREEMENT_BOUND * max(1.0, float(np.max(np.abs(reference))))
    err = float(np.max(np.abs(logits - reference)))
    if not err <= bound:
        raise MiscompileError(f"the compiled model's logits ({where}) differ from {what} by {err:.3g} on the check "
                              f"input (allowed {bound:.3g}); nothing was written")


def _relocate(report: dict, old: Path, new: Path) -> dict:
    return {k: (v.replace(str(old), str(new)) if isinstance(v, str) else v) for k, v in report.items()}


@dataclass
class HostCheck:
    report: dict
    run: object  # x (1, T, F) -> logits, through the host build of the generated C


def _host_check(model_dir: Path, c_files: list[str], x: np.ndarray, reference: np.ndarray,
                module_name: str = DEFAULT_MODULE) -> HostCheck:
    from .device.host import build_host_runner, run_host

    exe = build_host_runner(model_dir, c_files, out=model_dir.parent / "host_runner", module_name=module_name)
    logits = run_host(exe, x)
    return HostCheck({"logits": logits.tolist(), "logits_from": "host",
                      "host_max_abs_err_vs_torch": float(np.max(np.abs(logits - reference)))},
                     lambda xi: run_host(exe, xi))


def _target_build(platform: str, board, staging: Path, compiled, x: np.ndarray, run: bool,
                  app: str = "run", model_name: str | None = None) -> dict:
    from .project.stack_usage import model_stack_bytes, stack_usage

    model_dir = staging / MODEL_DIR
    cflags = list(board.cflags)
    if shutil.which(board.cc) is None:
        raise MambaTVMError(f"{board.cc} not found: run tools/setup.sh to install the toolchains")
    with step(f"stack usage ({board.cc})"):
        usage = stack_usage(model_dir, compiled.c_files, board.cc, cflags)
    result = {"stack_bytes": model_stack_bytes(usage, api_prefix(compiled.module_name)), "kernel_stack_bytes": usage,
              "instructions": None}
    demo = _fit_demo_input(board, platform, compiled, result["stack_bytes"], x, app)
    if demo.shape[1] != x.shape[1]:
        result["demo_input_frames"] = int(demo.shape[1])
        result.setdefault("notes", []).append(
            f"the app's baked demo input is the first {demo.shape[1]} of the {x.shape[1]} frames (the whole input "
            f"does not fit {board.name}); the host check ran all {x.shape[1]}")
    result["placement"] = _app_budget(board, platform, compiled, result["stack_bytes"], demo, app).region
    if platform == "qemu":
        result.update(_qemu_build(staging, compiled, demo, cflags, run, board.core))
    elif platform == "zephyr":
        result.update(_zephyr_build(staging, board, compiled, demo, result, app, model_name))
    return result


#: static buffers of the RPC server beside the model's input and output (runtime_c/rpc: frames, reply cache)
RPC_SERVER_RAM_BYTES = 3300


def _app_budget(board, platform: str, compiled, stack_bytes: int, demo: np.ndarray, app: str):
    """Everything the generated app holds: the model (arena, state, stack, weights) and the app's
    own input buffer (a RAM copy of the demo input, or the RPC input tensor) and baked sample."""
    sample_bytes = 0 if app == "rpc" else demo.nbytes
    input_bytes = demo.nbytes + (RPC_SERVER_RAM_BYTES if app == "rpc" else 0)
    return check_budget(board, compiled.arena_bytes, stack_bytes, compiled.state_bytes, compiled.weights_bytes,
                        platform=platform, input_bytes=input_bytes, sample_bytes=sample_bytes)


def _fit_demo_input(board, platform: str, compiled, stack_bytes: int, x: np.ndarray, app: str) -> np.ndarray:
    """x, or for a streaming model whose whole input does not fit the board, its first frames:
    the most that fit (a sequence model takes exactly T frames, so it is refused instead)."""
    from .errors import BudgetError

    try:
        _app_budget(board, platform, compiled, stack_bytes, x, app)
        return x
    except BudgetError:
        if compiled.mode != "stream" or app == "rpc":
            raise
    lo, hi = 0, x.shape[1]
    while lo < hi:  # the largest frame count that fits
        mid = (lo + hi + 1) // 2
        try:
            _app_budget(board, platform, compiled, stack_bytes, x[:, :mid], app)
            lo = mid
        except BudgetError:
            hi = mid - 1
    if lo == 0:
        _app_budget(board, platform, compiled, stack_bytes, x[:, :1], app)  # raises, naming the sizes
    return x[:, :lo]


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
    with step("Zephyr app check"):
        problems = check_zephyr_app(app_dir, board, compiled.module_name)
    if problems:
        raise BuildError(f"generated Zephyr app fails its structural check: {'; '.join(problems)}")
    return {"zephyr_app": str(app_dir), "zephyr_app_kind": app}


def _qemu_build(staging: Path, compiled, x: np.ndarray, cflags: list[str], run: bool,
                core: str = "cortex-m7") -> dict:
    from .device.qemu import run_elf
    from .project.baremetal import build_elf, elf_forbidden_symbols, elf_size, write_baremetal_project
    from .project.linker_map import model_footprint

    write_baremetal_project(staging, [f"{MODEL_DIR}/{f}" for f in compiled.c_files], x, cflags, core,
                            compiled.module_name)
    with step("firmware build"):
        elf = build_elf(staging)
    heap = elf_forbidden_symbols(elf)
    if heap:
        raise CompileError(f"the firmware links heap functions {heap}: the model must not allocate")
    size = elf_size(elf)
    result = {"elf": str(elf), "flash_bytes": size["text"] + size["data"],
              **model_footprint(elf.with_suffix(".map"))}
    if run:
        with step("running on QEMU"):
            dev = run_elf(elf)
        result.update({"logits": dev.logits.tolist(), "logits_from": "qemu", "instructions": dev.instructions,
                       "device_stack_bytes": (dev.stack_used - dev.stack_at_call)
                       if dev.stack_used is not None and dev.stack_at_call is not None else None})
    return result
