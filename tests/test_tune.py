"""The tuner (issue 13): a short tuning run writes a record the next build applies, a wrong
candidate is rejected, stale and other-shape records are ignored with a note, and candidates
are measured through TVM's RPC tracker. Bounded: HAR-6 (T = 10), two kernel trials, no
model-level knobs, one worker (the tracker test: two loopback servers)."""
from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import schedules
from mamba_tvm.driver import build, compile_for_board, resolve_target
from mamba_tvm.frontend.model import load_model
from mamba_tvm.tune.tuner import FAILED, Tuner, parity_error, write_record

HAR6 = Path(__file__).resolve().parents[1] / "mamba_tvm" / "data" / "mambalite_har6.npz"
M7 = "qemu/mps2_an500"
#: a change of the logits kernel's C that makes the model wrong (HAR-6, every schedule)
WRONG = {"T_add_intermediate[ax1] = (param_0[ax1] + ": "T_add_intermediate[ax1] = (0.5f * param_0[ax1] + "}


@pytest.fixture
def record_dir(tmp_path, monkeypatch):
    """schedules/ with the fixed rules only: tuned records are written and read here."""
    d = tmp_path / "schedules"
    d.mkdir()
    for f in schedules.SCHEDULE_DIR.glob("*.toml"):
        shutil.copy(f, d)
    monkeypatch.setattr(schedules, "SCHEDULE_DIR", d)
    return d


def _compile(record_dir):
    board = resolve_target(M7)[1]
    model = load_model(HAR6)
    return compile_for_board(board, model, model.sample_input.shape[1], "sequence", "timestep", "fp32")


def test_parity_check_rejects_what_the_tests_reject():
    ref = np.array([1.0, 30.0, -2.0])
    assert parity_error(ref + 2e-4, ref) is None  # bound 3e-4
    assert "max |logit error|" in parity_error(ref + 4e-4, ref)
    assert parity_error([1.0, np.nan, 0.0], ref) is not None


def test_short_tune_writes_a_record_the_next_build_applies(record_dir, tmp_path):
    tuner = Tuner(M7, [str(HAR6)], trials=2, workers=1, db_dir=tmp_path / "db", model_knobs=False)
    report = tuner.run()
    record = write_record(report, tuner.record_path)
    assert tuner.record_path == record_dir / "cortex-m7.json"
    assert all(reason is None for *_, reason in tuner.results)
    entries = {e["kernel"]: e for e in record["kernels"]}
    assert {"mamba_in_proj_0", "mamba_x_proj", "mamba_scan_step"} <= set(entries)
    assert all(e["count"] > 0 and e["count"] <= e["default_count"] * 1.001 for e in entries.values())
    assert json.loads(tuner.record_path.read_text())["rules_version"] == schedules.RULES_VERSION

    # the next build (another compile, as `build` does it) applies it, kernel by kernel
    compiled = _compile(record_dir)
    assert {k: compiled.schedule[k] for k in entries} == {k: "tuned" for k in entries}
    assert compiled.schedule_notes == []
    # ... with the record's knobs: change one, and the C changes to exactly that candidate's
    entry = entries["mamba_scan_step"]
    entry["knobs"] = {**entry["knobs"], "scan_unroll": 2 if entry["knobs"]["scan_unroll"] != 2 else 8}
    tuner.record_path.write_text(json.dumps({**record, "kernels": list(entries.values())}))
    changed = _compile(record_dir)
    assert changed.sources["model_kernels.c"] != compiled.sources["model_kernels.c"]
    from mamba_tvm.compiler import compile_model
    from mamba_tvm.pipeline import mcu_pipeline

    model = load_model(HAR6)
    knobs = schedules.load_schedule("cortex-m7")
    direct = compile_model(model, 10, pipeline=mcu_pipeline(
        overrides={e["kernel"]: e["knobs"] for e in entries.values()}, **knobs))
    assert direct.sources["model_kernels.c"] == changed.sources["model_kernels.c"]

    # resumable: the same database measures nothing again but the final check
    tuner.record_path.write_text(json.dumps(record))
    again = Tuner(M7, [str(HAR6)], trials=2, workers=1, db_dir=tmp_path / "db", model_knobs=False)
    report2 = again.run()
    assert report2.new_trials == 1
    assert report2.chosen == report.chosen


