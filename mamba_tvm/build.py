"""`python -m mamba_tvm.build`: compile a Mamba checkpoint to C and build it for a target.

Every build ends with one JSON line on stdout (logits, memory, error vs PyTorch, out_dir);
errors are one line on stderr and a non-zero exit, and the output directory is only
replaced once the whole build has succeeded.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .codegen import ARENAS
from .driver import DEFAULT_MODEL
from .errors import argument_parser, exit_with, run_cli


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got '{text}'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def parse_args(argv=None) -> argparse.Namespace:
    import boards

    targets = sorted(boards.targets())
    p = argument_parser(prog="python -m mamba_tvm.build", description=__doc__.splitlines()[0])
    p.add_argument("--target", default="qemu/mps2_an500", help=f"one of: {', '.join(targets)}")
    p.add_argument("--model", type=Path, default=None,
                   help="a TinyMamba state_dict (.npz/.pt/.pth), a torch.export program (.pt2) or an ONNX model "
                        "(.onnx); default: the bundled KWS-10 TinyMamba")
    p.add_argument("--trust-pickle", action="store_true",
                   help="load a whole pickled nn.Module from a .pt/.pth file (unpickling runs code from the file)")
    p.add_argument("--out", type=Path, default=None, help="output directory (default build/<target>)")
    p.add_argument("--seq-len", type=positive_int, default=None, help="sequence length T (default: the sample input's)")
    p.add_argument("--mode", choices=["sequence", "stream"], default="sequence",
                   help="sequence: tvmgen_default_run on a (1, T, F) input; stream: init/step/finish per frame")
    p.add_argument("--fusion", choices=["timestep", "layer"], default="timestep",
                   help="timestep: the whole block runs per time step (no (T, d) tensor, the default); "
                        "layer: each layer over the whole sequence")
    p.add_argument("--weights", choices=["fp32", "int8"], default="fp32",
                   help="int8: weight matrices quantized per output channel (activations stay fp32)")
    p.add_argument("--run", action="store_true", help="run the firmware on QEMU and report device logits")
    p.add_argument("--app", choices=["run", "rpc"], default=None,
                   help="Zephyr targets: run (default) runs the sample once and prints the logits; rpc serves "
                        "the model over the console UART for `python -m mamba_tvm.profile --port` (docs/rpc.md)")
    p.add_argument("--list-targets", action="store_true", help="list targets with their RAM and flash")
    p.add_argument("--emit", action="append", choices=["mlf", "zephyr-module"], default=[],
                   help="also write mlf: model.tar in Model Library Format (microTVM v0.18); zephyr-module: "
                        "zephyr_module/, the model as a Zephyr module for a west workspace (repeatable)")
    p.add_argument("--module-name", default="default",
                   help="prefix of the model's C names: tvmgen_<name>_run, TVMGEN_<NAME>_*, as microTVM's "
                        "tvmc --module-name (several models in one firmware; default: default)")
    p.add_argument("--arena", choices=ARENAS, default="static",
                   help="static: model.c holds the arena (default); caller: your application passes it to every "
                        "call (struct tvmgen_<name>_workspace_pools), placed where you like, shareable between "
                        "models run one after the other")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no summary table on stderr (progress shows only when stderr is a terminal anyway)")
    return p.parse_args(argv)


def list_targets() -> str:
    import boards

    rows = []
    for name, b in sorted(boards.targets().items()):
        ram = " + ".join(f"{m.name} {m.size // 1024} KB" for m in b.ram)
        rows.append(f"{name:<26} {b.core:<11} RAM: {ram}; flash {b.flash.size // 1024} KB")
    return "\n".join(rows)


def main(argv=None) -> int:
    return run_cli(lambda: _main(argv))


def _main(argv) -> int:
    args = parse_args(argv)
    if args.list_targets:
        print(list_targets())
        return 0
    if args.app is not None and args.target.split("/", 1)[0] == "qemu":
        print(f"error: --app is for Zephyr targets; for '{args.target}' use `python -m mamba_tvm.profile "
              f"--target {args.target}` (it builds the RPC firmware and serves it on QEMU)", file=sys.stderr)
        return 1
    from .driver import build, resolve_target
    from .progress import build_summary, display, print_summary

    with display(enabled=None if not args.quiet else False):
        report = build(target=args.target, model=args.model or DEFAULT_MODEL, out=args.out,
                       seq_len=args.seq_len, run=args.run, mode=args.mode, fusion=args.fusion,
                       weights=args.weights, app=args.app or "run", trust_pickle=args.trust_pickle,
                       emit=tuple(dict.fromkeys(args.emit)), module_name=args.module_name,
                       arena=args.arena)
    for note in report.get("notes", []):
        print(f"note: {note}", file=sys.stderr)
    if not args.quiet:
        print_summary(build_summary(report, resolve_target(args.target)[1]))
    print(json.dumps(report, allow_nan=False))
    return 0


if __name__ == "__main__":
    exit_with(main())
