"""Where the non-Python parts live, in a checkout and in an installed package.

`pip install .` ships runtime_c/ inside the package (pyproject maps it to mamba_tvm/runtime_c);
in a checkout or an editable install it stays at the repository root. Nothing here depends on
the current directory.
"""
from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def runtime_dir() -> Path:
    """runtime_c/: the startup code, board layers, RPC server and minilibc the firmware is built from."""
    for candidate in (PACKAGE_DIR / "runtime_c", PACKAGE_DIR.parent / "runtime_c"):
        if (candidate / "host_main.c").is_file():
            return candidate
    raise FileNotFoundError(f"runtime_c/ is missing from {PACKAGE_DIR} and {PACKAGE_DIR.parent}: "
                            "reinstall mamba_tvm (pip install <clone>)")


def resolve(relative: str) -> Path:
    """A path written relative to the repository (`runtime_c/minilibc/include` in a board file)."""
    first, _, rest = relative.partition("/")
    if first == "runtime_c":
        return runtime_dir() / rest if rest else runtime_dir()
    return PACKAGE_DIR.parent / relative
