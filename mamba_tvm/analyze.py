"""`mamba-tvm analyze`: per-layer MACs, weights and activations of a compiled model, against the board.

Like X-CUBE-AI's `analyze`, without a device: the model is compiled for the target exactly as
`build` compiles it, and every kernel call of the plan becomes a row named after the user's
module (`mamba.in_proj`), with its MACs, weight bytes (fp32 and int8, from both compiles),
the arena bytes it writes and its share of the MACs. The totals are the build's own figures
(arena, state, weights) against the board's RAM region and flash. `--profile` adds the
instructions each kernel takes on QEMU (the profiler's RPC firmware); `--png` draws the arena
timeline and the per-layer costs, `--html` puts table and picture in one self-contained page.

MACs: the multiplies of each kernel (a multiply-add counts one; multiplies by a literal
constant are scaling, not counted), counted on the kernel's TIR as the graph passes leave it,
before the scheduling passes (blocking, fast math) rewrite the arithmetic, times the loop
extents around them and the number of times the kernel runs per inference (T for the
per-frame step of a time-step fused model).
"""
from __future__ import annotations

import argparse
import base64
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import CompileError, argument_parser, exit_with, run_cli


@dataclass
class LayerRow:
    layer: str  # module path of the user's model, or "-"
    kernel: str
    program: str  # "main" | "step" | "finish"
    calls: int  # per inference
    macs: int  # per inference
    weights_fp32_bytes: int
    weights_int8_bytes: int | None
    activation_bytes: int  # arena tensors this kernel writes (outputs and workspaces)
    share: float = 0.0  # of the MACs
    instructions: int | None = None  # --profile: measured per inference
    weights: list = field(default_factory=list)  # constant tensor names


def count_macs(func) -> int:
    """Multiplies executed by one call of a TIR PrimFunc (see the module docstring)."""
    import tvm_ffi
    from tvm import ir, tirx

    total = [0]

    def muls(expr) -> int:
        found = [0]

        def on_mul(node):
            if "float" in str(node.ty) and not (
                    isinstance(node.a, (tirx.FloatImm, tirx.IntImm)) or isinstance(node.b, (tirx.FloatImm, tirx.IntImm))):
                found[0] += 1
            return node

        def on_call(node):
            if isinstance(node.op, ir.Op) and node.op.name.endswith(".fma"):
                found[0] += 1
            return node

        tvm_ffi.structural_map(expr, (tirx.Mul, on_mul))
        tvm_ffi.structural_map(expr, (ir.expr.Call, on_call))
        return found[0]

    def walk(stmt, trips: int):
        if isinstance(stmt, tirx.For):
            walk(stmt.body, trips * int(stmt.extent))
        elif isinstance(stmt, tirx.SeqStmt):
            for s in stmt.seq:
                walk(s, trips)
        elif isinstance(stmt, tirx.BufferStore):
            total[0] += trips * muls(stmt.value)
        elif isinstance(stmt, tirx.IfThenElse):
            walk(stmt.then_case, trips)
            if stmt.else_case is not None:
                walk(stmt.else_case, trips)
        elif isinstance(stmt, tirx.Evaluate):
            total[0] += trips * muls(stmt.value)
        else:
            for attr in ("body", "block"):
                child = getattr(stmt, attr, None)
                if child is not None and isinstance(child, tirx.Stmt):
                    walk(child, trips)
                    break
            init = getattr(stmt, "init", None)
            if init is not None:
                walk(init, trips)

    walk(func.body, 1)
    return total[0]


def unscheduled_kernels(model, seq_len: int, fusion: str, weights: str) -> dict:
    """The kernels as the graph passes leave them (named after layers, fused, not yet
    scheduled): what MACs are counted on."""
    import tvm

    from .compiler import TIME_STEP_TRACE_LEN, import_model
    from .pipeline import graph_passes, model_passes

    trace_len = max(seq_len, TIME_STEP_TRACE_LEN) if fusion == "timestep" else seq_len
    mod = tvm.transform.Sequential(model_passes(fusion, weights))(import_model(model, trace_len))
    mod = tvm.transform.Sequential(graph_passes())(mod)
    from tvm import tirx

    return {gv.name_hint: f for gv, f in mod.functions_items() if isinstance(f, tirx.PrimFunc)}


