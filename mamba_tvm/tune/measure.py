"""Builder and runners for microcontroller candidates (MetaSchedule's Builder/Runner roles).

Why not ms.builder.LocalBuilder / ms.runner.RPCRunner: those build one TIR kernel with
tvm.compile and time it through the TVM runtime; here a candidate is a whole model (every
kernel gets its knobs at once, so one run measures them all), compiled by mamba_tvm's
pipeline to plain C, linked by the core's real toolchain and flags into the RPC firmware with
per-call profiling, and measured in instructions on the emulated core (QEMU -icount on the
M7, the LX7's ICOUNT). The logits come back with the counts; tuner.py checks them against the
float64 reference before any count is used.

- build_candidate: knobs -> firmware ELF (in a worker process: TVM and the C compiler).
- run_local: the ELF on a local QEMU -> per-call counts and logits.
- run_remote: the same through TVM's RPC tracker (tvm.rpc): a server started by
  `python -m mamba_tvm.tune.server` runs the ELF on its QEMU (server.py).
- run_board: a board on a serial port: the user's flash command puts the candidate on it
  (`{elf}`: the UART RPC firmware of a qemu/ target; `{app}`: the Zephyr RPC app of a zephyr/
  target, which the command builds and flashes), then the RPC session measures it there in
  the firmware's unit (cycles on a board's cycle counter).
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: a TVM RPC function the tune server registers (server.py)
REMOTE_RUN = "mamba_tvm.tune.run_profile"


@dataclass
class Job:
    """One trial: a model compiled with these knobs, measured once."""
    trial: int
    model_path: str
    target: str
    base_knobs: dict
    overrides: dict  # kernel name -> knobs
    x: np.ndarray
    mode: str = "sequence"
    fusion: str = "timestep"
    weights: str = "fp32"
    tracker: str | None = None  # HOST:PORT
    key: str | None = None  # tracker key (default: the core)
    corrupt: dict = field(default_factory=dict)  # tests only: kernel name -> C text replacement
    board: "BoardRunner | None" = None  # a board on a serial port measures instead of QEMU


@dataclass
class BoardRunner:
    """A board on a serial port running the RPC firmware: `flash` (a shell command with {elf} or
    {app}, and {port}) puts each candidate on it first."""
    port: str
    flash: str
    baud: int = 115200
    timeout: float = 120.0


@dataclass
class Result:
    trial: int
    ok: bool
    error: str | None = None  # build or run failure
    kernels: dict = field(default_factory=dict)  # kernel name -> count per call (a kernel's own cost)
    calls: dict = field(default_factory=dict)  # kernel name -> calls in one inference
    total: int = 0
    logits: list = field(default_factory=list)
    decisions: dict = field(default_factory=dict)  # kernel name -> {"schedule", "signature", "hash"}
    where: str = "local"  # which runner measured it (a tracker's server: its address)
    unit: str = "instructions"  # what the firmware counts (a board's cycle counter: cycles)

    def inference(self, names) -> int:
        """Instructions the named kernels take in one inference (per-call counts times calls)."""
        return int(round(sum(self.kernels.get(n, 0) * self.calls.get(n, 0) for n in names)))


_MODELS: dict = {}


def _model(path: str):
    from ..frontend.model import load_model

    if path not in _MODELS:
        _MODELS[path] = load_model(path)
    return _MODELS[path]


def build_candidate(job: Job, work: Path):
    """(ELF, compiled, decisions): the model compiled with the job's knobs into the core's RPC
    firmware with per-call profiling."""
    from ..compiler import compile_model
    from ..driver import resolve_target
    from ..pipeline import mcu_pipeline
    from ..project.rpc_firmware import build_rpc_firmware

    _platform, board = resolve_target(job.target)
    model = _model(job.model_path)
    decisions: dict = {}
    compiled = compile_model(model, job.x.shape[1], mode=job.mode, fusion=job.fusion, weights=job.weights,
                             pipeline=mcu_pipeline(overrides=job.overrides, decisions=decisions, **job.base_knobs))
    for old, new in job.corrupt.items():  # a deliberately wrong candidate (tests)
        for name, text in compiled.sources.items():
            compiled.sources[name] = text.replace(old, new)
    compiled.write(work / "model")
    if job.board is not None and _platform == "zephyr":  # the board's own build: a Zephyr RPC app
        from ..driver import _target_build

        app = _target_build(_platform, board, work, compiled, job.x, run=False, app="rpc", model_name=model.name)
        return Path(app["zephyr_app"]), compiled, decisions
    transport = "uart" if job.board is not None else "semihost"
    elf = build_rpc_firmware(work, work / "model", compiled, model.name, transport, profile=True,
                             cflags=list(board.cflags), core=board.core)
    return elf, compiled, decisions


def profile_elf(elf: Path | str, x: np.ndarray, timeout: float = 30.0) -> dict:
    """Run the profiling firmware once on its local QEMU: per-call ticks, counts, logits."""
    from ..device.qemu_rpc import QemuRpc

    with QemuRpc(Path(elf), "semihost", timeout=timeout) as q:
        return _profile(q.session, x)


def _profile(session, x: np.ndarray) -> dict:
    """One PROFILE of the firmware on `session` with input x: per-call ticks, counts, logits."""
    info = session.info()
    session.write_input(x)
    prof = session.profile()
    logits = session.read_output()
    return {"call_names": list(info.call_names), "call_ticks": list(prof.call_ticks),
            "call_counts": list(prof.call_counts), "ticks": prof.ticks, "units_per_tick": info.units_per_tick,
            "unit": info.unit, "logits": [float(v) for v in np.asarray(logits).reshape(-1)]}


def run_board(candidate: Path, x: np.ndarray, runner: BoardRunner) -> dict:
    """Flash the candidate with the runner's command, then profile it over the serial port."""
    import subprocess

    from ..device.rpc import RpcSession, SerialTransport
    from ..errors import DeviceError

    fields = {"elf": candidate, "app": candidate, "port": runner.port}
    command = runner.flash.format(**{k: str(v) for k, v in fields.items()})
    flashed = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=runner.timeout)
    if flashed.returncode != 0:
        tail = (flashed.stderr or flashed.stdout).strip().splitlines()[-1:] or [""]
        raise DeviceError(f"flash command exited with {flashed.returncode}: {tail[0]}")
    session = RpcSession(SerialTransport(runner.port, baudrate=runner.baud), timeout=runner.timeout)
    try:
        session.warm_up(timeout=runner.timeout)
        return {**_profile(session, x), "served_by": runner.port}
    finally:
        session.close()


