"""Host-driven RPC (runtime_c/rpc, mamba_tvm/device/rpc.py) on QEMU mps2-an500, both transports.

One compiled KWS-10 model and one set of firmwares per module; one QEMU per transport
serves most tests, and every fault test ends by checking that the device still answers.
The frame parser and server are also fuzzed on the host under ASan/UBSan.
"""
import json
import os
from collections import Counter
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mamba_tvm.device.qemu import run_elf
from mamba_tvm.device.qemu_rpc import QemuRpc
from mamba_tvm.device.rpc import (
    FRAMING_ERRORS, Cmd, RpcError, Status, cobs_decode, cobs_encode, crc16, decode_frame, encode_frame,
)
from mamba_tvm.errors import DeviceError
from mamba_tvm.profile import aggregate, expected_call_names
from mamba_tvm.project.baremetal import build_elf, write_baremetal_project
from mamba_tvm.project.rpc_firmware import build_rpc_firmware
from tests.reference_f64 import parity_tolerance

ROOT = Path(__file__).resolve().parents[1]
RPC_C = ROOT / "runtime_c" / "rpc"
MAX_ENCODED = 1030 + 1030 // 254 + 1  # RPC_MAX_ENCODED


class Firmware:
    def __init__(self, spec, compiled, x, elfs, run_once_elf):
        self.spec, self.compiled, self.x, self.elfs, self.run_once_elf = spec, compiled, x, elfs, run_once_elf
        self.run_once = run_elf(run_once_elf)  # the reference: same model C, same flags, input baked in


@pytest.fixture(scope="module")
def fw(built, tmp_path_factory) -> Firmware:
    b = built("kws10")
    out = tmp_path_factory.mktemp("rpc")
    x = b.spec.sample_input
    elfs = {(t, p): build_rpc_firmware(out, b.model_dir, b.compiled, b.spec.name, t, p)
            for t, p in (("semihost", True), ("semihost", False), ("uart", True))}
    write_baremetal_project(out, [str(b.model_dir / f) for f in b.compiled.c_files], x)
    return Firmware(b.spec, b.compiled, x, elfs, build_elf(out))


@pytest.fixture(scope="module")
def sh(fw):
    with QemuRpc(fw.elfs["semihost", True], "semihost", timeout=5.0) as q:
        q.session.write_input(fw.x)
        yield q.session


@pytest.fixture(scope="module")
def uart(fw):
    with QemuRpc(fw.elfs["uart", True], "uart", timeout=5.0) as q:
        q.session.write_input(fw.x)
        yield q.session


def _bits(a):
    return np.asarray(a, dtype=np.float32).view(np.uint32)


def _drain(session):
    """Drop replies still queued from earlier requests, so the next frame read is the answer."""
    while session.read_frame(0.05) is not None:
        pass


def _reply(session, timeout=5.0):
    raw = session.read_frame(timeout)
    assert raw is not None, "no reply frame"
    return decode_frame(raw)


def _still_serving(session):
    hello = session.hello(timeout=5.0)
    assert hello.version == 1


# ---- wire format (host side) ------------------------------------------------------------

def test_host_codec():
    assert crc16(b"123456789") == 0x29B1  # CRC-16/CCITT-FALSE check value
    rng = np.random.default_rng(0)
    for n in (0, 1, 253, 254, 255, 508, 1030):
        for density in (0.0, 0.01, 0.5):
            data = bytes(np.where(rng.random(n) < density, 0, rng.integers(1, 256, n)).astype(np.uint8))
            enc = cobs_encode(data)
            assert 0 not in enc and len(enc) <= n + n // 254 + 1 and cobs_decode(enc) == data
    f = decode_frame(encode_frame(Cmd.RUN | 0x80, 513, b"\x00\x01", status=7))
    assert (f.cmd, f.seq, f.status, f.payload) == (Cmd.RUN | 0x80, 513, 7, b"\x00\x01")


# ---- parity and profiling ---------------------------------------------------------------