def module_paths(model) -> list[str]:
    """Dotted paths of the user's modules (`mamba.in_proj`), longest first."""
    if model.module is None:
        return []
    return sorted((n for n, _ in model.module.named_modules() if n), key=len, reverse=True)


def layer_of_kernel(kernel: str, paths: list[str]) -> str:
    """The user's module a kernel is named after: `mamba_in_proj_0` -> `mamba.in_proj`."""
    for path in paths:
        flat = path.replace(".", "_")
        if kernel == flat or kernel.startswith(flat + "_"):
            # a Mamba op kernel named after the mixer (`mamba_conv_step`): its submodule if one
            # matches the op's first word (`mamba.conv1d`), else the mixer itself (the scan)
            word = kernel[len(flat) + 1:].split("_", 1)[0]
            sub = [p for p in paths if word and p.startswith(f"{path}.{word}") and p.count(".") == path.count(".") + 1]
            return sub[0] if len(sub) == 1 else path
    return "-"


def runs_per_inference(compiled, program: str) -> int:
    return compiled.seq_len if program == "step" else 1


def _rows(compiled, model, unscheduled: dict, int8_compiled=None) -> list[LayerRow]:
    paths = module_paths(model)
    int8_consts: dict[tuple, int] = {}
    if int8_compiled is not None:  # int8 kernels are named after the fp32 ones (`mamba_x_proj_int8`)
        for name, p in int8_compiled.programs.items():
            fp32_kernels = [c.kernel for c in compiled.programs[name].calls] if name in compiled.programs else []
            seen = set()
            for call in p.calls:
                match = max((k for k in fp32_kernels if call.kernel == k or call.kernel.startswith(k + "_")),
                            key=len, default=None)
                if match is None:
                    layer = layer_of_kernel(call.kernel, paths)
                    match = next((k for k in fp32_kernels if layer != "-" and layer_of_kernel(k, paths) == layer),
                                 call.kernel)
                for a in call.args:
                    t = p.tensors[a]
                    if t.kind == "const" and a not in seen:
                        seen.add(a)
                        int8_consts[(name, match)] = int8_consts.get((name, match), 0) + t.nbytes
    rows: dict[tuple, LayerRow] = {}
    for name, p in compiled.programs.items():
        seen_consts: set = set()
        seen_arena: set = set()
        runs = runs_per_inference(compiled, name)
        for call in p.calls:
            key = (name, call.kernel)
            func = unscheduled.get(call.kernel) or compiled.programs[name].kernels[call.kernel]
            row = rows.get(key)
            if row is None:
                row = rows[key] = LayerRow(layer_of_kernel(call.kernel, paths), call.kernel, name, 0, 0, 0,
                                           int8_consts.get(key, 0) if int8_compiled is not None else None, 0)
            row.calls += runs
            row.macs += runs * count_macs(func)
            for a in call.args:
                t = p.tensors[a]
                if t.kind == "const" and a not in seen_consts:
                    seen_consts.add(a)
                    row.weights_fp32_bytes += t.nbytes
                    row.weights.append(a)
                elif t.kind == "arena" and t.producer == call.kernel and a not in seen_arena:
                    seen_arena.add(a)
                    row.activation_bytes += t.nbytes
    result = list(rows.values())
    total = sum(r.macs for r in result) or 1
    for r in result:
        r.share = r.macs / total
    return result