def test_a_wrong_candidate_is_rejected_never_recorded(record_dir, tmp_path, monkeypatch):
    tuner = Tuner(M7, [str(HAR6)], trials=2, workers=1, db_dir=tmp_path / "db", model_knobs=False)
    make_job = tuner._job

    def job(task, trial, model_point, overrides):  # the first kernel trial computes wrong logits
        j = make_job(task, trial, model_point, overrides)
        if trial == 1000:
            j.corrupt = WRONG
        return j

    monkeypatch.setattr(tuner, "_job", job)
    report = tuner.run()
    wrong = [(job, reason) for _, job, _, reason in tuner.results if job.trial == 1000]
    assert len(wrong) == 1 and "max |logit error|" in wrong[0][1]
    assert all(reason is None for _, job, _, reason in tuner.results if job.trial != 1000)
    rejected = [json.loads(s) for s in (tmp_path / "db" / "rejected.jsonl").read_text().splitlines()]
    assert {r["trial"] for r in rejected} == {1000} and len(rejected) == len(tuner._tasks[0].kernels)
    bad = wrong[0][0].overrides
    from mamba_tvm.tune.space import MODEL_KNOBS

    fixed = schedules.load_schedule("cortex-m7")  # model knobs kept at the core's fixed rules
    for space in tuner._tasks[0].kernels:
        point = {**bad[space.name], **{k: fixed[k] for k in MODEL_KNOBS}}
        measured = tuner._measured(space)
        assert measured[tuple(sorted(point.items()))] == FAILED  # known as rejected: never chosen, never retried
        if report.chosen[("mambalite_har6", space.name)] == bad[space.name]:
            pytest.fail(f"the rejected candidate was chosen for {space.name}")


def test_stale_and_other_shape_records_are_ignored_with_a_note(record_dir, tmp_path):
    path = record_dir / "cortex-m7.json"
    path.write_text(json.dumps({"core": "cortex-m7", "rules_version": 0, "tool": "mamba_tvm 0.0.1",
                                "model_knobs": {"fma": False}, "kernels": []}))
    compiled = _compile(record_dir)
    assert set(compiled.schedule.values()) == {"default"}
    assert any("rules version 0" in n and "ignored" in n for n in compiled.schedule_notes)

    other = {"kernel": "mamba_scan_step", "hash": "0" * 16, "knobs": {"scan_unroll": 16},
             "signature": "mamba_scan_step(f32[1,64], f32[1,20])"}
    path.write_text(json.dumps({"core": "cortex-m7", "rules_version": schedules.RULES_VERSION,
                                "model_knobs": {}, "kernels": [other]}))
    report = build(M7, HAR6, out=tmp_path / "out")
    assert report["schedule"]["mamba_scan_step"] == "default"
    assert any("mamba_scan_step" in n and "another shape" in n for n in report["notes"])


@pytest.fixture
def tracker_and_two_servers():
    from tvm.rpc.tracker import Tracker

    from mamba_tvm.tune.server import start

    from mamba_tvm.device.qemu_rpc import free_tcp_port

    port = free_tcp_port()  # not a fixed port: a server left over from elsewhere would re-register there
    tracker = Tracker("127.0.0.1", port=port, port_end=port + 1, silent=True)
    servers = [start(f"127.0.0.1:{tracker.port}", "tune-test-m7", port=free_tcp_port()) for _ in range(2)]
    try:
        yield tracker, servers
    finally:
        for s in servers:
            s.terminate()
        tracker.terminate()


def test_candidates_are_measured_through_the_tracker(record_dir, tmp_path, tracker_and_two_servers):
    import time

    from tvm import rpc

    tracker, servers = tracker_and_two_servers
    addr = f"127.0.0.1:{tracker.port}"
    def free() -> int:
        return rpc.connect_tracker("127.0.0.1", tracker.port).summary()["queue_info"].get(
            "tune-test-m7", {}).get("free", 0)

    for _ in range(100):  # the servers register with the tracker asynchronously
        if free() == 2:
            break
        time.sleep(0.2)
    assert free() == 2
    tuner = Tuner(M7, [str(HAR6)], trials=2, workers=2, db_dir=tmp_path / "db", tracker=addr,
                  key="tune-test-m7", model_knobs=False)
    tuner.run()
    served = {result.where for _, _, result, _ in tuner.results}
    ports = {f"{socket.gethostname()}:{s.port}" for s in servers}
    assert all(reason is None for *_, reason in tuner.results)
    assert served <= ports and served, served
    print("trials served by", sorted(r.where for _, _, r, _ in tuner.results))


def test_cli_bad_input_is_one_error_line(tmp_path):
    for args in (["--target", "qemu/nope"], ["--tracker", "nohostport"], ["--model", str(tmp_path / "x.npz")],
                 ["--port", "/dev/ttyACM0"], ["--target", "zephyr/nucleo_h743zi"]):
        p = subprocess.run([sys.executable, "-m", "mamba_tvm.tune", *args, "--db", str(tmp_path / "db")],
                           capture_output=True, text=True, timeout=120)
        assert p.returncode == 1 and p.stderr.startswith("error:") and len(p.stderr.strip().splitlines()) == 1, \
            p.stderr


