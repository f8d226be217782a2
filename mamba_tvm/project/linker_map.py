"""Bytes the model occupies in the firmware, read from the GNU ld map file.

The model is compiled with -ffunction-sections -fdata-sections, so each kernel, weight array,
the arena and the state have input sections of their own (.text.tvmgen_<module>_*,
.rodata.s_w_mamba_x_proj_weight, .bss.tvmgen_<module>_arena, ...): summing them splits the model from the harness
and libm without trusting our own size arithmetic.
"""
from __future__ import annotations

import re
from pathlib import Path

_SECTION = re.compile(r"^ (\.(?:text|rodata|data|bss)\.(\S+))(?:\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)\s+\S+)?$")
_CONT = re.compile(r"^\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)\s+\S+")
# the model's functions and constants, and the C tables the kernels read (exp, constant selects)
_MODEL_SYMBOL = re.compile(r"^(tvmgen_[a-z]\w*|(?:[sf]_)?w_\w+|[sf]_w\d+|w\d+|mamba_exp2_table\d+_bits"
                           r"|mamba_select_\w+_table)$")


def model_sections(map_file: Path) -> dict[str, int]:
    """{input section name: bytes} for the model's own sections in the linked image."""
    sizes: dict[str, int] = {}
    lines = Path(map_file).read_text().splitlines()
    in_discarded = False
    for i, line in enumerate(lines):
        if line.startswith("Discarded input sections"):
            in_discarded = True
        elif line.startswith("Memory Configuration") or line.startswith("Linker script and memory map"):
            in_discarded = False
        m = _SECTION.match(line)
        if in_discarded or not m or not _MODEL_SYMBOL.match(m.group(2)):
            continue
        size = m.group(4)
        if size is None and i + 1 < len(lines) and (c := _CONT.match(lines[i + 1])):
            size = c.group(2)
        if size is not None:
            sizes[m.group(1)] = sizes.get(m.group(1), 0) + int(size, 16)
    return sizes


def model_footprint(map_file: Path) -> dict[str, int]:
    """Model flash (code + constants) and static RAM (arena, state), from the map."""
    sections = model_sections(map_file)
    flash = sum(n for s, n in sections.items() if s.startswith((".text.", ".rodata.", ".data.")))
    ram = sum(n for s, n in sections.items() if s.startswith((".bss.", ".data.")))
    code = sum(n for s, n in sections.items() if s.startswith(".text."))
    return {"model_flash_bytes": flash, "model_code_bytes": code, "model_static_ram_bytes": ram}
