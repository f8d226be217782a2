"""Board definitions: one TOML file a board in this folder, read into a Board record.

Adding a board is adding a file. Targets are named `<platform>/<board>`:
`qemu/mps2_an500` and `qemu/xtensa_lx7` (bare-metal, run here) and `zephyr/<board>`.

`cc` and `cflags` say how to compile C for the chip. Two keys expand into `cflags`:
`target_features` (ISA options clang takes only as cc1 target features, for cores it has no
CPU model for: the Xtensa LX7) and `include_dirs` (paths relative to the repository:
header directories the compiler lacks; clang-22 for Xtensa has no C library, so
runtime_c/minilibc/include stands in), which become `-isystem` flags.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from mamba_tvm.resources import resolve

BOARD_DIR = Path(__file__).resolve().parent
REPO_DIR = BOARD_DIR.parent


@dataclass(frozen=True)
class Memory:
    name: str
    address: int
    size: int
    kind: str  # "ram" | "flash"


@dataclass(frozen=True)
class Board:
    name: str
    description: str
    platforms: tuple[str, ...]  # "qemu", "zephyr"
    core: str
    fpu: str
    clock_hz: int
    cc: str
    cflags: tuple[str, ...]  # complete: target features and include dirs expanded
    memories: tuple[Memory, ...]
    zephyr_board: str | None
    emulation: str | None  # board whose emulator stands in for this one in tests
    zephyr_main_stack_default: int | None = None  # CONFIG_MAIN_STACK_SIZE when the app sets none
    target_features: tuple[str, ...] = ()  # e.g. ("+fp", "+windowed"): also for the assembler

    @property
    def ram(self) -> list[Memory]:
        return [m for m in self.memories if m.kind == "ram"]

    @property
    def flash(self) -> Memory:
        return next(m for m in self.memories if m.kind == "flash")


def load_board(name: str) -> Board:
    path = BOARD_DIR / f"{name}.toml"
    if not path.is_file():
        raise KeyError(name)
    data = tomllib.loads(path.read_text())
    mems = tuple(Memory(m["name"], int(m["address"]), int(m["size"]), m["kind"]) for m in data["memory"])
    features = tuple(data.get("target_features", ()))
    feature_flags = [f for feat in features for f in ("-Xclang", "-target-feature", "-Xclang", feat)]
    includes = [f for d in data.get("include_dirs", []) for f in ("-isystem", str(resolve(d)))]
    stack = data.get("zephyr_main_stack_default")
    return Board(name=name, description=data["description"], platforms=tuple(data["platforms"]),
                 core=data["core"], fpu=data["fpu"], clock_hz=int(data["clock_hz"]), cc=data["cc"],
                 cflags=tuple(data["cflags"]) + tuple(feature_flags) + tuple(includes), memories=mems,
                 zephyr_board=data.get("zephyr_board"), emulation=data.get("emulation") or None,
                 zephyr_main_stack_default=int(stack) if stack is not None else None,
                 target_features=features)


def all_boards() -> list[Board]:
    return [load_board(p.stem) for p in sorted(BOARD_DIR.glob("*.toml"))]


def targets() -> dict[str, Board]:
    """`platform/board` -> Board, for every platform each board supports."""
    return {f"{plat}/{b.name}": b for b in all_boards() for plat in b.platforms}