@pytest.mark.parametrize("link", ["sh", "uart"])
def test_info_and_logits_bit_exact(fw, link, request):
    session = request.getfixturevalue(link)
    info = session.info()
    assert info.model_name == "mambalite_kws10" and info.unit == "instructions" and info.units_per_tick == 40
    assert info.input_shape == (1, 100, 40) and info.output_shape == (1, 10) and info.input_count == 4000
    assert list(info.call_names) == expected_call_names(fw.compiled)
    assert info.arena_bytes == fw.compiled.arena_bytes and info.timer_hz == 25_000_000
    rc, ticks = session.run()
    assert rc == 0
    # the run-once firmware is the same model.c/kernels with the same flags: bit-exact
    np.testing.assert_array_equal(_bits(session.read_output()), _bits(fw.run_once.logits))
    assert abs(ticks - fw.run_once.ticks) <= 700 * 2  # ~2 hook calls per kernel call differ at most


def test_profile_sums_to_run_and_repeats_exactly(fw, sh, uart):
    a, b, c = sh.profile(), sh.profile(), uart.profile()
    assert a == b, "two PROFILE runs must read identical ticks (QEMU -icount)"
    assert a == c, "the transport must not change the counts"
    assert a.sum_ticks == sum(a.call_ticks)
    assert 0 <= a.ticks - a.sum_ticks <= 0.01 * a.ticks
    steps = fw.x.shape[1]
    names = expected_call_names(fw.compiled)
    assert list(a.call_counts) == [steps] * len(fw.compiled.programs["step"].calls) + [1] * (len(names) - len(
        fw.compiled.programs["step"].calls))
    rows = aggregate(names, a.call_ticks, a.call_counts, 40)
    # one row per kernel, however many places call it; its calls and time are those places' sums
    assert sorted(r.name for r in rows) == sorted(set(names))
    assert {r.name: r.calls for r in rows} == _calls_per_kernel(fw.compiled, steps)
    assert sum(r.count for r in rows) == 40 * a.sum_ticks
    np.testing.assert_array_equal(_bits(sh.read_output()), _bits(fw.run_once.logits))


def _calls_per_kernel(compiled, steps):
    """How often each kernel runs in one inference: the step's calls once per frame, the
    finish's once (from the plan, not from the profiler)."""
    calls = Counter()
    for program, times in (("step", steps), ("finish", 1)):
        for call in compiled.programs[program].calls:
            calls[call.kernel] += times
    return dict(calls)


def test_plain_build_has_no_profiling_cost(fw, sh):
    nm = subprocess.run(["arm-none-eabi-nm", str(fw.elfs["semihost", False])], capture_output=True, text=True)
    assert "tvmgen_default_profile" not in nm.stdout and "tvmgen_default_profile" in subprocess.run(
        ["arm-none-eabi-nm", str(fw.elfs["semihost", True])], capture_output=True, text=True).stdout
    with QemuRpc(fw.elfs["semihost", False], "semihost") as q:
        assert not q.session.hello().profiling
        logits, plain_ticks = q.session.infer(fw.x)
        with pytest.raises(RpcError, match="UNSUPPORTED.*TVMGEN_DEFAULT_PROFILE"):
            q.session.profile()
    np.testing.assert_array_equal(_bits(logits), _bits(fw.run_once.logits))
    assert abs(plain_ticks - fw.run_once.ticks) <= 1  # same code as the run-once firmware: same time
    profiled = sh.profile()
    assert abs(plain_ticks - profiled.sum_ticks) <= 0.01 * plain_ticks  # per-call sum vs the hook-free run
    assert plain_ticks < profiled.ticks  # the hooks cost something, the plain build nothing


