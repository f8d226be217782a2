"""Run a bare-metal ELF on QEMU (mps2-an500 Cortex-M7, or the Xtensa sim's LX7) and parse
what it prints.

Why this shape: the harness reports a repeatable instruction count, not cycles (QEMU
models no pipeline or caches). On mps2-an500, under ``-icount shift=0`` QEMU's virtual
clock advances 1 ns per instruction, so a TIMER0 tick is 40 instructions; on the LX7 the
core's own ICOUNT register counts instructions retired, one per tick. Outputs come back
as raw IEEE-754 bits, so the host can compare them bit-exactly. Which machine runs an ELF
follows from the ELF's own header (e_machine).
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mamba_tvm.errors import DeviceError

_TAIL_LINES = 25
_TAIL_CHARS = 4000  # a runaway device can print megabytes without a newline


@dataclass(frozen=True)
class QemuMachine:
    """A QEMU machine the harness runs on, and how its counter turns into instructions."""

    name: str  # as reports and messages say it
    binary: str
    args: tuple[str, ...]  # everything before -kernel, except -icount
    package: str  # the Debian package that has `binary`
    elf_machine: int  # e_machine of the ELFs it runs
    ns_per_tick: int | None  # counter tick in virtual ns (-icount timed), or None: one tick per instruction
    serial: bool = True  # has a UART the RPC firmware can use

    def instructions_per_tick(self, icount_shift: int = 0) -> int:
        if self.ns_per_tick is None:
            return 1
        if not 0 <= icount_shift <= 3:
            raise ValueError("icount_shift must be 0..3 so a tick is a whole number of instructions")
        return self.ns_per_tick >> icount_shift

    def command(self, elf: Path | str, icount_shift: int = 0) -> list[str]:
        icount = ["-icount", f"shift={icount_shift}"] if self.ns_per_tick is not None else []
        return [self.binary, *self.args, *icount, "-kernel", str(elf)]


MPS2_AN500 = QemuMachine(
    "QEMU mps2-an500", "qemu-system-arm",
    ("-M", "mps2-an500", "-cpu", "cortex-m7", "-nographic", "-monitor", "none", "-serial", "none",
     "-semihosting-config", "enable=on,target=native"),
    "qemu-system-arm", elf_machine=40, ns_per_tick=40)  # CMSDK TIMER0 at 25 MHz
# ICOUNT is exact with or without -icount, and QEMU runs faster without it.
XTENSA_SIM = QemuMachine(
    "QEMU xtensa sim (de233_fpu)", "qemu-system-xtensa",
    ("-M", "sim", "-cpu", "de233_fpu", "-nographic", "-monitor", "none", "-serial", "none", "-semihosting"),
    "qemu-system-misc", elf_machine=94, ns_per_tick=None, serial=False)
MACHINES = (MPS2_AN500, XTENSA_SIM)

QEMU = MPS2_AN500.binary
TIMER_HZ = 25_000_000  # CMSDK TIMER0 on mps2-an500
NS_PER_TICK = MPS2_AN500.ns_per_tick


def machine_for_elf(elf: Path | str) -> QemuMachine:
    """The machine that runs `elf`, from its ELF header's e_machine."""
    try:
        with open(elf, "rb") as f:
            header = f.read(20)
    except OSError as exc:
        raise DeviceError(f"cannot read ELF {elf}: {exc.strerror or exc}") from exc
    if len(header) < 20 or header[:4] != b"\x7fELF":
        raise DeviceError(f"{elf} is not an ELF file")
    e_machine = int.from_bytes(header[18:20], "little" if header[5] == 1 else "big")
    for machine in MACHINES:
        if machine.elf_machine == e_machine:
            return machine
    raise DeviceError(f"{elf}: no QEMU machine here runs ELF machine {e_machine} (Arm 40 and Xtensa 94 do)")


def qemu_available(machine: QemuMachine = MPS2_AN500) -> bool:
    """True when the machine's QEMU binary is on PATH."""
    return shutil.which(machine.binary) is not None


def instructions_per_tick(icount_shift: int = 0) -> int:
    """Instructions per mps2-an500 TIMER0 tick: one instruction lasts 2**shift ns."""
    return MPS2_AN500.instructions_per_tick(icount_shift)


def qemu_command(elf: Path | str, icount_shift: int = 0, machine: QemuMachine | None = None) -> list[str]:
    """The exact QEMU command line for `elf` (its machine from the ELF header unless given);
    the generated Makefile's `run` target uses it too."""
    return (machine or machine_for_elf(elf)).command(elf, icount_shift)


