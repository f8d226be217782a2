"""`python -m mamba_tvm.profile`: per-kernel time of a compiled model, measured on the device.

Compiles the model, builds the RPC firmware (runtime_c/rpc) with -DTVMGEN_DEFAULT_PROFILE,
starts QEMU mps2-an500 (or connects to a board with --port), runs PROFILE and prints one
row per kernel: calls, instructions (QEMU -icount) or cycles (a board), share of the run.
--inputs checks many inputs against PyTorch on the same device. Errors: one `error:`
line on stderr, exit code 1.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DeviceError, MambaTVMError, argument_parser, exit_with, run_cli



def parse_args(argv=None) -> argparse.Namespace:
    from .build import positive_int

    p = argument_parser(prog="python -m mamba_tvm.profile", description=__doc__.splitlines()[0])
    p.add_argument("--target", default="qemu/mps2_an500", help="board target (qemu/... runs here; others need --port)")
    p.add_argument("--model", type=Path, default=None, help="model file (.npz/.pt/.pth state_dict, .pt2, .onnx); default: bundled KWS-10")
    p.add_argument("--port", default=None,
                   help="serial port of a board running the RPC firmware (/dev/ttyACM0, socket://host:port); "
                        "without it QEMU is started")
    p.add_argument("--baud", type=int, default=115200, help="baud rate for --port (default 115200)")
    p.add_argument("--transport", choices=("semihost", "uart"), default="semihost",
                   help="QEMU link: semihosting pipe (fast) or UART0 over TCP (the board path)")
    p.add_argument("--repeat", type=positive_int, default=1, help="PROFILE runs; per-kernel numbers are their median")
    p.add_argument("--json", type=Path, default=None, help="write the profile (and --inputs check) as JSON here")
    p.add_argument("--inputs", type=Path, default=None,
                   help=".npz with `inputs` (N, T, F) [and `labels`]: run each on the device, compare to PyTorch")
    p.add_argument("--fusion", choices=("timestep", "layer"), default="timestep",
                   help="compile time-step fused (default) or layer by layer")
    p.add_argument("--mode", choices=("sequence", "stream"), default="sequence",
                   help="tvmgen_default_run (default) or init/step/finish; RUN feeds all T frames either way")
    p.add_argument("--weights", choices=("fp32", "int8"), default="fp32", help="weight format")
    p.add_argument("--seq-len", type=positive_int, default=None, help="sequence length T (default: the sample input's)")
    p.add_argument("--out", type=Path, default=None, help="keep the model and firmware here (default: temporary)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for each reply")
    return p.parse_args(argv)


@dataclass
class KernelRow:
    name: str
    calls: int
    count: int  # instructions or cycles


def expected_call_names(compiled) -> list[str]:
    """tvmgen_default_call_names, as the AOT emitter orders them."""
    order = ["main"] if "main" in compiled.programs else ["step", "finish"]
    return [c.kernel for name in order for c in compiled.programs[name].calls]


def aggregate(names, call_ticks, call_counts, units_per_tick: int) -> list[KernelRow]:
    """One row per kernel name (a kernel called from several places is one row), biggest first."""
    rows: dict[str, KernelRow] = {}
    for name, ticks, calls in zip(names, call_ticks, call_counts):
        row = rows.setdefault(name, KernelRow(name, 0, 0))
        row.calls += int(calls)
        row.count += int(ticks) * units_per_tick
    return sorted(rows.values(), key=lambda r: -r.count)


def format_table(rows: list[KernelRow], total: int, unit: str) -> str:
    """Plain-text table: kernel, calls, count, share of the whole run."""
    outside = total - sum(r.count for r in rows)
    width = max([len(r.name) for r in rows] + [len("(outside kernels)")])
    head = f"{'kernel':<{width}}  {'calls':>6}  {unit:>13}  {'share':>6}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r.name:<{width}}  {r.calls:>6}  {r.count:>13,}  {100 * r.count / total:>5.1f}%")
    lines.append(f"{'(outside kernels)':<{width}}  {'':>6}  {outside:>13,}  {100 * outside / total:>5.1f}%")
    lines.append("-" * len(head))
    lines.append(f"{'total (whole run)':<{width}}  {'':>6}  {total:>13,}  {100.0:>5.1f}%")
    return "\n".join(lines)


def _load_inputs(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """`inputs` (N, T, F) float32 and optional `labels` (N,) from an .npz."""
    if not path.is_file():
        raise MambaTVMError(f"--inputs file not found: {path}")
    try:
        with np.load(path) as f:
            if "inputs" not in f.files:
                raise MambaTVMError(f"{path}: no array named 'inputs' (found: {', '.join(f.files) or 'none'})")
            x = np.asarray(f["inputs"], dtype=np.float32)
            labels = np.asarray(f["labels"]).reshape(-1) if "labels" in f.files else None
    except (OSError, ValueError) as exc:
        raise MambaTVMError(f"cannot read {path}: {exc}") from exc
    if x.ndim != 3 or 0 in x.shape:
        raise MambaTVMError(f"{path}: inputs have shape {x.shape}, expected (N, T, F)")
    if labels is not None and len(labels) != len(x):
        raise MambaTVMError(f"{path}: {len(labels)} labels for {len(x)} inputs")
    if not np.all(np.isfinite(x)):
        raise MambaTVMError(f"{path}: inputs hold NaN or Inf")
    return x, labels


def check_inputs(session, model, x: np.ndarray, labels: np.ndarray | None, int8: bool = False) -> dict:
    """Every input through the device and the reference: the user's module, and for int8 builds
    first the quantized graph (what the int8 C computes), then the fp32 module as well:
    argmax agreement, max |error|, accuracy."""
    from .progress import track

    device = np.stack([session.infer(xi[None])[0] for xi in track(x, "inputs on the device", len(x))])
    if not np.all(np.isfinite(device)):
        bad = int(np.argmax(~np.all(np.isfinite(device), axis=1)))
        raise DeviceError(f"the device returned non-finite logits for input {bad}: {device[bad].tolist()}")
    fp32 = model.reference(x)
    if int8:
        from .driver import int8_graph_logits

        torch_logits = np.stack([int8_graph_logits(model, xi[None]) for xi in x])
    else:
        torch_logits = fp32
    report = {"n": int(len(x)),
              "argmax_agreement": float(np.mean(device.argmax(1) == torch_logits.argmax(1))),
              "max_abs_err_vs_torch": float(np.max(np.abs(device - torch_logits)))}
    if int8:
        report["argmax_agreement_vs_fp32"] = float(np.mean(device.argmax(1) == fp32.argmax(1)))
        report["max_abs_err_vs_fp32"] = float(np.max(np.abs(device - fp32)))
    if labels is not None:
        report["accuracy_device"] = float(np.mean(device.argmax(1) == labels))
        report["accuracy_torch"] = float(np.mean(torch_logits.argmax(1) == labels))
    return report


def _open_session(args, stack: ExitStack, work: Path, compiled, model, board):
    from .device.rpc import RpcSession, SerialTransport

    if args.port:
        session = RpcSession(SerialTransport(args.port, baudrate=args.baud), timeout=args.timeout)
        stack.callback(session.close)
        session.warm_up(timeout=max(args.timeout, 10.0))
        return session, f"{args.port}"
    from .device.qemu_rpc import QemuRpc
    from .project.rpc_firmware import build_rpc_firmware

    elf = build_rpc_firmware(work, work / "model", compiled, model.name, args.transport, profile=True,
                             cflags=list(board.cflags), core=board.core)
    qemu = stack.enter_context(QemuRpc(elf, args.transport, timeout=args.timeout))
    return qemu.session, f"QEMU {board.name} over {args.transport}"


def profile(args) -> dict:
    from .driver import DEFAULT_MODEL, compile_for_board, resolve_target

    platform, board = resolve_target(args.target)  # cheap checks first: TVM and torch take seconds to import
    if platform != "qemu" and not args.port:
        raise MambaTVMError(f"'{args.target}' is real hardware: flash its RPC firmware and pass --port "
                            f"(QEMU runs only qemu/... targets)")
    inputs = labels = None
    seq_len = args.seq_len
    if args.inputs is not None:
        inputs, labels = _load_inputs(args.inputs)
        seq_len = seq_len or inputs.shape[1]

    from .frontend.check_inputs import check_input
    from .frontend.model import load_model

    model_path = args.model or DEFAULT_MODEL
    model = load_model(model_path)
    x, _ = check_input(model, seq_len)
    if inputs is not None and inputs.shape[1:] != x.shape[1:]:
        raise MambaTVMError(f"{args.inputs}: inputs have shape {inputs.shape}, the model takes "
                            f"(N, {x.shape[1]}, {x.shape[2]})")
    from .progress import step, track

    with step(f"compiling ({args.fusion}, {args.mode}, {args.weights})"):
        compiled = compile_for_board(board, model, x.shape[1], args.mode, args.fusion, args.weights)
    with ExitStack() as stack:
        if args.out is None:
            work = Path(tempfile.mkdtemp(prefix="mamba_tvm_profile."))
            stack.callback(shutil.rmtree, work, True)
        else:  # the build's output contract: staged, and replacing only a previous mamba_tvm output
            from .outdir import OutputDir

            output = OutputDir(args.out, [model_path] + ([args.inputs] if args.inputs else []))
            work = stack.enter_context(output)
        compiled.write(work / "model")
        with step("RPC firmware and session"):
            session, where = _open_session(args, stack, work, compiled, model, board)
        hello, info = session.hello(), session.info()
        names = expected_call_names(compiled)
        if info.fingerprint != compiled.fingerprint or list(info.call_names) != names or info.input_count != x.size:
            raise DeviceError(f"the device serves '{info.model_name}' (fingerprint {info.fingerprint or 'none'}, "
                              f"{info.input_count} inputs), not the model compiled from {model_path} (fingerprint "
                              f"{compiled.fingerprint}, {x.size} inputs): flash the firmware built from this model "
                              "with the same options")
        if not hello.profiling:
            raise DeviceError("the device firmware was built without -DTVMGEN_DEFAULT_PROFILE: PROFILE is unavailable")
        session.write_input(x)
        runs = [session.profile() for _ in track(range(args.repeat), "PROFILE runs", args.repeat)]
        logits = session.read_output()
        med_ticks = [int(np.median([r.call_ticks[i] for r in runs])) for i in range(len(names))]
        rows = aggregate(names, med_ticks, runs[0].call_counts, info.units_per_tick)
        total = int(np.median([r.ticks for r in runs])) * info.units_per_tick
        report = {
            "model": str(model_path), "model_name": info.model_name, "target": args.target, "device": where,
            "fusion": args.fusion, "mode": args.mode, "weights": args.weights, "unit": info.unit, "total": total,
            "kernels_sum": sum(r.count for r in rows),
            "kernels": [{"name": r.name, "calls": r.calls, "count": r.count} for r in rows],
            "runs": [r.ticks * info.units_per_tick for r in runs],
            "logits": [float(v) for v in logits],
            "arena_bytes": info.arena_bytes,
        }
        if inputs is not None:
            report["inputs"] = check_inputs(session, model, inputs, labels, int8=args.weights == "int8")
        if args.out is not None:
            output.commit({"written_by": "mamba_tvm.profile", "target": args.target, "model": str(model_path)})
    report["_table"] = format_table(rows, total, info.unit)
    return report


def _print_report(report: dict) -> None:
    unit = report["unit"]
    note = ("instructions executed on QEMU, not cycles" if unit == "instructions"
            else "cycles of the board's counter")
    print(f"{report['model_name']} ({report['fusion']} fusion, {report['mode']}, {report['weights']} weights) "
          f"on {report['device']}; unit: {unit} ({note})")
    print(report["_table"])
    runs = report["runs"]
    spread = "identical" if len(set(runs)) == 1 else f"spread {min(runs):,}..{max(runs):,}"
    print(f"{len(runs)} PROFILE run(s), {spread}; argmax {int(np.argmax(report['logits']))}")
    if "inputs" in report:
        r = report["inputs"]
        line = (f"--inputs: {r['n']} inputs, argmax agreement with PyTorch {100 * r['argmax_agreement']:.1f}%, "
                f"max |error| {r['max_abs_err_vs_torch']:.2e}")
        if "accuracy_device" in r:
            line += f", accuracy device {100 * r['accuracy_device']:.1f}% / PyTorch {100 * r['accuracy_torch']:.1f}%"
        print(line)


def main(argv=None) -> int:
    return run_cli(lambda: _main(argv))


def _main(argv) -> int:
    from .progress import display

    args = parse_args(argv)
    with display():
        report = profile(args)
    if args.json is not None:
        args.json.write_text(json.dumps({k: v for k, v in report.items() if k != "_table"}, indent=1,
                                        allow_nan=False) + "\n")
    _print_report(report)
    return 0


if __name__ == "__main__":
    exit_with(main())
