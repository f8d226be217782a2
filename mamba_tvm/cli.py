"""`mamba-tvm`: the installed command; `mamba-tvm <subcommand> ...` runs `python -m mamba_tvm.<subcommand> ...`.

Each subcommand keeps its own module (and its own `--help`); this only dispatches, so the
`python -m` forms and the command behave the same (one `error:` line and exit 1 on bad input).
"""
from __future__ import annotations

import importlib
import importlib.util
import sys

from . import __version__

#: subcommand -> (module, one line of help)
SUBCOMMANDS = {
    "build": ("mamba_tvm.build", "compile a model to C and build it for a target (--run: run it on QEMU)"),
    "profile": ("mamba_tvm.profile", "per-kernel instructions/cycles measured on QEMU or a board"),
    "tune": ("mamba_tvm.tune", "search kernel schedules for a core"),
    "analyze": ("mamba_tvm.analyze", "per-layer MACs, weights and activations against the board (no device)"),
    "export": ("mamba_tvm.export", "write a model as ONNX with Mamba operators as custom nodes"),
}


def usage() -> str:
    width = max(map(len, SUBCOMMANDS))
    rows = "\n".join(f"  {name:<{width}}  {text}" for name, (_, text) in SUBCOMMANDS.items())
    return (f"usage: mamba-tvm <subcommand> [options]   (mamba-tvm <subcommand> --help for its options)\n\n"
            f"subcommands:\n{rows}\n")


def main(argv=None) -> int:
    from .errors import PROG

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        sys.stdout.write(usage())
        return 0
    if argv[0] == "--version":
        print(f"mamba-tvm {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        print(f"error: unknown subcommand '{name}' (known: {', '.join(SUBCOMMANDS)}; see mamba-tvm --help)",
              file=sys.stderr)
        return 1
    module_name = SUBCOMMANDS[name][0]
    if importlib.util.find_spec(module_name) is None:
        print(f"error: `mamba-tvm {name}` is not available in this version of mamba_tvm "
              f"({module_name} is not installed)", file=sys.stderr)
        return 1
    PROG[0] = f"mamba-tvm {name}"
    module = importlib.import_module(module_name)
    if not hasattr(module, "main"):  # a package: its CLI is its __main__
        module = importlib.import_module(module_name + ".__main__")
    return module.main(rest)


def entry_point() -> None:
    """The console script."""
    from .errors import exit_with

    exit_with(main())


if __name__ == "__main__":
    entry_point()