def run_remote(elf: Path, x: np.ndarray, tracker: str, key: str, timeout: float = 120.0) -> dict:
    """profile_elf on a server the tracker assigns (tvm.rpc): the ELF and input are uploaded."""
    from tvm import rpc

    host, port = tracker.rsplit(":", 1)
    client = rpc.connect_tracker(host, int(port))
    session = client.request(key, priority=1, session_timeout=timeout)
    session.upload(bytearray(Path(elf).read_bytes()), "candidate.elf")
    session.upload(bytearray(np.ascontiguousarray(x, np.float32).tobytes()), "input.bin")
    reply = session.get_function(REMOTE_RUN)("candidate.elf", "input.bin", json.dumps(list(x.shape)))
    return json.loads(str(reply))


def measure(job: Job) -> Result:
    """Build and run one candidate (a worker process's job); failures become a Result, never raise."""
    from ..profile import aggregate

    work = Path(tempfile.mkdtemp(prefix=f"mamba_tvm_tune.{job.trial}."))
    try:
        try:
            elf, compiled, decisions = build_candidate(job, work)
        except Exception as exc:  # noqa: BLE001 - a candidate that does not build is recorded as such
            return Result(job.trial, False, f"build failed: {_one_line(exc)}")
        try:
            from ..driver import resolve_target

            core = resolve_target(job.target)[1].core
            run = (run_board(elf, job.x, job.board) if job.board is not None
                   else run_remote(elf, job.x, job.tracker, job.key or core) if job.tracker
                   else profile_elf(elf, job.x))
        except Exception as exc:  # noqa: BLE001
            return Result(job.trial, False, f"run failed: {_one_line(exc)}", decisions=decisions)
        rows = aggregate(run["call_names"], run["call_ticks"], run["call_counts"], run["units_per_tick"])
        return Result(job.trial, True, None, kernels={r.name: r.count / max(r.calls, 1) for r in rows},
                      calls={r.name: r.calls for r in rows}, total=run["ticks"] * run["units_per_tick"],
                      logits=run["logits"], decisions=decisions, where=run.get("served_by", "local"),
                      unit=run.get("unit", "instructions"))
    except Exception:  # noqa: BLE001 - a bug here must not take the whole tuning run down
        return Result(job.trial, False, "tuner error: " + traceback.format_exc().strip().splitlines()[-1])
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _one_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
