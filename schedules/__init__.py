"""Per-chip schedule records: which schedule rules the kernel passes apply on which core.

One TOML file a core (`<core>.toml`, the `core` field of a board file). Today a record holds
the knobs of the fixed rules (the MAC-loop unroll factor, the C stack limit above which a
kernel temporary moves to the arena); a tuner would write its choices here too.
"""
from __future__ import annotations

import tomllib
from pathlib import Path

SCHEDULE_DIR = Path(__file__).resolve().parent
DEFAULT = {"unroll": 4, "stack_limit": 256, "matvec_block": 8, "exp": "poly6", "fma": True, "scan_unroll": 1,
           "scan_hoist": True, "scan_base2": True, "int8_matvec": "float", "matvec_block_int64": 4,
           "matvec_unroll_int64": 1, "fminmax": False}


def load_schedule(core: str) -> dict:
    """The record for `core`, or the defaults when there is none."""
    path = SCHEDULE_DIR / f"{core}.toml"
    record = dict(DEFAULT)
    if path.is_file():
        record.update(tomllib.loads(path.read_text()))
    unknown = set(record) - set(DEFAULT)
    if unknown:
        raise ValueError(f"{path}: unknown schedule keys {sorted(unknown)}")
    return record
