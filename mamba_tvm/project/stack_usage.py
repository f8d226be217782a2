"""Per-function C stack bytes of the generated model, from the compiler's -fstack-usage.

The kernels run one after another from tvmgen_default_run (or from step/finish), so the
model's stack is the entry functions' frames plus the deepest kernel (libm calls such as expf add a few words more;
the device measurement on QEMU includes them).
"""
from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from ..errors import BuildError


def stack_usage(model_dir: Path, c_files: list[str], cc: str, cflags: list[str]) -> dict[str, int]:
    usage: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in c_files:
            obj = Path(tmp) / (Path(name).stem + ".o")
            cmd = [cc, *cflags, "-std=c99", "-fstack-usage", "-I", str(model_dir), "-c", str(model_dir / name), "-o", str(obj)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                raise BuildError(f"{cc} failed on {name}:\n{proc.stderr.strip()}")
            for line in obj.with_suffix(".su").read_text().splitlines():
                location, nbytes, _kind = line.split("\t")
                usage[location.rsplit(":", 1)[-1]] = int(nbytes)
    return usage


ENTRY_POINTS = ("init", "step", "finish")


def model_stack_bytes(usage: dict[str, int], prefix: str = "tvmgen_default") -> int:
    """Deepest static chain: run -> (init | step | finish) -> kernel. libm frames not included.
    prefix: the model's API prefix (tvmgen_<module name>)."""
    run_symbol, entry_points = f"{prefix}_run", [f"{prefix}_{e}" for e in ENTRY_POINTS]
    kernels = [n for k, n in usage.items() if k != run_symbol and k not in entry_points]
    entries = [usage.get(k, 0) for k in entry_points]
    return usage.get(run_symbol, 0) + max(entries) + max(kernels, default=0)
