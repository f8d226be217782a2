"""QEMU running an RPC firmware, with an RpcSession on it; always cleaned up.

Why a context manager: a QEMU that serves RPC never exits by itself (it waits for the
next request), so whoever starts it must stop it, also when a test or the profiler
fails halfway. The machine follows from the ELF (mps2-an500 for Cortex-M7, the Xtensa
sim for the LX7). Two transports, as the firmware was built (project/rpc_firmware.py):
- "semihost": the firmware's semihosting stdin/stdout are QEMU's, so the session talks
  over the subprocess's pipes (QEMU 7.2 serves SYS_READ/WRITE only on its stdio);
- "uart" (mps2-an500 only): UART0 on `-serial tcp:127.0.0.1:P,server=on,wait=on,nodelay=on`,
  reached through pyserial's socket:// URL, the same code path as a board's serial port.
On mps2-an500 both run with `-icount shift=0`, so the device's timer counts instructions;
the LX7 counts them itself (ICOUNT).
"""
from __future__ import annotations

import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import BinaryIO

from mamba_tvm.device.qemu import machine_for_elf
from mamba_tvm.device.rpc import PipeTransport, RpcSession, SerialTransport
from mamba_tvm.errors import DeviceError

TRANSPORTS = ("semihost", "uart")
_TAIL = 1500


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rpc_qemu_command(elf: Path | str, serial: str = "none") -> list[str]:
    """The machine's command with UART0 on `serial` (a QEMU -serial argument) instead of none.
    Always -icount shift=0 on mps2-an500: its firmware reports 40 instructions per timer tick
    on that premise."""
    machine = machine_for_elf(elf)
    if serial != "none" and not machine.serial:
        raise DeviceError(f"{machine.name} has no UART: its RPC firmware serves over semihosting")
    cmd = machine.command(elf, 0)
    cmd[cmd.index("-serial") + 1] = serial
    return cmd


class QemuRpc:
    """`with QemuRpc(elf, "uart") as q: q.session.hello()`; q.process is the QEMU Popen."""

    def __init__(self, elf: Path | str, transport: str = "semihost", timeout: float = 5.0, retries: int = 3,
                 boot_timeout: float = 15.0):
        if transport not in TRANSPORTS:
            raise DeviceError(f"unknown RPC transport '{transport}' (known: {', '.join(TRANSPORTS)})")
        self.elf, self.transport_name = Path(elf), transport
        self.timeout, self.retries, self.boot_timeout = timeout, retries, boot_timeout
        self.process: subprocess.Popen | None = None
        self.session: RpcSession | None = None
        self._logs: list[BinaryIO] = []
        self._stdout: BinaryIO | None = None  # QEMU's own output, for error messages
        self._stderr: BinaryIO | None = None

    def __enter__(self) -> "QemuRpc":
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> RpcSession:
        if not self.elf.is_file():
            raise DeviceError(f"ELF not found: {self.elf}")
        transport = self._start_semihost() if self.transport_name == "semihost" else self._start_uart()
        self.session = RpcSession(transport, timeout=self.timeout, retries=self.retries)
        self.session.warm_up(timeout=max(self.boot_timeout, self.timeout))
        return self.session

    def _log(self) -> BinaryIO:
        f = tempfile.TemporaryFile()
        self._logs.append(f)
        return f

    def _popen(self, cmd: list[str], **kw) -> subprocess.Popen:
        try:
            return subprocess.Popen(cmd, **kw)
        except FileNotFoundError as exc:
            machine = machine_for_elf(self.elf)
            raise DeviceError(f"{machine.binary} not found; install it with: apt-get install {machine.package}") from exc

    def _start_semihost(self) -> PipeTransport:
        self._stderr = self._log()
        self.process = self._popen(rpc_qemu_command(self.elf, "none"),
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr)
        return PipeTransport(self.process.stdout.fileno(), self.process.stdin.fileno(),
                             name=f"QEMU semihosting ({self.elf.name})", context=self.describe)

    def _start_uart(self) -> SerialTransport:
        self._stderr, self._stdout = self._log(), self._log()
        for _ in range(3):  # the free port can be taken between probing and QEMU's bind
            port = free_tcp_port()
            serial = f"tcp:127.0.0.1:{port},server=on,wait=on,nodelay=on"
            self.process = self._popen(rpc_qemu_command(self.elf, serial),
                                       stdin=subprocess.DEVNULL, stdout=self._stdout, stderr=self._stderr)
            deadline = time.monotonic() + self.boot_timeout
            while self.process.poll() is None and time.monotonic() < deadline:
                try:  # refused until QEMU listens; wait=on holds the guest until we connect
                    return SerialTransport(f"socket://127.0.0.1:{port}", context=self.describe)
                except DeviceError:
                    time.sleep(0.02)
            if "Address already in use" not in self._tail(self._stderr):
                break
        raise DeviceError(f"QEMU did not start serving {serial}:\n{self.describe()}")

    @staticmethod
    def _tail(f) -> str:
        if f is None or f.closed:
            return ""
        f.flush()
        f.seek(0)
        return f.read().decode(errors="replace")[-_TAIL:]

    def describe(self) -> str:
        """QEMU's state and the tails of its output: for error messages."""
        if self.process is None:
            return "QEMU was not started"
        try:
            rc = self.process.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            rc = None
        parts = ["QEMU is still running" if rc is None else f"QEMU exited with code {rc}"]
        for label, f in (("stdout", self._stdout), ("stderr", self._stderr)):
            text = self._tail(f).strip()
            if text:
                parts.append(f"QEMU {label}:\n{text}")
        return "\n".join(parts)

    def close(self) -> None:
        """Stop QEMU (a polite EOF first on semihosting, then SIGKILL) and release everything."""
        if self.session is not None:
            self.session.close()
        proc = self.process
        if proc is not None and proc.poll() is None:
            try:
                proc.send_signal(signal.SIGCONT)  # a test may have stopped it
                if proc.stdin is not None:
                    proc.stdin.close()  # semihosting: the firmware sees EOF and exits
                    proc.wait(timeout=0.5)
            except (subprocess.TimeoutExpired, OSError):
                pass
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if proc is not None:
            for pipe in (proc.stdin, proc.stdout):
                if pipe is not None and not pipe.closed:
                    pipe.close()
        for f in self._logs:
            f.close()
        self._logs.clear()
