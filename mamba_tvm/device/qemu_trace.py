"""Count how often given instructions execute on QEMU (here: the M7's long-latency VDIV/VSQRT).

QEMU under `-icount shift=0` counts instructions, and every instruction costs the same there;
on a real Cortex-M7 VDIV.F32 and VSQRT.F32 take 14 cycles. A kernel variant that trades
instructions for divisions must be charged for them, so the benchmarks count them on the
emulated device: QEMU logs each translated block (`-d in_asm`) and each block it executes
(`-d exec,nochain`); counting the mnemonics inside every executed block gives exact dynamic
counts with the stock emulator (Debian's QEMU ships no TCG plugins). The log is streamed
through a FIFO, so its ~300 MB never reach the disk.
"""
from __future__ import annotations

import os
import re
import subprocess
import tempfile
import threading
from collections import Counter
from pathlib import Path

from ..errors import DeviceError
from .qemu import qemu_command

#: extra cycles a long-latency instruction costs on the Cortex-M7 beyond the one QEMU counts
#: (VDIV.F32 and VSQRT.F32: 14 cycles; ARM Cortex-M7 TRM, floating-point instruction timing)
M7_EXTRA_CYCLES = {"vdiv": 13, "vsqrt": 13}

_TB_HEAD = re.compile(r"^IN: ?(\S*)")
_INSN = re.compile(r"^0x([0-9a-f]+):\s+(?:[0-9a-f]{4} ?)+\s+(\w+)")
_EXEC = re.compile(r"^Trace \d+: 0x[0-9a-f]+ \[[0-9a-f]+/([0-9a-f]+)/")


def count_executed(elf: Path, mnemonics=("vdiv", "vsqrt"), symbol_prefix: str = "",
                   timeout: float = 300.0) -> dict[str, int]:
    """How many times each mnemonic (prefix match: "vdiv" counts vdiv.f32 and vdiv.f64)
    executed in one run of `elf`, inside functions whose name starts with `symbol_prefix`
    (default: anywhere, so C library code the kernels call counts too)."""
    with tempfile.TemporaryDirectory() as tmp:
        fifo = Path(tmp) / "qemu.log"
        os.mkfifo(fifo)
        counts: Counter = Counter()
        error: list = []
        reader = threading.Thread(target=_read_log, args=(fifo, mnemonics, symbol_prefix, counts, error))
        reader.start()
        cmd = qemu_command(elf) + ["-d", "in_asm,exec,nochain", "-D", str(fifo)]
        try:
            proc = subprocess.run(cmd, capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise DeviceError(f"QEMU trace run of {elf} timed out after {timeout:.0f} s") from exc
        finally:
            reader.join(timeout=60)
        if error:
            raise DeviceError(f"could not read QEMU's trace of {elf}: {error[0]}")
        if proc.returncode != 0:
            raise DeviceError(f"QEMU exited with {proc.returncode} tracing {elf}")
    return {m: counts[m] for m in mnemonics}


def _read_log(fifo: Path, mnemonics, symbol_prefix: str, counts: Counter, error: list) -> None:
    """Per translated block (keyed by its first pc): how many of each mnemonic it holds, if it
    lies in a model function; then add them up for every execution of the block."""
    try:
        per_block: dict[int, Counter] = {}
        current: Counter | None = None
        in_model = False
        with open(fifo, "r", errors="replace") as log:
            for line in log:
                if line.startswith("Trace"):
                    m = _EXEC.match(line)
                    if m:
                        block = per_block.get(int(m[1], 16))
                        if block:
                            counts.update(block)
                    current = None
                    continue
                head = _TB_HEAD.match(line)
                if head:
                    in_model = head[1].startswith(symbol_prefix)
                    current = Counter()
                    first = None
                    continue
                if current is None:
                    continue
                insn = _INSN.match(line)
                if insn:
                    pc = int(insn[1], 16)
                    if first is None:
                        first = pc
                        per_block[first] = current
                    if in_model:
                        for mnemonic in mnemonics:
                            if insn[2].startswith(mnemonic):
                                current[mnemonic] += 1
    except OSError as exc:  # pragma: no cover - reported to the caller
        error.append(str(exc))


def charged_cycles(instructions: int, long_latency: dict[str, int], extra=M7_EXTRA_CYCLES) -> int:
    """Instructions with each long-latency instruction charged at its cycle cost."""
    return instructions + sum(extra.get(m, 0) * n for m, n in long_latency.items())
