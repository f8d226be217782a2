"""One exception family, so the CLIs can print a one-line message instead of a traceback."""


class MambaTVMError(Exception):
    """Base class: anything a user can cause (bad checkpoint, too-large model, missing tool)."""


class CheckpointError(MambaTVMError):
    """The checkpoint is missing a tensor, has a wrong shape or a non-finite value."""


class CompileError(MambaTVMError):
    """The compiler could not lower the model (an unsupported graph or a plan that does not fit)."""


class BuildError(MambaTVMError):
    """A C toolchain step (gcc, arm-none-eabi-gcc, ...) failed."""


class DeviceError(MambaTVMError):
    """The device (QEMU or a board) did not run the program to completion."""


class BudgetError(CompileError):
    """The model does not fit the board: its arena + stack exceed every RAM region, or its weights the flash."""


class TimeSplitError(CompileError):
    """The graph has an operator that mixes time steps in a way no step form exists for."""


class MiscompileError(Exception):
    """The compiled model's logits disagree with the reference: a compiler bug, not the user's
    (exit 2), and the build leaves nothing behind."""


def _survive_tvm_passes():
    """Raised inside a Python pass that TVM's pass infrastructure calls, an exception crosses
    C++ and comes back as a RuntimeError unless tvm_ffi knows its class by name; then the CLI
    would call a user's mistake an internal error."""
    import tvm_ffi

    for cls in (MambaTVMError, CheckpointError, CompileError, BuildError, DeviceError, BudgetError, TimeSplitError):
        tvm_ffi.register_error(cls)


_survive_tvm_passes()


def cli_error(exc: BaseException) -> tuple[str, int]:
    """The one `error:` line and exit code a CLI prints for an exception: 1 for what a user
    can fix (a MambaTVMError), 2 for a compiler bug (anything else, e.g. from deep in TVM)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if isinstance(exc, (MambaTVMError, OSError)):
        text = " | ".join(lines)
        return "error: " + (text if len(text) <= 800 else text[:797] + "..."), 1
    detail = lines[-1] if lines else ""
    if isinstance(exc, MiscompileError):
        return f"error: internal compiler error: {detail}; please report it with the model", 2
    return f"error: internal compiler error ({type(exc).__name__}: {detail}); please report it with the model", 2


class Interrupted(BaseException):
    """SIGTERM, raised like KeyboardInterrupt so every `finally` and `with` cleans up."""


def run_cli(body) -> int:
    """Run a CLI's body -> exit code, with the guarantees every mamba_tvm command gives:
    one `error:` line for any failure (never a traceback), and on Ctrl-C or SIGTERM the
    cleanup of whatever was being written, one `interrupted` line and exit 130 / 143."""
    import signal
    import sys
    import warnings

    def on_sigterm(_signum, _frame):
        raise Interrupted()

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    warnings.filterwarnings("ignore")  # torch.export / PyTorch chatter is not the user's concern
    try:
        return body()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Interrupted:
        print("interrupted", file=sys.stderr)
        return 143
    except Exception as exc:  # one line, never a TVM backtrace
        message, code = cli_error(exc)
        print(message, file=sys.stderr)
        return code
    finally:
        signal.signal(signal.SIGTERM, previous)


class UsageError(MambaTVMError):
    """A command-line argument argparse refused."""


#: the program name `mamba-tvm <subcommand>` sets, so usage and errors name the command typed
PROG: list = [None]


def argument_parser(**kwargs):
    """argparse, but a bad argument is one `error:` line and exit 1 like any other bad input
    (argparse alone prints the usage and exits 2, the code reserved for compiler bugs)."""
    import argparse

    if PROG[0] is not None:
        kwargs["prog"] = PROG[0]

    class Parser(argparse.ArgumentParser):
        def error(self, message):
            raise UsageError(f"{message} (see {self.prog} --help)")

    return Parser(**kwargs)


def exit_with(code: int):
    """sys.exit for a CLI's `__main__`; after an interrupt, leave at once: the cleanup is done,
    and interpreter shutdown could meet a second KeyboardInterrupt left pending in TVM's FFI
    (the process would then die by SIGINT instead of exiting 130)."""
    import os
    import sys

    if code in (130, 143):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
