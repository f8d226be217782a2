"""Memory budget: does the model fit the board, and in which RAM region does its arena go?

Why: a model that overflows RAM or flash only fails at link time on a real board (or,
worse, at run time). Checking the plan's numbers against the board file first turns that
into a one-line refusal naming the sizes, the limit and what to try. Regions are tried in
board-file order, which lists the fastest RAM first (DTCM before AXI SRAM on the H7).

The stack is counted in the same region as the arena: on bare metal both share one RAM,
and on Zephyr (where the main stack sits in `zephyr,sram`) this only errs on the safe
side. The RTOS's own RAM is not counted; flash counts the weights plus a code estimate.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import BudgetError

#: Model kernels + run function + RTOS/harness + libc (expf, printk), a rough upper bound
#: for a console-only app; the weights dominate flash for every model worth budgeting.
CODE_BYTES_ESTIMATE = 64 * 1024

#: Where an application image gets less flash than the chip has: (platform, board) ->
#: (bytes, what sets it). Zephyr's default ESP32-S3 partition table gives the PROCPU image
#: slot0 = 1344 KB of the 8 MB (dts/common/espressif/partitions_0x0_amp_4M.dtsi); a
#: custom partition table in the app overlay lifts it.
APP_FLASH_LIMITS = {
    ("zephyr", "esp32s3_devkitc"): (1344 * 1024, "Zephyr's default slot0 partition"),
}


@dataclass(frozen=True)
class Placement:
    """Where the arena goes, and how full the region and the flash end up."""

    region: str  # RAM region name from the board file, e.g. "DTCM"
    address: int
    ram_bytes: int  # arena + stack + state
    ram_limit: int
    flash_bytes: int  # weights + code estimate
    flash_limit: int


def _kib(n: int) -> str:
    return f"{n / 1024:.1f} KiB"


def flash_limit(board, platform: str | None = None) -> tuple[int, str]:
    """(bytes, name) of the flash an application image may use on this board/platform."""
    limit = APP_FLASH_LIMITS.get((platform, board.name))
    if limit is not None and limit[0] < board.flash.size:
        return limit
    return board.flash.size, board.flash.name


def check_flash(board, weights_bytes: int, code_bytes_estimate: int = CODE_BYTES_ESTIMATE,
                platform: str | None = None, sample_bytes: int = 0) -> int:
    """Refuse an image that cannot fit the flash: weights (as stored: int8 when quantized),
    the baked-in sample input of a demo app, and a code estimate."""
    limit, name = flash_limit(board, platform)
    need = weights_bytes + code_bytes_estimate + sample_bytes
    if need > limit:
        sample = f" + baked sample input {sample_bytes} B" if sample_bytes else ""
        raise BudgetError(
            f"model does not fit {board.name} flash: weights {weights_bytes} B ({_kib(weights_bytes)}){sample} "
            f"+ code ~{code_bytes_estimate} B = {_kib(need)} > {name} {limit} B ({_kib(limit)}); "
            + ("try a shorter --seq-len or --mode stream (a shorter demo input)" if sample_bytes > weights_bytes
               else "try int8 weights (4x smaller), a smaller model, or a board with more flash"))
    return need


def bss_region(board):
    """The RAM region plain static buffers (.bss) land in: the board's largest RAM region
    (zephyr,sram on the H7 and the S3, the only RAM of the emulated boards)."""
    return max(board.ram, key=lambda m: m.size)


def check_budget(board, arena_bytes: int, stack_bytes: int, state_bytes: int = 0, weights_bytes: int = 0,
                 code_bytes_estimate: int = CODE_BYTES_ESTIMATE, platform: str | None = None,
                 input_bytes: int = 0, sample_bytes: int = 0) -> Placement:
    """Pick the first (fastest) RAM region holding arena + stack + state; check that the
    app's input buffer (input_bytes, in .bss) fits beside it, and the flash.

    Raises BudgetError with a one-line message when nothing fits.
    """
    flash_bytes = check_flash(board, weights_bytes, code_bytes_estimate, platform, sample_bytes)
    need = arena_bytes + stack_bytes + state_bytes
    bss = bss_region(board)
    for region in board.ram:
        total = need + (input_bytes if region is bss else 0)
        if total <= region.size and (region is bss or input_bytes <= bss.size):
            return Placement(region.name, region.address, need, region.size,
                             flash_bytes, flash_limit(board, platform)[0])
    largest = max(board.ram, key=lambda m: m.size)
    parts = [f"arena {arena_bytes} B"] + [f"{k} {v} B" for k, v in (
        ("stack", stack_bytes), ("state", state_bytes), ("input buffer", input_bytes)) if v]
    total = need + input_bytes
    raise BudgetError(
        f"model does not fit {board.name} RAM: {' + '.join(parts)} = {total} B ({_kib(total)}) "
        f"> largest region {largest.name} {largest.size} B ({_kib(largest.size)}); "
        "try a shorter --seq-len, streaming mode, a smaller d_model, or a board with more RAM")
