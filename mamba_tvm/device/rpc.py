"""Host side of the RPC protocol (docs/rpc.md, runtime_c/rpc): frames, transports, a session.

Why: profiling and many-input checks drive one running device from the host instead of
rebuilding a run-once firmware per input. The same RpcSession talks to QEMU over a
subprocess pipe (semihosting) or a TCP socket (its UART), and to a board's serial port:
a transport only needs read(n, timeout) and write(bytes). Every failure surfaces as a
DeviceError that says what was asked, of which device, and what came back.
"""
from __future__ import annotations

import binascii
import os
import select
import socket
import time
from dataclasses import dataclass
from enum import IntEnum
from typing import Callable

import numpy as np

from mamba_tvm.errors import DeviceError

PROTOCOL_VERSION = 1
MAX_PAYLOAD = 1024
HEADER = 4  # cmd, seq (u16 LE), status
REPLY = 0x80
MAGIC = b"MTVM"
UNITS = {0: "instructions", 1: "cycles"}


class Cmd(IntEnum):
    HELLO = 0x01
    INFO = 0x02
    CALL_NAMES = 0x03
    WRITE_INPUT = 0x10
    RUN = 0x11
    READ_OUTPUT = 0x12
    PROFILE = 0x13
    READ_PROFILE = 0x14
    RESET = 0x1F


class Status(IntEnum):
    OK = 0
    BAD_CRC = 1
    BAD_FRAME = 2
    FRAME_TOO_LONG = 3
    UNKNOWN_COMMAND = 4
    BAD_LENGTH = 5
    OUT_OF_RANGE = 6
    NOT_READY = 7
    BUSY = 8
    UNSUPPORTED = 9


FRAMING_ERRORS = (Status.BAD_CRC, Status.BAD_FRAME, Status.FRAME_TOO_LONG)


class FrameError(ValueError):
    """Bytes between two delimiters that are not a valid frame."""


class RpcError(DeviceError):
    """The device answered a request with an error status."""

    def __init__(self, message: str, status: int, detail: int | None = None):
        super().__init__(message)
        self.status, self.detail = status, detail


# ---- wire format ------------------------------------------------------------------------

def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF), as rpc_crc16."""
    return binascii.crc_hqx(data, 0xFFFF)


def cobs_encode(data: bytes) -> bytes:
    out, block = bytearray(), bytearray()
    for b in data:
        if b:
            block.append(b)
        if not b or len(block) == 254:
            out.append(len(block) + 1)
            out += block
            block.clear()
    out.append(len(block) + 1)
    out += block
    return bytes(out)


def cobs_decode(data: bytes) -> bytes:
    out, i = bytearray(), 0
    while i < len(data):
        code = data[i]
        block = data[i + 1:i + code]
        if code == 0 or len(block) != code - 1 or 0 in block:
            raise FrameError("invalid COBS")
        out += block
        i += code
        if code != 0xFF and i < len(data):
            out.append(0)
    if not data:
        raise FrameError("empty frame")
    return bytes(out)


@dataclass(frozen=True)
class Frame:
    cmd: int
    seq: int
    status: int
    payload: bytes


def encode_frame(cmd: int, seq: int, payload: bytes = b"", status: int = 0) -> bytes:
    """COBS(header | payload | crc), without delimiters."""
    body = bytes([cmd & 0xFF, seq & 0xFF, (seq >> 8) & 0xFF, status & 0xFF]) + bytes(payload)
    return cobs_encode(body + crc16(body).to_bytes(2, "little"))


def decode_frame(encoded: bytes) -> Frame:
    raw = cobs_decode(encoded)
    if len(raw) < HEADER + 2:
        raise FrameError(f"frame of {len(raw)} bytes is shorter than a header and CRC")
    if crc16(raw[:-2]) != int.from_bytes(raw[-2:], "little"):
        raise FrameError("CRC mismatch")
    return Frame(raw[0], int.from_bytes(raw[1:3], "little"), raw[3], raw[HEADER:-2])


# ---- transports --------------------------------------------------------------------------

class PipeTransport:
    """A subprocess's stdin/stdout (QEMU with semihosting console on its stdio)."""

    def __init__(self, rfd: int, wfd: int, name: str = "pipe", context: Callable[[], str] | None = None):
        self.rfd, self.wfd, self.name, self.context = rfd, wfd, name, context

    def _closed(self, what: str) -> DeviceError:
        extra = self.context() if self.context else ""
        return DeviceError(f"{self.name}: {what}" + (f"\n{extra}" if extra else ""))

    def read(self, n: int, timeout: float) -> bytes:
        """At least one byte, or b"" when nothing arrived within timeout."""
        ready, _, _ = select.select([self.rfd], [], [], max(timeout, 0.0))
        if not ready:
            return b""
        data = os.read(self.rfd, n)
        if not data:
            raise self._closed("the device closed the connection (end of output)")
        return data

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self.wfd, view):]
        except (BrokenPipeError, OSError) as exc:
            raise self._closed(f"the device closed the connection (write failed: {exc.strerror or exc})") from exc

    def close(self) -> None:
        pass  # the owner of the process closes its pipes


