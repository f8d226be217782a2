"""Board definitions: one TOML file a board in this folder, read into a Board record.

Adding a board is adding a file. Targets are named `<platform>/<board>`:
`qemu/mps2_an500` (bare-metal, runs here) and `zephyr/<zephyr board name>`.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

BOARD_DIR = Path(__file__).resolve().parent


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
    cflags: tuple[str, ...]
    memories: tuple[Memory, ...]
    zephyr_board: str | None
    emulation: str | None  # board whose emulator stands in for this one in tests

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
    return Board(name=name, description=data["description"], platforms=tuple(data["platforms"]),
                 core=data["core"], fpu=data["fpu"], clock_hz=int(data["clock_hz"]), cc=data["cc"],
                 cflags=tuple(data["cflags"]), memories=mems, zephyr_board=data.get("zephyr_board"),
                 emulation=data.get("emulation"))


def all_boards() -> list[Board]:
    return [load_board(p.stem) for p in sorted(BOARD_DIR.glob("*.toml"))]


def targets() -> dict[str, Board]:
    """`platform/board` -> Board, for every platform each board supports."""
    return {f"{plat}/{b.name}": b for b in all_boards() for plat in b.platforms}