def analyze(model_path, target: str, seq_len: int | None = None, mode: str = "sequence",
            fusion: str = "timestep", profile: bool = False) -> dict:
    """The analysis as a dict: `layers` (LayerRow fields) and `totals` against the board."""
    from .driver import DEFAULT_MODEL, compile_for_board, resolve_target
    from .frontend.check_inputs import check_input
    from .frontend.model import load_model
    from .progress import step
    from .project.budget import check_budget

    platform, board = resolve_target(target)
    with step("loading the model"):
        model = load_model(model_path or DEFAULT_MODEL)
    x, _ = check_input(model, seq_len)
    with step(f"compiling fp32 ({fusion}, {mode})"):
        compiled = compile_for_board(board, model, x.shape[1], mode, fusion, "fp32")
    with step("compiling int8"):
        try:
            int8 = compile_for_board(board, model, x.shape[1], mode, fusion, "int8")
        except CompileError:
            int8 = None
    with step("counting MACs"):
        rows = _rows(compiled, model, unscheduled_kernels(model, x.shape[1], fusion, "fp32"), int8)
    stack = None
    import shutil
    import tempfile

    if shutil.which(board.cc):
        from .project.stack_usage import model_stack_bytes, stack_usage

        with step(f"stack usage ({board.cc})"), tempfile.TemporaryDirectory() as tmp:
            compiled.write(Path(tmp))
            stack = model_stack_bytes(stack_usage(Path(tmp), compiled.c_files, board.cc, list(board.cflags)))
    placement = check_budget(board, compiled.arena_bytes, stack or 0, compiled.state_bytes, compiled.weights_bytes,
                             platform=platform)
    totals = {"macs": sum(r.macs for r in rows), "arena_bytes": compiled.arena_bytes,
              "state_bytes": compiled.state_bytes, "stack_bytes": stack,
              "ram_bytes": compiled.arena_bytes + compiled.state_bytes + (stack or 0),
              "weights_bytes": compiled.weights_bytes,
              "weights_int8_bytes": int8.weights_bytes if int8 is not None else None,
              "ram_region": placement.region, "ram_region_bytes": placement.ram_limit,
              "flash_region": board.flash.name, "flash_bytes": placement.flash_limit,
              "activation_bytes_unplanned": max(p.unplanned_bytes for p in compiled.programs.values())}
    report = {"model": str(model_path or DEFAULT_MODEL), "target": target, "seq_len": int(x.shape[1]), "mode": mode,
              "fusion": fusion, "layers": [asdict(r) for r in rows], "totals": totals,
              "timeline": timeline(compiled)}
    if profile:
        with step("profiling on QEMU"):
            measured = _profile(model_path, target, x.shape[1], mode, fusion)
        for r in report["layers"]:
            r["instructions"] = measured["kernels"].get(r["kernel"])
        totals["instructions"] = measured["total"]
        totals["instruction_unit"] = measured["unit"]
    return report


def _profile(model_path, target, seq_len, mode, fusion) -> dict:
    """Per-kernel instructions from `mamba-tvm profile` on QEMU (the RPC firmware)."""
    from .profile import parse_args, profile

    args = parse_args(["--target", target, "--seq-len", str(seq_len), "--mode", mode, "--fusion", fusion]
                      + (["--model", str(model_path)] if model_path else []))
    rep = profile(args)
    return {"kernels": {k["name"].removeprefix("tvmgen_default_"): k["count"] for k in rep["kernels"]},
            "total": rep["total"], "unit": rep["unit"]}


def timeline(compiled) -> dict:
    """What the arena picture draws: every arena tensor's live range and offset, per program."""
    return {name: {"calls": [c.kernel for c in p.calls], "arena_bytes": p.arena_bytes,
                   "tensors": [{"name": t.name, "producer": t.producer, "offset": t.offset, "bytes": t.nbytes,
                                "first": t.first_use, "last": t.last_use} for t in p.arena_tensors()],
                   "state": {n: p.tensors[n].nbytes for n in p.state}}
            for name, p in compiled.programs.items()}


def _b(n) -> str:
    return "-" if n is None else f"{n:,}"


