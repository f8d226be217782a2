"""`python -m mamba_tvm.tune --target qemu/mps2_an500 [--model ...] [--trials N] [--tracker HOST:PORT | --port P --flash CMD]`

Tunes the schedule-rule knobs of every kernel of the model(s) on the target's emulated core
and writes the core's record schedules/<core>.json, which every later build for a board with
that core applies (kernels of other shapes keep the fixed rules, and the build report says
which). Resumable: the MetaSchedule database (--db, default tune_db/<core>) keeps every
measurement; a rerun measures only what is missing. Errors: one `error:` line, exit 1.
"""
from __future__ import annotations

import sys
from pathlib import Path

from ..errors import MambaTVMError, argument_parser, exit_with, run_cli


def parse_args(argv=None):
    from ..build import positive_int

    p = argument_parser(prog="python -m mamba_tvm.tune", description=__doc__.splitlines()[0].strip("`"))
    p.add_argument("--target", default="qemu/mps2_an500", help="emulated target to measure on (qemu/...)")
    p.add_argument("--model", type=Path, action="append", default=None,
                   help="model file (repeatable); default: the bundled KWS-10")
    p.add_argument("--trials", type=positive_int, default=None,
                   help="measurements per model (default: until every kernel's space is measured)")
    p.add_argument("--workers", type=positive_int, default=None, help="parallel build+QEMU workers (default: cores)")
    p.add_argument("--tracker", default=None, help="HOST:PORT of a TVM RPC tracker whose servers measure "
                                                   "(python -m mamba_tvm.tune.server)")
    p.add_argument("--key", default=None, help="tracker key of the servers (default: the core)")
    p.add_argument("--port", default=None,
                   help="serial port of a board that measures instead of QEMU (/dev/ttyACM0, socket://host:port); "
                        "needs --flash")
    p.add_argument("--flash", default=None,
                   help="shell command that puts a candidate on the board: {app} is the Zephyr RPC app of a "
                        "zephyr/ target (e.g. \"west build -p -b nucleo_h743zi {app} -d {app}/build && west flash "
                        "-d {app}/build\"), {elf} the UART RPC firmware of a qemu/ target; {port} the port")
    p.add_argument("--baud", type=positive_int, default=115200, help="baud rate for --port")
    p.add_argument("--db", type=Path, default=None, help="MetaSchedule database directory (default tune_db/<core>)")
    p.add_argument("--out", type=Path, default=None, help="record to write (default schedules/<core>.json)")
    p.add_argument("--weights", choices=("fp32", "int8"), default="fp32")
    p.add_argument("--fusion", choices=("timestep", "layer"), default="timestep")
    p.add_argument("--no-model-knobs", action="store_true", help="keep the fixed rules' exp and FMA choice")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def format_table(report) -> str:
    rows = [("model", "kernel", "default", "tuned", "ratio", "knobs")]
    for task in report.tasks:
        for space in task.kernels:
            calls = task.calls.get(space.name, 0)
            d = round(task.default.kernels.get(space.name, 0) * calls) if task.default else 0
            t = round(task.tuned.kernels.get(space.name, 0) * calls)
            knobs = " ".join(f"{k}={_v(v)}" for k, v in sorted(report.chosen[(task.name, space.name)].items()))
            rows.append((task.name, space.name, f"{d:,}", f"{t:,}", f"{d / t:.2f}x" if t else "-", knobs))
        d, t = round(task.default_inference), round(task.tuned_inference)
        rows.append((task.name, "(tuned kernels)", f"{d:,}", f"{t:,}", f"{d / t:.2f}x" if t else "-",
                     f"whole run {task.tuned.total:,}; {task.trials} trials, {task.rejected} rejected"))
    widths = [max(len(r[i]) for r in rows) for i in range(6)]
    line = lambda r: "  ".join(c.ljust(w) if i in (0, 1, 5) else c.rjust(w)  # noqa: E731
                               for i, (c, w) in enumerate(zip(r, widths)))
    out = [line(rows[0]), "-" * len(line(rows[0]))] + [line(r) for r in rows[1:]]
    mk = " ".join(f"{k}={_v(v)}" for k, v in sorted(report.model_knobs.items()))
    return "\n".join(out + [f"model knobs: {mk}"])


def _v(v) -> str:
    return str(v).lower() if isinstance(v, bool) else str(v)


def _progress():
    """(callback, context manager): a rich progress bar on a TTY, one line per 10 trials otherwise."""
    import contextlib

    if not sys.stderr.isatty():
        def plain(done, total, best):
            if done % 10 == 0 or done == total:
                print(f"tune: {done}/{total} trials; best so far: {best or '-'}", file=sys.stderr, flush=True)
        return plain, contextlib.nullcontext()
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn("tuning"), BarColumn(), MofNCompleteColumn(), TextColumn("best: {task.fields[best]}"),
                   TimeRemainingColumn(), console=Console(stderr=True), transient=False)
    task = bar.add_task("tune", total=None, best="-")

    def rich_cb(done, total, best):
        bar.update(task, completed=done, total=total, best=best or "-")
    return rich_cb, bar


def main(argv=None) -> int:
    def body():
        args = parse_args(argv)
        from ..driver import DEFAULT_MODEL, resolve_target
        from .measure import default_workers

        platform, board = resolve_target(args.target)
        if bool(args.port) != bool(args.flash):
            raise MambaTVMError("--port and --flash go together: the board is flashed with each candidate, "
                                "then measured over the port")
        if args.port and args.tracker:
            raise MambaTVMError("--port measures on one board here; --tracker on the tracker's servers: pick one")
        if platform != "qemu" and not (args.tracker or args.port):
            raise MambaTVMError(f"'{args.target}' is real hardware: tune on its emulated core (qemu/...), on the "
                                "board with --port and --flash, or through --tracker")
        runner = None
        if args.port:
            from .measure import BoardRunner

            runner = BoardRunner(args.port, args.flash, args.baud)
        models = args.model or [DEFAULT_MODEL]
        for m in models:
            if not Path(m).is_file():
                raise MambaTVMError(f"model file not found: {m}")
        if args.tracker:
            from .server import parse_addr

            parse_addr(args.tracker)
        from .tuner import Tuner, write_record

        callback, bar = _progress()
        with bar:
            tuner = Tuner(args.target, [str(m) for m in models], args.trials,
                          args.workers or default_workers(), args.tracker, args.key, args.db, args.fusion,
                          args.weights, seed=args.seed, record_path=args.out, progress=callback,
                          model_knobs=not args.no_model_knobs, board=runner)
            report = tuner.run()
        path = tuner.record_path
        write_record(report, path, model_knobs_searched=not args.no_model_knobs)
        print(format_table(report))
        print(f"wrote {path} ({report.new_trials} new measurements; database {tuner.db_dir})")
        return 0

    return run_cli(body)


if __name__ == "__main__":
    exit_with(main())
