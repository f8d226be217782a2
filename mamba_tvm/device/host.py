"""Build the generated C for the host with gcc and run it: the first parity check, no device needed."""
from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import numpy as np

from ..codegen import STRICT_C99
from ..codegen.module_name import DEFAULT as DEFAULT_MODULE, rename
from ..errors import BuildError, DeviceError
from ..resources import runtime_dir

RUNTIME_C = runtime_dir()
#: the host harness: its main, and the arena it owns when the model is built with --arena caller
HARNESS = ("host_main.c", "app_arena.h")


def build_host_runner(model_dir: Path, c_files: list[str], cc: str = "gcc", out: Path | None = None,
                      flags: tuple[str, ...] = (), module_name: str = DEFAULT_MODULE) -> Path:
    """The generated C + runtime_c/host_main.c (its API names those of module_name) as one program."""
    exe = out or model_dir / "host_runner"
    with tempfile.TemporaryDirectory() as tmp:
        for name in HARNESS:
            (Path(tmp) / name).write_text(rename((RUNTIME_C / name).read_text(), module_name))
        harness = Path(tmp) / HARNESS[0]
        cmd = [cc, *STRICT_C99, *flags, "-O2", "-I", str(model_dir), *(str(model_dir / f) for f in c_files),
               str(harness), "-o", str(exe), "-lm"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(f"{cc} failed on the generated C:\n{proc.stderr.strip()}")
    return exe


def run_host(exe: Path, x: np.ndarray) -> np.ndarray:
    with tempfile.TemporaryDirectory() as tmp:
        inp, outp = Path(tmp) / "in.bin", Path(tmp) / "out.bin"
        np.ascontiguousarray(x, dtype=np.float32).tofile(inp)
        proc = subprocess.run([str(exe), str(inp), str(outp)], capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise DeviceError(f"host runner exited with {proc.returncode}: {proc.stderr.strip()}")
        return np.fromfile(outp, dtype=np.float32)