def format_table(report: dict) -> str:
    """The X-CUBE-AI-style text table and the totals against the board."""
    rows = report["layers"]
    measured = any(r.get("instructions") is not None for r in rows)
    head = ["layer", "kernel", "runs", "MACs", "weights fp32", "weights int8", "activations", "share"]
    if measured:
        head += ["instructions", "instr/MAC"]
    table = []
    for r in rows:
        line = [r["layer"], r["kernel"], _b(r["calls"]), _b(r["macs"]), _b(r["weights_fp32_bytes"]),
                _b(r["weights_int8_bytes"]), _b(r["activation_bytes"]), f"{100 * r['share']:.1f}%"]
        if measured:
            ins = r.get("instructions")
            line += [_b(ins), f"{ins / r['macs']:.2f}" if ins and r["macs"] else "-"]
        table.append(line)
    t = report["totals"]
    total = ["total", "", "", _b(t["macs"]), _b(t["weights_bytes"]), _b(t["weights_int8_bytes"]),
             f"arena {_b(t['arena_bytes'])}", "100.0%"]
    if measured:
        total += [_b(t.get("instructions")), f"{t['instructions'] / t['macs']:.2f}" if t.get("instructions") else "-"]
    widths = [max(len(str(c)) for c in col) for col in zip(head, *table, total)]
    left = {0, 1}

    def fmt(cells):
        return "  ".join(str(c).ljust(w) if i in left else str(c).rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    rule = "-" * len(fmt(head))
    lines = [f"{Path(report['model']).name} on {report['target']}: T={report['seq_len']}, {report['mode']}, "
             f"{report['fusion']} fusion; MACs and runs per inference; bytes", fmt(head), rule,
             *map(fmt, table), rule, fmt(total), ""]
    ram = t["ram_bytes"]
    stack = "stack not measured" if t["stack_bytes"] is None else f"stack {t['stack_bytes']:,}"
    lines.append(f"RAM   {ram:,} B = arena {t['arena_bytes']:,} + state {t['state_bytes']:,} + {stack}: "
                 f"{100 * ram / t['ram_region_bytes']:.2f}% of {t['ram_region']} ({t['ram_region_bytes']:,} B); "
                 f"without arena reuse the activations would take {t['activation_bytes_unplanned']:,} B")
    lines.append(f"flash weights {t['weights_bytes']:,} B fp32" + (
        f" / {t['weights_int8_bytes']:,} B int8" if t["weights_int8_bytes"] is not None else "")
        + f": {100 * t['weights_bytes'] / t['flash_bytes']:.2f}% of {t['flash_region']} ({t['flash_bytes']:,} B)")
    if measured:
        lines.append(f"measured: {t['instructions']:,} {t['instruction_unit']} per inference on QEMU "
                     f"({t['instructions'] / t['macs']:.2f} per MAC)")
    return "\n".join(lines)


def draw(report: dict, png: Path) -> None:
    """Two panels: the arena over the call sequence (tensors as bars at their offsets, the state
    and the stack above it) and the per-layer MACs (and measured instructions)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    tl = report["timeline"]
    name = "step" if "step" in tl else "main"
    prog = tl[name]
    t = report["totals"]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(15, 6), gridspec_kw={"width_ratios": [1.25, 1]})
    cmap = plt.get_cmap("tab20")
    calls = prog["calls"]
    producers = sorted({x["producer"] for x in prog["tensors"]})
    for x in prog["tensors"]:
        color = cmap(producers.index(x["producer"]) % 20)
        ax.add_patch(Rectangle((x["first"] - 0.45, x["offset"]), x["last"] - x["first"] + 0.9, x["bytes"],
                               facecolor=color, edgecolor="black", linewidth=0.6, alpha=0.85))
        if x["bytes"] >= 0.12 * max(prog["arena_bytes"], 1):
            ax.text((x["first"] + x["last"]) / 2, x["offset"] + x["bytes"] / 2, f"{x['bytes']:,} B",
                    ha="center", va="center", fontsize=7)
    top = prog["arena_bytes"]
    ax.axhline(top, color="black", linewidth=1)
    ax.text(-0.45, top, f"arena {top:,} B", va="bottom", ha="left", fontsize=8)
    # the state (and the stack) can be many times the arena: drawn as bands of a fixed height
    # above it, not to scale, their sizes written on them
    state = t["state_bytes"]  # what RAM holds: the state struct (tensors + step counter), as in the title
    stack = t["stack_bytes"] or 0
    band = max(top * 0.22, 1)
    ax.add_patch(Rectangle((-0.5, top * 1.04), len(calls), band, facecolor="#cfd8e6", edgecolor="#5a6f8f",
                           hatch="//", linewidth=0.8))
    ax.text(len(calls) / 2 - 0.5, top * 1.04 + band / 2, f"state {state:,} B (kept across calls; not to scale)",
            ha="center", va="center", fontsize=8, bbox=dict(facecolor="white", edgecolor="none", pad=1))
    if stack:
        ax.add_patch(Rectangle((-0.5, top * 1.08 + band), len(calls), band * 0.6, facecolor="#f3d9b1",
                               edgecolor="#a0722d", linewidth=0.8))
        ax.text(len(calls) / 2 - 0.5, top * 1.08 + band * 1.3, f"stack {stack:,} B (deepest call; not to scale)",
                ha="center", va="center", fontsize=8)
    ax.set_xlim(-0.7, len(calls) - 0.3)
    ax.set_ylim(0, top * 1.12 + band * 1.6)
    ax.set_yticks([v for v in ax.get_yticks() if v <= top])
    ax.set_xticks(range(len(calls)))
    ax.set_xticklabels(calls, rotation=35, ha="right", fontsize=8)
    ax.set_ylabel("RAM offset (bytes)")
    where = "one time step (the arena is reused every step)" if name == "step" else "the whole run"
    ax.set_title(f"Arena timeline, {where}: tensors live between the calls that write and last read them",
                 fontsize=9)
    handles = [Rectangle((0, 0), 1, 1, facecolor=cmap(i % 20)) for i in range(len(producers))]
    ax.legend(handles, [f"written by {p}" for p in producers], fontsize=7, loc="upper left",
              bbox_to_anchor=(0, -0.25), ncol=3, frameon=False)

    rows = sorted(report["layers"], key=lambda r: r["macs"])
    labels = [f"{r['layer']} ({r['kernel']})" if r["layer"] != "-" else r["kernel"] for r in rows]
    y = range(len(rows))
    measured = any(r.get("instructions") is not None for r in rows)
    h = 0.4 if measured else 0.7
    bx.barh([i + (h / 2 if measured else 0) for i in y], [r["macs"] for r in rows], height=h, color="#4c72b0",
            label="MACs")
    if measured:
        bx.barh([i - h / 2 for i in y], [r.get("instructions") or 0 for r in rows], height=h, color="#dd8452",
                label=f"measured {t['instruction_unit']} (QEMU)")
    for i, r in zip(y, rows):
        text = f" {r['macs']:,} ({100 * r['share']:.1f}%)" if r["macs"] else " 0 MACs (additions, copies)"
        bx.text(max(r["macs"], 1), i + (h / 2 if measured else 0), text, va="center", fontsize=7)
    bx.set_yticks(list(y))
    bx.set_yticklabels(labels, fontsize=8)
    bx.set_xscale("log")
    bx.set_xlim(1, max(max(r["macs"] for r in rows), max((r.get("instructions") or 0) for r in rows)) * 8)
    bx.set_xlabel("per inference (log scale)")
    bx.set_title(f"Cost per layer: {t['macs']:,} MACs in total", fontsize=9)
    bx.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)
    fig.suptitle(f"{Path(report['model']).name} on {report['target']} (T={report['seq_len']}, {report['fusion']}): "
                 f"RAM {t['ram_bytes']:,} B of {t['ram_region']} {t['ram_region_bytes']:,} B, weights "
                 f"{t['weights_bytes']:,} B of {t['flash_region']} {t['flash_bytes']:,} B", fontsize=10)
    fig.tight_layout(rect=(0, 0.02, 1, 0.97))
    fig.savefig(png, dpi=110)
    plt.close(fig)


def html_page(report: dict, png: Path | None) -> str:
    """One self-contained page: the table, the totals and the picture (embedded, base64)."""
    import html

    img = ""
    if png is not None:
        data = base64.b64encode(Path(png).read_bytes()).decode()
        img = f'<img alt="arena timeline and per-layer cost" src="data:image/png;base64,{data}" style="max-width:100%">'
    return ("<!doctype html><html><head><meta charset='utf-8'><title>mamba_tvm analyze</title>"
            "<style>body{font-family:sans-serif;margin:2em} pre{font-size:13px;background:#f6f6f6;padding:1em}"
            "</style></head><body>"
            f"<h1>mamba_tvm analyze: {html.escape(Path(report['model']).name)} on {html.escape(report['target'])}</h1>"
            f"<pre>{html.escape(format_table(report))}</pre>{img}</body></html>\n")


def parse_args(argv=None) -> argparse.Namespace:
    from .build import positive_int

    p = argument_parser(prog="python -m mamba_tvm.analyze", description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=None, help="model file (default: the bundled KWS-10)")
    p.add_argument("--target", default="qemu/mps2_an500", help="board target (its RAM and flash are the budget)")
    p.add_argument("--seq-len", type=positive_int, default=None, help="sequence length T (default: the sample's)")
    p.add_argument("--mode", choices=("sequence", "stream"), default="sequence")
    p.add_argument("--fusion", choices=("timestep", "layer"), default="timestep")
    p.add_argument("--profile", action="store_true", help="measure instructions per kernel on QEMU")
    p.add_argument("--png", type=Path, default=None, help="write the arena timeline and per-layer costs here")
    p.add_argument("--html", type=Path, default=None, help="write a self-contained HTML page here")
    return p.parse_args(argv)


def _check_new(path: Path | None, suffix: str) -> None:
    if path is None:
        return
    if path.suffix.lower() != suffix:
        raise CompileError(f"{path}: expected a {suffix} file name")
    if path.exists():
        raise CompileError(f"{path} exists; mamba_tvm does not overwrite files it did not write: give a new path")
    if not path.parent.is_dir():
        raise CompileError(f"{path.parent} is not a directory")


def main(argv=None) -> int:
    return run_cli(lambda: _main(argv))


def _main(argv) -> int:
    from .progress import display

    args = parse_args(argv)
    _check_new(args.png, ".png")
    _check_new(args.html, ".html")
    if args.profile and not args.target.startswith("qemu/"):
        raise CompileError(f"--profile runs on QEMU: use a qemu/... target, or `mamba-tvm profile --port` on "
                           f"the board for '{args.target}'")
    with display():
        report = analyze(args.model, args.target, args.seq_len, args.mode, args.fusion, args.profile)
    written = []
    try:
        png = args.png
        if args.html is not None and png is None:  # the page embeds the picture; draw it to a temporary file
            import tempfile

            png = Path(tempfile.mkdtemp(prefix="mamba_tvm_analyze.")) / "analyze.png"
        if png is not None:
            draw(report, png)
            written.append(png)
        if args.html is not None:
            args.html.write_text(html_page(report, png))
            written.append(args.html)
        if args.png is None and png is not None:
            png.unlink()
            png.parent.rmdir()
            written.remove(png)
    except BaseException:
        for path in written:  # only what this command wrote
            path.unlink(missing_ok=True)
        raise
    print(format_table(report))
    out = {k: v for k, v in report.items() if k != "timeline"}
    print(json.dumps(out, allow_nan=False))
    return 0


if __name__ == "__main__":
    exit_with(main())