class SerialTransport:
    """pyserial's serial_for_url: '/dev/ttyACM0', 'socket://127.0.0.1:4321', 'rfc2217://...'."""

    def __init__(self, url: str, baudrate: int = 115200, context: Callable[[], str] | None = None):
        import serial  # pyserial

        self.name, self.context = url, context
        try:
            self.port = serial.serial_for_url(url, baudrate=baudrate, timeout=1.0, write_timeout=10.0)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise DeviceError(f"cannot open serial port {url}: {exc}") from exc
        sock = getattr(self.port, "_socket", None)
        if sock is not None:  # socket://: no Nagle delay on small frames
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._errors = (serial.SerialException, OSError)

    def _failed(self, exc: Exception) -> DeviceError:
        extra = self.context() if self.context else ""
        return DeviceError(f"serial port {self.name} failed: {exc}" + (f"\n{extra}" if extra else ""))

    def read(self, n: int, timeout: float) -> bytes:
        try:
            self.port.timeout = max(timeout, 0.0)
            first = self.port.read(1)
            if not first:
                return b""
            waiting = self.port.in_waiting
            return first + (self.port.read(min(n - 1, waiting)) if waiting and n > 1 else b"")
        except self._errors as exc:
            raise self._failed(exc) from exc

    def write(self, data: bytes) -> None:
        try:
            self.port.write(data)
            self.port.flush()
        except self._errors as exc:
            raise self._failed(exc) from exc

    def close(self) -> None:
        try:
            self.port.close()
        except self._errors:
            pass


# ---- session -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Hello:
    version: int
    max_payload: int
    profiling: bool
    big_endian: bool
    frames_ok: int
    frames_bad: int


@dataclass(frozen=True)
class DeviceInfo:
    model_name: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    input_count: int
    output_count: int
    arena_bytes: int
    timer_hz: int
    units_per_tick: int
    unit: str  # "instructions" (QEMU -icount) or "cycles"
    call_names: tuple[str, ...]
    fingerprint: str = ""  # hash of the weights and the plan; "" from a firmware that predates it


@dataclass(frozen=True)
class Profile:
    rc: int
    ticks: int  # the whole run, outer timer
    sum_ticks: int  # the sum of the per-call ticks
    call_ticks: tuple[int, ...]
    call_counts: tuple[int, ...]  # invocations per call (T for a time-step fused model's step calls)


