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
