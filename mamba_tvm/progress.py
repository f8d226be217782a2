"""Progress and the closing summary on stderr (rich), so stdout stays the one JSON line.

Why: a build is silent for 6-20 s and a `--inputs` check for minutes; a user at a terminal
wants to see which step runs. In CI and pipes (stderr not a terminal) nothing moves: the
progress display is off, only the short summary table is printed (plain text).
Library code marks its long steps with `step(...)` / `track(...)`; these do nothing unless
a command opened `display()` around them.
"""
from __future__ import annotations

import contextlib
import sys
import time

_active: list = []  # the rich Progress of the running command (at most one)


def console(force_terminal: bool | None = None, file=None):
    from rich.console import Console

    stream = file or sys.stderr
    is_tty = force_terminal or (force_terminal is None and stream.isatty())
    # a pipe or a CI log has no width: wide enough that the summary's rows stay on one line
    return Console(file=stream, force_terminal=force_terminal, highlight=False, soft_wrap=False,
                   width=None if is_tty else 110)


@contextlib.contextmanager
def display(enabled: bool | None = None, file=None):
    """Show the steps run inside as a live display on stderr; on by default only when stderr
    is a terminal. The display is gone (and the terminal clean) before the summary prints."""
    stream = file or sys.stderr
    if enabled is None:
        enabled = stream.isatty()
    if not enabled or _active:
        yield
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    progress = Progress(SpinnerColumn(finished_text="[green]✓"), TextColumn("{task.description}"),
                        BarColumn(bar_width=24), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=console(force_terminal=True if file is not None else None, file=stream),
                        transient=False)
    _active.append(progress)
    try:
        with progress:
            yield
    finally:
        _active.remove(progress)


@contextlib.contextmanager
def step(description: str):
    """One long step (compile, host check, firmware build, QEMU run)."""
    if not _active:
        yield
        return
    progress = _active[0]
    task = progress.add_task(description, total=1)
    start = time.monotonic()
    try:
        yield
    finally:
        progress.update(task, completed=1, description=f"{description} [dim]({time.monotonic() - start:.1f} s)")


def track(items, description: str, total: int | None = None):
    """Iterate `items`, advancing a bar (one input of `profile --inputs` per item)."""
    if not _active:
        yield from items
        return
    progress = _active[0]
    task = progress.add_task(description, total=total if total is not None else len(items))
    for item in items:
        yield item
        progress.advance(task)


def _size(n) -> str:
    return "-" if n is None else f"{n:,} B ({n / 1024:.1f} KiB)"


def build_summary(report: dict, board=None):
    """The closing table of a build: RAM by region, flash, instructions, error, output."""
    from rich.table import Table

    table = Table(title=f"mamba_tvm build: {report.get('target')} ({report.get('mode')}, {report.get('fusion')}, "
                        f"{report.get('weights')})", title_justify="left", show_header=True, box=None,
                  pad_edge=False)
    table.add_column("", style="bold")
    table.add_column("bytes / value", justify="right")
    table.add_column("of", justify="left")
    ram_total = report.get("total_ram_bytes")
    region = report.get("placement")
    region_size = None
    if board is not None and region:
        region_size = next((m.size for m in board.memories if m.name == region), None)
    table.add_row("arena", _size(report.get("arena_bytes")), "")
    table.add_row("state", _size(report.get("state_bytes")), "")
    table.add_row("stack", _size(report.get("stack_bytes")),
                  f"device-measured {report['device_stack_bytes']:,} B" if report.get("device_stack_bytes") else "")
    share = f"{100 * ram_total / region_size:.2f}% of {region} {region_size // 1024:,} KiB" if (
        ram_total and region_size) else (region or "")
    table.add_row("RAM total", _size(ram_total), share)
    table.add_row("weights", _size(report.get("weights_bytes")), "")
    if report.get("model_flash_bytes") is not None:
        flash = board.flash if board is not None else None
        table.add_row("model flash", _size(report.get("model_flash_bytes")),
                      f"{100 * report['model_flash_bytes'] / flash.size:.2f}% of {flash.name} {flash.size // 1024:,} KiB"
                      if flash else "")
    if report.get("flash_bytes") is not None:
        table.add_row("firmware flash", _size(report.get("flash_bytes")), "")
    if report.get("instructions") is not None:
        table.add_row("instructions", f"{report['instructions']:,}", "per inference, on the device")
    err = report.get("max_abs_err_vs_torch")
    if err is not None:
        table.add_row("max |error|", f"{err:.2e}", f"{report.get('logits_from', '')} logits vs {report.get('reference', 'reference')}")
    if report.get("argmax") is not None:
        table.add_row("argmax", str(report["argmax"]), f"reference {report.get('argmax_torch')}")
    from rich.console import Group
    from rich.text import Text

    return Group(table, Text(f"output          {report.get('out_dir', '')}", no_wrap=True, overflow="ignore"))


def print_summary(renderable, file=None) -> None:
    console(file=file).print(renderable)