class RpcSession:
    """Requests over a transport: sequence numbers, CRC, retries, clear errors.

    A request is resent (same seq, so the device answers a duplicate from its reply
    cache instead of running twice) when its reply does not arrive within `timeout`,
    arrives damaged, or the device reports it damaged (BAD_CRC etc. with our seq).
    """

    def __init__(self, transport, timeout: float = 5.0, retries: int = 3, run_timeout: float = 30.0):
        # run_timeout: a RUN/PROFILE reply comes after the whole inference
        self.transport, self.timeout, self.retries, self.run_timeout = transport, timeout, retries, run_timeout
        self._seq = int.from_bytes(os.urandom(2), "little") % 0xFF00
        self._rx = bytearray()
        self.noise = bytearray()  # bytes that were not valid replies (last 512), for error messages
        self.resends = 0
        self._hello: Hello | None = None
        self._info: DeviceInfo | None = None

    # -- framing --
    def send_raw(self, data: bytes) -> None:
        """Write bytes as they are (tests inject damaged frames with this)."""
        self.transport.write(bytes(data))

    def read_frame(self, timeout: float) -> bytes | None:
        """The next delimited frame (COBS bytes, no delimiter), or None on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            end = self._rx.find(0)
            if end >= 0:
                frame = bytes(self._rx[:end])
                del self._rx[:end + 1]
                if frame:
                    return frame
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                self._rx += self.transport.read(4096, left)
            except DeviceError as exc:  # say what the device printed instead of frames (e.g. a FAULT line)
                unframed = bytes(self.noise[-200:] + self._rx[-400:])
                if not unframed:
                    raise
                raise DeviceError(f"{exc}\nlast bytes from the device: {unframed!r}") from exc

    def _note_noise(self, data: bytes) -> None:
        self.noise += data
        del self.noise[:-512]

    def next_seq(self) -> int:
        self._seq = (self._seq + 1) % 0xFFFF  # 0xFFFF is the device's "unknown seq"
        return self._seq

    def request(self, cmd: int, payload: bytes = b"", timeout: float | None = None,
                retries: int | None = None) -> bytes:
        """Send one request and return its reply payload; RpcError for an error status."""
        timeout = self.timeout if timeout is None else timeout
        retries = self.retries if retries is None else retries
        try:
            name = Cmd(cmd).name
        except ValueError:
            name = f"command 0x{cmd:02x}"
        seq = self.next_seq()
        wire = b"\x00" + encode_frame(cmd, seq, payload) + b"\x00"
        started = time.monotonic()
        for attempt in range(retries + 1):
            if attempt:
                self.resends += 1
            self.transport.write(wire)
            deadline = time.monotonic() + timeout
            while (raw := self.read_frame(deadline - time.monotonic())) is not None:
                try:
                    reply = decode_frame(raw)
                except FrameError:
                    self._note_noise(raw)
                    break  # a damaged reply, probably ours: ask again (the device replays it)
                if reply.cmd != (cmd | REPLY) or reply.seq != seq:
                    if not reply.cmd & REPLY:
                        self._note_noise(raw)
                    continue  # a stale reply, or an error about someone else's garbage
                if reply.status in FRAMING_ERRORS:
                    break  # the device got our frame damaged: resend
                if reply.status != Status.OK:
                    raise self._rejected(name, reply)
                return reply.payload
        noise = f"; other bytes received: {bytes(self.noise[-120:])!r}" if self.noise else ""
        raise DeviceError(
            f"no valid reply to {name} (seq {seq}) from {self.transport.name} after {retries + 1} attempt(s) "
            f"in {time.monotonic() - started:.1f} s: the device stopped answering "
            f"(is it running the RPC firmware, on this port?){noise}")

    @staticmethod
    def _rejected(name: str, reply: Frame) -> RpcError:
        detail = int.from_bytes(reply.payload[:4], "little") if len(reply.payload) >= 4 else None
        try:
            status = Status(reply.status).name
        except ValueError:
            status = f"status {reply.status}"
        hints = {
            Status.UNSUPPORTED: "this firmware was built without -DTVMGEN_DEFAULT_PROFILE",
            Status.NOT_READY: "write the whole input (RUN/PROFILE), or run first (READ_OUTPUT/READ_PROFILE)",
            Status.BAD_LENGTH: f"expected payload length {detail}",
            Status.OUT_OF_RANGE: f"limit {detail}",
        }
        hint = hints.get(reply.status)
        return RpcError(f"device rejected {name}: {status}" + (f" ({hint})" if hint else ""), reply.status, detail)

    # -- commands --
    def hello(self, timeout: float | None = None, retries: int | None = None) -> Hello:
        p = self.request(Cmd.HELLO, timeout=timeout, retries=retries)
        if len(p) < 18 or p[:4] != MAGIC:
            raise DeviceError(f"{self.transport.name}: unexpected HELLO reply {p[:32]!r}: not a mamba_tvm RPC device")
        version, max_payload = int.from_bytes(p[4:6], "little"), int.from_bytes(p[6:8], "little")
        if version != PROTOCOL_VERSION:
            raise DeviceError(f"device speaks RPC protocol version {version}, this host speaks {PROTOCOL_VERSION}")
        hello = Hello(version, max_payload, bool(p[8] & 1), bool(p[8] & 2),
                      int.from_bytes(p[10:14], "little"), int.from_bytes(p[14:18], "little"))
        if hello.big_endian:
            raise DeviceError("big-endian device: tensors would need byte swapping, which is not implemented")
        self._hello = hello
        return hello

    def warm_up(self, timeout: float = 10.0, attempts: int = 3) -> Hello:
        """First contact: a long-timeout HELLO (a UART's first call can take ~1 s), then drop
        anything that arrived before it (boot text, stale replies)."""
        hello = self.hello(timeout=timeout, retries=attempts - 1)
        while self.read_frame(0.05) is not None:
            pass
        return hello

    def info(self) -> DeviceInfo:
        if self._info is None:
            p = self.request(Cmd.INFO)
            u32 = lambda o: int.from_bytes(p[o:o + 4], "little")  # noqa: E731
            try:
                pos = 24
                shapes = []
                for _ in range(2):
                    ndim = p[pos]
                    shapes.append(tuple(u32(pos + 1 + 4 * i) for i in range(ndim)))
                    pos += 1 + 4 * ndim
                name = p[pos + 1:pos + 1 + p[pos]].decode("utf-8", "replace")
                pos += 1 + p[pos]
                fingerprint = p[pos + 1:pos + 1 + p[pos]].decode("ascii", "replace") if pos < len(p) else ""
            except IndexError as exc:
                raise DeviceError(f"truncated INFO reply ({len(p)} bytes)") from exc
            num_calls = int.from_bytes(p[22:24], "little")
            self._info = DeviceInfo(name, shapes[0], shapes[1], u32(0), u32(4), u32(8), u32(12), u32(16),
                                    UNITS.get(p[20], f"unit{p[20]}"), self._call_names(num_calls), fingerprint)
        return self._info

    def _call_names(self, num_calls: int) -> tuple[str, ...]:
        names: list[str] = []
        while len(names) < num_calls:
            p = self.request(Cmd.CALL_NAMES, len(names).to_bytes(2, "little"))
            count, pos = int.from_bytes(p[2:4], "little"), 4
            if count == 0:
                raise DeviceError(f"device returned no call names from index {len(names)} of {num_calls}")
            for _ in range(count):
                names.append(p[pos + 1:pos + 1 + p[pos]].decode("utf-8", "replace"))
                pos += 1 + p[pos]
        return tuple(names)

    def _chunk(self) -> int:
        return (self._hello.max_payload if self._hello else MAX_PAYLOAD) - 4

    def write_input(self, x: np.ndarray) -> None:
        info = self.info()
        data = np.ascontiguousarray(x, dtype="<f4").tobytes()
        if len(data) != 4 * info.input_count:
            raise DeviceError(f"input has {len(data) // 4} floats; the device's model '{info.model_name}' takes "
                              f"{info.input_count} (shape {info.input_shape})")
        for off in range(0, len(data), self._chunk()):
            self.request(Cmd.WRITE_INPUT, off.to_bytes(4, "little") + data[off:off + self._chunk()])

    def run(self, timeout: float | None = None) -> tuple[int, int]:
        """(rc, ticks) of one inference on the written input."""
        p = self.request(Cmd.RUN, timeout=max(self.timeout, self.run_timeout) if timeout is None else timeout)
        return int.from_bytes(p[0:4], "little", signed=True), int.from_bytes(p[4:8], "little")

    def read_output(self) -> np.ndarray:
        info = self.info()
        size, data = 4 * info.output_count, bytearray()
        while len(data) < size:
            n = min(self._chunk(), size - len(data))
            data += self.request(Cmd.READ_OUTPUT, len(data).to_bytes(4, "little") + n.to_bytes(2, "little"))
        return np.frombuffer(bytes(data), dtype="<f4").astype(np.float32)

    def infer(self, x: np.ndarray) -> tuple[np.ndarray, int]:
        """(logits, ticks); DeviceError when the model returns non-zero."""
        self.write_input(x)
        rc, ticks = self.run()
        if rc != 0:
            raise DeviceError(f"tvmgen_default_run returned {rc} on the device")
        return self.read_output(), ticks

    def profile(self, timeout: float | None = None) -> Profile:
        """One run with per-call timing (needs a firmware built with -DTVMGEN_DEFAULT_PROFILE)."""
        p = self.request(Cmd.PROFILE, timeout=max(self.timeout, self.run_timeout) if timeout is None else timeout)
        rc = int.from_bytes(p[0:4], "little", signed=True)
        ticks, total = int.from_bytes(p[4:8], "little"), int.from_bytes(p[8:12], "little")
        num_calls = int.from_bytes(p[12:14], "little")
        if rc != 0:
            raise DeviceError(f"tvmgen_default_run returned {rc} on the device during PROFILE")
        call_ticks: list[int] = []
        counts: list[int] = []
        while len(call_ticks) < num_calls:
            q = self.request(Cmd.READ_PROFILE, len(call_ticks).to_bytes(2, "little"))
            count = int.from_bytes(q[2:4], "little")
            if count == 0:
                raise DeviceError(f"device returned no profile entries from index {len(call_ticks)}")
            for i in range(count):
                call_ticks.append(int.from_bytes(q[4 + 8 * i:8 + 8 * i], "little"))
                counts.append(int.from_bytes(q[8 + 8 * i:12 + 8 * i], "little"))
        return Profile(rc, ticks, total, tuple(call_ticks), tuple(counts))

    def reset(self) -> None:
        self.request(Cmd.RESET)

    def close(self) -> None:
        self.transport.close()