def test_command_errors(fw, sh):
    with pytest.raises(RpcError, match="UNKNOWN_COMMAND") as e:
        sh.request(0x55)
    assert e.value.status == Status.UNKNOWN_COMMAND
    with pytest.raises(RpcError, match="BAD_LENGTH"):
        sh.request(Cmd.HELLO, b"x")
    with pytest.raises(RpcError, match="OUT_OF_RANGE.*16000"):
        sh.request(Cmd.WRITE_INPUT, (16000 - 3).to_bytes(4, "little") + b"abcd")
    with pytest.raises(DeviceError, match="takes 4000"):
        sh.write_input(fw.x[:, :50])
    sh.reset()
    with pytest.raises(RpcError, match="NOT_READY"):
        sh.run()
    with pytest.raises(RpcError, match="NOT_READY"):
        sh.read_output()
    logits, _ = sh.infer(fw.x)
    np.testing.assert_array_equal(_bits(logits), _bits(fw.run_once.logits))


# ---- faults: the device reports them and keeps serving ------------------------------------

def _hello_wire(session, seq=None):
    seq = session.next_seq() if seq is None else seq
    return seq, encode_frame(Cmd.HELLO, seq)


@pytest.mark.parametrize("link", ["sh", "uart"])
def test_flipped_bit_gets_crc_error(link, request):
    session = request.getfixturevalue(link)
    _drain(session)
    seq, enc = _hello_wire(session)
    bad = bytearray(enc)
    i = len(bad) - 2  # inside the CRC, clear of the seq
    bad[i] ^= 0x10 if bad[i] != 0x10 else 0x20
    session.send_raw(b"\x00" + bytes(bad) + b"\x00")
    reply = _reply(session)
    assert reply.status == Status.BAD_CRC and reply.seq == seq and reply.cmd == Cmd.HELLO | 0x80
    _still_serving(session)


class FlakyTransport:
    """Wraps a transport: corrupts the next write and/or drops the next reply frame."""

    def __init__(self, inner, corrupt_writes=0, drop_replies=0):
        self.inner, self.corrupt_writes, self.drop_replies = inner, corrupt_writes, drop_replies
        self.name = inner.name

    def write(self, data):
        if self.corrupt_writes:
            self.corrupt_writes -= 1
            data = bytearray(data)
            data[len(data) - 3] ^= 0x01 if data[len(data) - 3] != 0x01 else 0x02
        self.inner.write(bytes(data))

    def read(self, n, timeout):
        data = self.inner.read(n, timeout)
        while self.drop_replies and 0 in data:
            self.drop_replies -= 1
            data = data[data.index(0) + 1:]
        return data

    def close(self):
        self.inner.close()


def test_transparent_retry_on_crc_error_and_lost_reply(fw, sh):
    inner = sh.transport
    try:
        sh.transport = FlakyTransport(inner, corrupt_writes=1)
        before = sh.resends
        assert sh.hello().version == 1 and sh.resends == before + 1  # BAD_CRC reply -> resent at once
        sh.transport = FlakyTransport(inner, drop_replies=1)
        t0 = time.monotonic()
        rc, ticks = sh.run(timeout=0.5)  # reply lost -> resent after the timeout -> answered from the device's cache
        assert rc == 0 and sh.resends == before + 2 and time.monotonic() - t0 < 3
    finally:
        sh.transport = inner
    np.testing.assert_array_equal(_bits(sh.read_output()), _bits(fw.run_once.logits))


def test_retry_is_not_run_twice(sh):
    _drain(sh)
    seq = sh.next_seq()
    wire = b"\x00" + encode_frame(Cmd.RUN, seq) + b"\x00"
    t0 = time.monotonic()
    sh.send_raw(wire)
    first = _reply(sh)
    t1 = time.monotonic()
    sh.send_raw(wire)  # the same request again, as after a lost reply
    again = _reply(sh)
    t2 = time.monotonic()
    assert first == again and first.status == Status.OK
    assert t2 - t1 < (t1 - t0) / 3  # replayed from the cache: ~0.1 ms, not another ~39 M instructions