def test_a_run_without_model_knobs_keeps_the_searched_ones(tmp_path):
    """`--fusion layer --no-model-knobs` after a full run must not put the fixed rules' exp and
    FMA back into the record the time-step kernels were tuned under."""
    from mamba_tvm.tune.tuner import TuneReport

    path = tmp_path / "xtensa-lx7.json"
    searched = {"fma": False, "exp": "table128", "fminmax": False}
    write_record(TuneReport("xtensa-lx7", "qemu/xtensa_lx7", searched, []), path)
    fixed = {"fma": False, "exp": "poly6", "fminmax": False}
    record = write_record(TuneReport("xtensa-lx7", "qemu/xtensa_lx7", fixed, [], form="layer/fp32"), path,
                          model_knobs_searched=False)
    assert record["model_knobs"] == searched
    assert write_record(TuneReport("xtensa-lx7", "qemu/xtensa_lx7", fixed, []), path)["model_knobs"] == fixed


FLASH_BOARD = '''
"""A stand-in board for the tuner's serial runner: "flashing" stops the previous QEMU and
boots the candidate's UART RPC firmware on a fixed TCP port, as a reflashed board comes back
on its serial port. Counts its calls in a file."""
import subprocess, sys
from pathlib import Path
sys.path.insert(0, {root!r})
from mamba_tvm.device.qemu_rpc import rpc_qemu_command

elf, port, state = sys.argv[1], sys.argv[2], Path(sys.argv[3])
pid = state / "qemu.pid"
if pid.is_file():
    subprocess.run(["kill", pid.read_text().strip()], check=False)
    subprocess.run(["sh", "-c", "while kill -0 %s 2>/dev/null; do sleep 0.05; done" % pid.read_text().strip()])
cmd = rpc_qemu_command(elf, "tcp:127.0.0.1:%s,server=on,wait=off,nodelay=on" % port)
proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                        start_new_session=True)
pid.write_text(str(proc.pid))
with open(state / "flashed.txt", "a") as f:
    f.write(elf + "\\n")
'''


@pytest.mark.skipif(shutil.which("qemu-system-arm") is None, reason="needs qemu-system-arm (tools/setup.sh)")
def test_a_board_on_a_serial_port_measures_the_candidates(record_dir, tmp_path):
    """--port/--flash: every candidate is flashed by the user's command and measured over the
    serial port (here a QEMU "board" behind a TCP socket, the URL form pyserial gives boards on
    the network); the record says where and in what unit it was measured, and a build applies it."""
    from mamba_tvm.tune.measure import BoardRunner

    state = tmp_path / "board"
    state.mkdir()
    script = tmp_path / "flash_board.py"
    script.write_text(FLASH_BOARD.format(root=str(Path(__file__).resolve().parents[1])))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    runner = BoardRunner(f"socket://127.0.0.1:{port}", f"{sys.executable} {script} {{elf}} {port} {state}",
                         timeout=60.0)
    try:
        tuner = Tuner(M7, [str(HAR6)], trials=2, workers=2, db_dir=tmp_path / "db", model_knobs=False, board=runner)
        assert tuner.workers == 1  # one board: one candidate at a time
        report = tuner.run()
    finally:
        pid = state / "qemu.pid"
        if pid.is_file():
            subprocess.run(["kill", pid.read_text().strip()], check=False)
    flashed = (state / "flashed.txt").read_text().split()
    assert len(flashed) == len(tuner.results) >= 2 and all(f.endswith(".elf") for f in flashed)
    assert all(r.where == runner.port and reason is None for _, _, r, reason in tuner.results)
    record = write_record(report, tuner.record_path)
    assert record["measured_on"] == f"{M7} on {runner.port}"
    assert record["unit"].startswith("instructions")  # what this firmware's timer counts (a board: cycles)
    compiled = _compile(record_dir)
    entries = {e["kernel"] for e in record["kernels"]}
    assert entries and {k: compiled.schedule[k] for k in entries} == {k: "tuned" for k in entries}



def test_a_zephyr_board_gets_its_rpc_app_to_flash(tmp_path):
    """On a zephyr/ target the flash command gets the candidate as a generated Zephyr RPC app
    ({app}: built and flashed by the user's west command), checked structurally here; a flash
    command that fails rejects the candidate with its exit code, never a count."""
    from mamba_tvm.tune.measure import BoardRunner, Job, build_candidate, measure

    model = load_model(HAR6)
    knobs = schedules.load_schedule("cortex-m7")
    runner = BoardRunner("/dev/null-board", "test -f {app}/CMakeLists.txt && exit 7")
    job = Job(0, str(HAR6), "zephyr/nucleo_h743zi", knobs, {}, model.sample_input, board=runner)
    app, compiled, _ = build_candidate(job, tmp_path)
    assert (app / "CMakeLists.txt").is_file() and (app / "prj.conf").is_file()
    assert (app / "rpc" / "transport_zephyr_uart.c").is_file() and (app / "rpc" / "rpc_server.c").is_file()
    assert "CONFIG_UART_CONSOLE=n" in (app / "prj.conf").read_text()  # the console UART is the RPC channel
    result = measure(job)
    assert not result.ok and result.error.startswith("run failed: DeviceError: flash command exited with 7")
