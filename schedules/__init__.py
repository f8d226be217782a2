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
           "matvec_unroll_int64": 1, "fminmax": False, "pair_loads": False,
           "divide": "hardware"}


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


#: version of the schedule rules a tuned record was measured with: a record of another
#: version is ignored (its knobs may mean something else now). Bump when a rule changes.
RULES_VERSION = 2


def tuned_record_path(core: str) -> Path:
    return SCHEDULE_DIR / f"{core}.json"


def load_tuned(core: str) -> tuple[dict, dict, list[str], dict]:
    """(model-level knobs, kernel hash -> knobs, notes, the record) of the core's tuned record
    `<core>.json` (written by `python -m mamba_tvm.tune`); empty when there is none, or when it
    was written for other rules (then a note says so)."""
    import json

    path = tuned_record_path(core)
    if not path.is_file():
        return {}, {}, [], {}
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        return {}, {}, [f"{path.name}: unreadable ({exc}); fixed rules"], {}
    if record.get("rules_version") != RULES_VERSION:
        return {}, {}, [f"{path.name} was tuned with schedule rules version {record.get('rules_version')} "
                        f"({record.get('tool', 'unknown tool')}), these are version {RULES_VERSION}: "
                        "ignored, fixed rules"], {}
    known = set(DEFAULT)
    model_knobs = {k: v for k, v in record.get("model_knobs", {}).items() if k in known}
    kernels = {e["hash"]: {k: v for k, v in e["knobs"].items() if k in known}
               for e in record.get("kernels", []) if "hash" in e and "knobs" in e}
    return model_knobs, kernels, [], record


def unmatched_notes(record: dict, decisions: dict, core: str) -> list[str]:
    """Notes for the kernels of this build that got the fixed rules although the record has an
    entry of the same name (another shape, or another kernel body)."""
    by_name: dict[str, list[str]] = {}
    for e in record.get("kernels", []):
        by_name.setdefault(e.get("kernel", ""), []).append(e.get("signature", "?"))
    missed = [d["signature"] for name, d in sorted(decisions.items())
              if d["schedule"] == "default" and d.get("tunable", True) and name in by_name]
    if not missed:
        return []
    return [f"{core}.json has no record for {', '.join(missed)} (it has these kernels for another shape): "
            "fixed rules for them; `python -m mamba_tvm.tune` tunes them"]