def test_truncated_frame(sh):
    _drain(sh)
    seq, enc = _hello_wire(sh)
    sh.send_raw(b"\x00" + enc[: len(enc) // 2] + b"\x00")
    assert _reply(sh).status in FRAMING_ERRORS
    bad = sh.hello().frames_bad
    seq, enc = _hello_wire(sh)
    sh.send_raw(b"\x00" + enc[:3])  # cut off with no delimiter: the next frame's leading 0x00 closes it
    _still_serving(sh)
    assert sh.hello().frames_bad == bad + 1


def test_frame_longer_than_buffer(sh):
    _drain(sh)
    sh.send_raw(b"\x00" + b"\x41" * 3000 + b"\x00")
    reply = _reply(sh)
    assert reply.status == Status.FRAME_TOO_LONG
    assert int.from_bytes(reply.payload[:4], "little") == MAX_ENCODED
    _still_serving(sh)


@pytest.mark.parametrize("link", ["sh", "uart"])
def test_garbage_between_frames(fw, link, request):
    session = request.getfixturevalue(link)
    rng = np.random.default_rng(7)
    size = 4000 if link == "sh" else 300  # the emulated UART moves ~55 us per byte
    for _ in range(3):
        session.send_raw(rng.integers(0, 256, size, dtype=np.uint8).tobytes())
        _still_serving(session)
    session.send_raw(rng.integers(0, 256, size, dtype=np.uint8).tobytes())
    logits, _ = session.infer(fw.x)
    np.testing.assert_array_equal(_bits(logits), _bits(fw.run_once.logits))
    hello = session.hello()
    assert hello.frames_bad > 0


def _stop(process):
    """SIGSTOP, then wait until every QEMU thread is stopped (the signal is asynchronous)."""
    process.send_signal(signal.SIGSTOP)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        states = [Path(t, "stat").read_text().rsplit(")", 1)[1].split()[0]
                  for t in Path(f"/proc/{process.pid}/task").iterdir()]
        if all(s == "T" for s in states):
            return
        time.sleep(0.01)
    raise AssertionError(f"QEMU threads did not stop: {states}")


def test_device_that_stops_answering(fw):
    with QemuRpc(fw.elfs["semihost", True], "semihost", timeout=0.4, retries=1) as q:
        _stop(q.process)
        t0 = time.monotonic()
        with pytest.raises(DeviceError, match=r"no valid reply to HELLO .* 2 attempt\(s\).*stopped answering"):
            q.session.hello()
        assert time.monotonic() - t0 < 2.0
        q.process.send_signal(signal.SIGCONT)
        _still_serving(q.session)  # the stale replies are skipped by their seq
        q.process.kill()
        with pytest.raises(DeviceError, match=r"closed the connection[\s\S]*QEMU exited with code -9"):
            q.session.hello()
    assert q.process.poll() is not None


def test_uart_device_killed(fw):
    with QemuRpc(fw.elfs["uart", True], "uart", timeout=0.5, retries=1) as q:
        q.process.kill()
        q.process.wait()
        t0 = time.monotonic()
        with pytest.raises(DeviceError, match="socket://127.0.0.1"):
            q.session.hello()
        assert time.monotonic() - t0 < 3.0


def test_not_an_rpc_firmware_is_a_clear_error_and_cleaned_up(fw):
    q = QemuRpc(fw.run_once_elf, "semihost", timeout=1.0, boot_timeout=2.0)
    with pytest.raises(DeviceError, match=r"closed the connection[\s\S]*QEMU exited with code 0[\s\S]*LOGIT 0"):
        with q:  # the run-once ELF prints its LOGIT lines and exits: the error shows them
            pass
    assert q.process.poll() is not None
    with pytest.raises(DeviceError, match="ELF not found"):
        QemuRpc(fw.run_once_elf.with_name("missing.elf")).start()


# ---- host fuzzing of the frame parser + server -----------------------------------------------

def test_fuzz_frame_parser_asan(tmp_path):
    exe = tmp_path / "rpc_fuzz"
    cmd = ["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-O1", "-g", "-fsanitize=address,undefined",
           "-fno-sanitize-recover=all", f"-I{RPC_C}", str(ROOT / "tests" / "rpc_fuzz.c"),
           str(RPC_C / "rpc_frame.c"), str(RPC_C / "rpc_server.c"), "-o", str(exe)]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    proc = subprocess.run([str(exe), "120000", "12345"], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=1"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    stats = dict(zip(proc.stdout.split()[::2], map(int, proc.stdout.split()[1::2])))
    assert stats["frames"] >= 100_000 and stats["failures"] == 0
    for key in ("ok", "bad_crc", "bad_frame", "too_long", "unknown", "bad_length", "out_of_range", "not_ready",
                "unsupported"):
        assert stats[key] > 0, key  # every reply kind was provoked


@pytest.mark.parametrize("cc", ["gcc", "clang"])
def test_core_is_strict_c99(cc, tmp_path):
    for src in ("rpc_frame.c", "rpc_server.c", "transport_cmsdk_uart.c"):
        subprocess.run([cc, "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-c", str(RPC_C / src),
                        "-o", str(tmp_path / "x.o")], check=True)
    m7 = ["-mcpu=cortex-m7", "-mthumb", "-mfpu=fpv5-d16", "-mfloat-abi=hard", "-O2"]
    subprocess.run(["arm-none-eabi-gcc", *m7, "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-c",
                    str(RPC_C / "transport_semihost.c"), "-o", str(tmp_path / "y.o")], check=True)
    assert "zephyr" not in (RPC_C / "rpc_server.c").read_text() + (RPC_C / "rpc_frame.c").read_text()


# ---- the CLI ---------------------------------------------------------------------------------

def test_profile_cli_json_and_inputs(fw, tmp_path):
    rng = np.random.default_rng(1)
    x = np.concatenate([fw.x, fw.x + rng.normal(0, 0.05, fw.x.shape).astype(np.float32)])
    np.savez(tmp_path / "in.npz", inputs=x, labels=np.array([9, 9]))
    out = tmp_path / "p.json"
    proc = subprocess.run([sys.executable, "-m", "mamba_tvm.profile", "--target", "qemu/mps2_an500",
                           "--json", str(out), "--inputs", str(tmp_path / "in.npz"), "--repeat", "2"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "instructions" in proc.stdout and "scan_step" in proc.stdout and "identical" in proc.stdout
    report = json.loads(out.read_text())
    assert report["unit"] == "instructions"
    assert {"name", "calls", "count"} == set(report["kernels"][0])
    names = [k["name"] for k in report["kernels"]]
    assert len(names) == len(set(names))
    assert {k["name"]: k["calls"] for k in report["kernels"]} == _calls_per_kernel(fw.compiled, fw.x.shape[1])
    assert report["kernels_sum"] == sum(k["count"] for k in report["kernels"])
    assert 0 <= report["total"] - report["kernels_sum"] <= 0.01 * report["total"]
    # the CLI compiles with the board's schedule record (the fixture's firmware with the default
    # rules): the same model, equal within the parity bound
    assert np.max(np.abs(np.array(report["logits"]) - fw.run_once.logits)) <= parity_tolerance(fw.run_once.logits)
    assert report["inputs"]["n"] == 2 and report["inputs"]["argmax_agreement"] == 1.0
    assert report["inputs"]["max_abs_err_vs_torch"] <= parity_tolerance(np.array(report["logits"]))
    assert "accuracy_device" in report["inputs"]


@pytest.mark.parametrize("args, message", [
    (["--target", "zephyr/nucleo_h743zi"], "real hardware: flash its RPC firmware and pass --port"),
    (["--inputs", "/nonexistent.npz"], "--inputs file not found"),
    (["--target", "qemu/nope"], "unknown target"),
])
def test_profile_cli_errors(args, message):
    proc = subprocess.run([sys.executable, "-m", "mamba_tvm.profile", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], proc.stderr
