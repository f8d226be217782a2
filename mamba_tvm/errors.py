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


def cli_error(exc: BaseException) -> tuple[str, int]:
    """The one `error:` line and exit code a CLI prints for an exception: 1 for what a user
    can fix (a MambaTVMError), 2 for a compiler bug (anything else, e.g. from deep in TVM)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if isinstance(exc, (MambaTVMError, OSError)):
        text = " | ".join(lines)
        return "error: " + (text if len(text) <= 800 else text[:797] + "..."), 1
    detail = lines[-1] if lines else ""
    return f"error: internal compiler error ({type(exc).__name__}: {detail}); please report it with the model", 2