@dataclass(frozen=True)
class RunResult:
    """One run of main_run_once.c: outputs, timing and stack, as printed by the device."""

    logits: np.ndarray  # float32, bit-exact copy of the device's output buffer
    ticks: int  # TIMER0 ticks spent inside tvmgen_default_run
    instructions: int  # ticks * instructions_per_tick (resolution: one tick)
    stack_used: int | None  # stack high-water mark in bytes (harness + model)
    rc: int  # tvmgen_default_run's return value
    stdout: str
    stack_at_call: int | None = None  # stack already in use when the model was called
    stack_reserved: int | None = None  # the linker script's .stack reservation

    @property
    def stack_overflow(self) -> bool:
        """True when the stack outgrew its reservation: harmless on QEMU (free RAM was painted), fatal on a board."""
        return self.stack_used is not None and self.stack_reserved is not None and self.stack_used > self.stack_reserved


def _tail(*texts: str) -> str:
    lines = "\n".join(t for t in texts if t).splitlines()
    return "\n".join(lines[-_TAIL_LINES:])[-_TAIL_CHARS:]


def parse_output(stdout: str, icount_shift: int = 0, machine: QemuMachine = MPS2_AN500) -> RunResult:
    """Parse the LOGIT/TICKS/STACK_*/RC/DONE protocol; DeviceError when it is incomplete."""
    bits: list[int] = []
    values: dict[str, int] = {}
    done = False
    for line in stdout.splitlines():
        parts = line.split()
        if not parts:
            continue
        key = parts[0]
        try:
            if key == "LOGIT" and len(parts) == 3:
                if int(parts[1]) != len(bits):
                    raise DeviceError(f"LOGIT lines out of order at {line!r}\n{_tail(stdout)}")
                bits.append(int(parts[2], 16))
            elif key in ("TICKS", "STACK_USED", "STACK_AT_CALL", "STACK_RESERVED", "RC") and len(parts) == 2:
                values[key] = int(parts[1])
            elif key == "DONE":
                done = True
            elif key == "FAULT":
                raise DeviceError(f"device fault: {line}\n{_tail(stdout)}")
        except ValueError as exc:
            raise DeviceError(f"unparsable device line {line!r}: {exc}\n{_tail(stdout)}") from exc
    if not done:
        raise DeviceError(f"device output has no DONE line; last output:\n{_tail(stdout)}")
    missing = [k for k in ("TICKS", "RC") if k not in values]
    if missing:
        raise DeviceError(f"device output lacks {', '.join(missing)}:\n{_tail(stdout)}")
    ticks = values["TICKS"]
    return RunResult(
        logits=np.array(bits, dtype=np.uint32).view(np.float32),
        ticks=ticks,
        instructions=ticks * machine.instructions_per_tick(icount_shift),
        stack_used=values.get("STACK_USED"),
        rc=values["RC"],
        stdout=stdout,
        stack_at_call=values.get("STACK_AT_CALL"),
        stack_reserved=values.get("STACK_RESERVED"),
    )


def run_elf(elf: Path | str, timeout: float = 60, icount_shift: int = 0, check_rc: bool = True) -> RunResult:
    """Run `elf` once on the QEMU machine for its core and return its parsed result.

    Raises DeviceError on a timeout, a non-zero QEMU exit (e.g. a fault), a missing
    DONE, or (with check_rc) a non-zero return from tvmgen_default_run.
    """
    elf = Path(elf)
    if not elf.is_file():
        raise DeviceError(f"ELF not found: {elf}")
    machine = machine_for_elf(elf)
    cmd = machine.command(elf, icount_shift)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except FileNotFoundError as exc:
        raise DeviceError(f"{machine.binary} not found; install it with: apt-get install {machine.package}") from exc
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        raise DeviceError(f"QEMU timed out after {timeout}s running {elf}; last output:\n{_tail(out, err)}") from exc
    if proc.returncode != 0:
        raise DeviceError(
            f"QEMU exited with {proc.returncode} running {elf}; last output:\n{_tail(proc.stdout, proc.stderr)}"
        )
    result = parse_output(proc.stdout, icount_shift, machine)
    if check_rc and result.rc != 0:
        raise DeviceError(f"tvmgen_default_run returned {result.rc}; last output:\n{_tail(proc.stdout)}")
    return result
