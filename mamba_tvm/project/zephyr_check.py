"""Structural checks of a generated Zephyr app, without a Zephyr tree.

Why: Zephyr is not installable here, yet a generated app should not reach a user with a
CMake list naming a missing file, a malformed Kconfig line, an overlay dtc rejects, or
model C that does not compile for the board. Adapted from the emulation probe's
validate_app.py. What it cannot check: Kconfig symbol names, devicetree bindings, and the
real <zephyr/...> API (main.c, and the RPC app's rpc/*.c, are compiled against the minimal
stub headers in zephyr_stubs/, which checks their own C only).

    python -m mamba_tvm.project.zephyr_check <app dir> <board name>
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from mamba_tvm.codegen import STRICT_C99
from mamba_tvm.codegen.module_name import DEFAULT as DEFAULT_MODULE, api_prefix, rename

CONF_LINE = re.compile(r'^CONFIG_[A-Za-z0-9_]+=(y|n|-?\d+|0x[0-9a-fA-F]+|"([^"\\]|\\.)*")$')
SECTION_ATTR = re.compile(r'section\("([^"]+)"\)')
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r"}

# Just enough of <zephyr/...> for the app's own C (types, format strings) to be checked.
STUB_DIR = Path(__file__).resolve().parent / "zephyr_stubs"
PROFILE_HOOKS = ("tvmgen_default_profile_begin", "tvmgen_default_profile_end")


def _line_end(text: str, i: int) -> int:
    j = text.find("\n", i)
    return len(text) if j < 0 else j


def parse_cmake(text: str) -> list[tuple[str, list[str]]]:
    """CMake commands as (lower-case name, arguments), quoted arguments unescaped."""
    cmds, i, n = [], 0, len(text)
    while i < n:
        if text[i] == "#":
            i = _line_end(text, i)
            continue
        m = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\s*\(").match(text, i)
        if not m:
            i += 1
            continue
        name, i, args, depth = m.group().rstrip("( \t\n").lower(), m.end(), [], 0
        while True:
            if i >= n:
                raise ValueError(f"unterminated {name}(")
            c = text[i]
            if c == '"':
                buf, i = [], i + 1
                while i < n and text[i] != '"':
                    if text[i] == "\\" and i + 1 < n:
                        buf.append(_ESCAPES.get(text[i + 1], text[i + 1]))
                        i += 2
                    else:
                        buf.append(text[i])
                        i += 1
                if i >= n:
                    raise ValueError(f"unterminated quoted argument in {name}(")
                args.append("".join(buf))
                i += 1
            elif c == "#":
                i = _line_end(text, i)
            elif c.isspace():
                i += 1
            elif c == ")" and depth == 0:
                i += 1
                break
            else:
                m2 = re.compile(r'[^\s()"#]+|[()]').match(text, i)
                depth += {"(": 1, ")": -1}.get(m2.group(), 0)
                args.append(m2.group())
                i = m2.end()
        cmds.append((name, args))
    return cmds


def _files_args(args: list[str]) -> list[str]:
    return [a for a in args if a not in ("app", "PRIVATE", "PUBLIC", "INTERFACE") and "${" not in a]


def check_cmake(app: Path) -> tuple[list[str], list[str]]:
    """(problems, -D flags from the compile definitions)."""
    path = app / "CMakeLists.txt"
    if not path.is_file():
        return ["CMakeLists.txt missing"], []
    try:
        cmds = parse_cmake(path.read_text())
    except ValueError as exc:
        return [f"CMakeLists.txt: {exc}"], []
    names = [c for c, _ in cmds]
    problems, defines = [], []
    for want in ("cmake_minimum_required", "find_package", "project"):
        if want not in names:
            problems.append(f"CMakeLists.txt: {want}() missing")
    if problems:
        return problems, defines
    if not (names.index("cmake_minimum_required") < names.index("find_package") < names.index("project")):
        problems.append("CMakeLists.txt: expected cmake_minimum_required, find_package(Zephyr), project() in that order")
    for name, args in cmds:
        if name == "cmake_minimum_required":
            m = re.match(r"(\d+)\.(\d+)", args[args.index("VERSION") + 1] if "VERSION" in args[:-1] else "")
            if not m or (int(m[1]), int(m[2])) < (3, 20):
                problems.append(f"CMakeLists.txt: cmake_minimum_required(VERSION >= 3.20) needed, got {args}")
        elif name == "find_package" and args[:1] == ["Zephyr"] and "REQUIRED" not in args:
            problems.append("CMakeLists.txt: find_package(Zephyr REQUIRED ...) needed")
        elif name in ("target_sources", "zephyr_library_sources", "target_include_directories",
                      "zephyr_library_include_directories"):
            for f in _files_args(args):
                if not (app / f).exists():
                    problems.append(f"CMakeLists.txt: {name} names {f}, which does not exist")
        elif name in ("target_compile_definitions", "zephyr_library_compile_definitions"):
            defines += [f"-D{d}" for d in _files_args(args)]
    if not any(a == "Zephyr" for n, args in cmds if n == "find_package" for a in args[:1]):
        problems.append("CMakeLists.txt: find_package(Zephyr ...) missing")
    return problems, defines


def check_confs(app: Path) -> list[str]:
    problems = []
    for conf in [app / "prj.conf", *sorted((app / "boards").glob("*.conf"))]:
        if not conf.is_file():
            problems.append(f"{conf.name} missing")
            continue
        seen = set()
        for i, line in enumerate(conf.read_text().splitlines(), 1):
            s = line.strip()
            if not s or s.startswith("#"):
                continue
            if not CONF_LINE.match(s):
                problems.append(f"{conf.name}:{i}: not a CONFIG_X=value line: {s!r}")
            elif s.split("=", 1)[0] in seen:
                problems.append(f"{conf.name}:{i}: {s.split('=', 1)[0]} set twice")
            seen.add(s.split("=", 1)[0])
    return problems


def check_overlay(overlay: Path) -> list[str]:
    """cpp, then dtc on a stub base tree defining every &label the overlay references."""
    cpp = subprocess.run(["cpp", "-P", "-nostdinc", "-undef", "-x", "assembler-with-cpp", str(overlay)],
                         capture_output=True, text=True)
    if cpp.returncode:
        return [f"{overlay.name}: cpp: {cpp.stderr.strip()}"]
    text = cpp.stdout
    labels = sorted(set(re.findall(r"&([A-Za-z_][A-Za-z0-9_]*)", text))
                    - set(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*:", text)))
    stub = "/dts-v1/;\n/ { chosen { }; " + " ".join(f"{l}: {l}_stub {{ }};" for l in labels) + " };\n"
    with tempfile.TemporaryDirectory() as tmp:  # cpp line markers make dtc name the overlay's own lines
        base = Path(tmp) / "stub_base.dts"
        base.write_text(stub + f'#include "{overlay.resolve()}"\n')
        cpp = subprocess.run(["cpp", "-nostdinc", "-undef", "-x", "assembler-with-cpp", str(base)],
                             capture_output=True, text=True)
    dtc = subprocess.run(["dtc", "-q", "-I", "dts", "-O", "dts", "-o", "/dev/null", "-"],
                         input=cpp.stdout, capture_output=True, text=True)
    if dtc.returncode:
        return [f"{overlay.name}: dtc: {' '.join(dtc.stderr.split()) or 'failed'}"]
    return []


def check_board_files(app: Path, board, defines: list[str] | None = None,
                      module_name: str = DEFAULT_MODULE) -> list[str]:
    """Board files are optional (the app repeats no board default), but any there must carry
    the board target's name, and an arena in a custom memory region needs the overlay that
    creates that region."""
    from .zephyr import board_file_stem

    stem = board_file_stem(board)
    problems = []
    for f in sorted((app / "boards").glob("*")) if (app / "boards").is_dir() else []:
        if f.suffix in (".conf", ".overlay") and f.stem != stem:
            problems.append(f"boards/{f.name}: Zephyr reads only boards/{stem}{f.suffix} for this board "
                            "(the board target with / -> _)")
    overlay = app / "boards" / f"{stem}.overlay"
    for ov in sorted((app / "boards").glob("*.overlay")) if (app / "boards").is_dir() else []:
        problems += check_overlay(ov)
    section = _arena_section(defines or [], module_name)
    if section and not section.startswith((".bss", ".dtcm_bss")):
        text = overlay.read_text() if overlay.is_file() else ""
        if f'zephyr,memory-region = "{section}"' not in text:
            problems.append(f"the arena goes to section {section}, but no boards/{stem}.overlay makes a node the "
                            f'zephyr,memory-region "{section}" (the linker would have no such output section)')
    return problems


def _arena_section(defines: list[str], module_name: str = DEFAULT_MODULE) -> str | None:
    return next((m[1] for d in defines if d.startswith(rename("-DTVMGEN_DEFAULT_ARENA_SECTION=", module_name))
                 for m in [SECTION_ATTR.search(d)] if m), None)


def _binutil(cc: str, name: str) -> str:
    """The object tool that goes with a compiler: arm-none-eabi-gcc -> arm-none-eabi-nm,
    clang-22 -> llvm-nm-22 (the host's own nm may not know the target's ELF machine)."""
    if cc.endswith("gcc"):
        return cc[: -len("gcc")] + name
    m = re.fullmatch(r"clang(-\d+)?", Path(cc).name)
    if m:
        return f"llvm-{name}{m[1] or ''}"
    return name


def _section_of(obj: Path, symbol: str, cc: str) -> str | None:
    out = subprocess.run([_binutil(cc, "objdump"), "-t", str(obj)], capture_output=True, text=True).stdout
    for line in out.splitlines():
        parts = line.split()
        if parts and parts[-1] == symbol and len(parts) >= 4:
            return parts[-3]
    return None


def _caller_arena(app: Path, module_name: str) -> bool:
    """model.h says the application owns the arena (--arena caller): then src/main.c defines it."""
    header = app / "model" / "model.h"
    return header.is_file() and rename("#define TVMGEN_DEFAULT_WORKSPACE_POOLS 1", module_name) in header.read_text()


def _arena_problem(obj: Path, where: str, board, defines: list[str], module_name: str) -> list[str]:
    """The arena symbol in `obj` must land in the section the CMake asks for (if it asks)."""
    section = _arena_section(defines, module_name)
    if not section:
        return []
    got = _section_of(obj, f"{api_prefix(module_name)}_arena", board.cc)
    return [] if got == section else [f"{where}: arena landed in section {got}, expected {section}"]


def check_model_c(app: Path, board, defines: list[str], module_name: str = DEFAULT_MODULE) -> list[str]:
    """Compile model/*.c with the board's compiler and flags; check where the arena lands."""
    model = app / "model"
    sources = sorted(model.glob("*.c"))
    if not sources:
        return ["model/: no C sources"]
    if shutil.which(board.cc) is None:
        return [f"{board.cc} not found: run tools/setup.sh"]
    problems = []
    for f in sorted(model.glob("*.[ch]")):
        if re.search(r"#\s*include\s*[<\"]zephyr/", f.read_text()):
            problems.append(f"model/{f.name}: includes a Zephyr header; the model C must stay portable")
    caller_arena = _caller_arena(app, module_name)
    with tempfile.TemporaryDirectory() as tmp:
        for src in sources:
            obj = Path(tmp) / (src.stem + ".o")
            cmd = [board.cc, *board.cflags, *STRICT_C99, *defines, "-I", str(model), "-c", str(src), "-o", str(obj)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode:
                problems.append(f"model/{src.name}: {board.cc}: {proc.stderr.strip()}")
            elif src.name == "model.c" and not caller_arena:
                problems += _arena_problem(obj, "model/model.c", board, defines, module_name)
    return problems


def _defined_symbols(obj: Path, cc: str) -> set[str]:
    out = subprocess.run([_binutil(cc, "nm"), "--defined-only", str(obj)], capture_output=True, text=True).stdout
    return {parts[-1] for parts in map(str.split, out.splitlines()) if len(parts) >= 3}


def glue_sources(app: Path) -> list[Path]:
    """The app's own C besides the model: src/main.c, and the RPC app's rpc/*.c."""
    return [app / "src" / "main.c", *sorted((app / "rpc").glob("*.c"))]


def check_main_c(app: Path, board, defines: list[str], module_name: str = DEFAULT_MODULE) -> list[str]:
    """Compile src/main.c (and rpc/*.c) with the board's compiler and flags against the stub
    Zephyr headers; with -DTVMGEN_DEFAULT_PROFILE the glue must define the hooks model.c calls."""
    main = app / "src" / "main.c"
    if not main.is_file():
        return ["src/main.c missing"]
    if shutil.which(board.cc) is None:
        return [f"{board.cc} not found: run tools/setup.sh"]
    includes = ["-I", str(STUB_DIR), "-I", str(app / "src"), "-I", str(app / "model")]
    if (app / "rpc").is_dir():
        includes += ["-I", str(app / "rpc")]
    problems, defined = [], set()
    with tempfile.TemporaryDirectory() as tmp:
        for src in glue_sources(app):
            rel = src.relative_to(app).as_posix()
            obj = Path(tmp) / (src.parent.name + "_" + src.stem + ".o")
            cmd = [board.cc, *board.cflags, *STRICT_C99, *defines, *includes, "-c", str(src), "-o", str(obj)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode:
                problems.append(f"{rel} (against stub Zephyr headers): {proc.stderr.strip()}")
            else:
                defined |= _defined_symbols(obj, board.cc)
                if rel == "src/main.c" and _caller_arena(app, module_name):  # the app owns the arena
                    problems += _arena_problem(obj, rel, board, defines, module_name)
    profile = rename("-DTVMGEN_DEFAULT_PROFILE", module_name)
    if not problems and profile in defines:
        missing = [h for h in (rename(h, module_name) for h in PROFILE_HOOKS) if h not in defined]
        if missing:
            problems.append(f"{profile} is set but no app source defines {', '.join(missing)} "
                            f"(model.c calls them around every kernel call: the link would fail)")
    return problems


def check_zephyr_app(app: Path | str, board, module_name: str = DEFAULT_MODULE) -> list[str]:
    """Every problem found in the app directory; empty when it passes. module_name: the model's
    C prefix (codegen/module_name.py)."""
    app = Path(app)
    problems, defines = check_cmake(app)
    problems += check_confs(app)
    problems += check_board_files(app, board, defines, module_name)
    problems += check_model_c(app, board, defines, module_name)
    problems += check_main_c(app, board, defines, module_name)
    if not (app / "README.md").is_file():
        problems.append("README.md missing")
    return problems


def main(argv: list[str] | None = None) -> int:
    import boards

    args = argv if argv is not None else sys.argv[1:]  # APP BOARD [MODULE_NAME]
    app, board = args[:2]
    problems = check_zephyr_app(Path(app), boards.load_board(board), *args[2:3])
    print("OK" if not problems else "FAIL\n  " + "\n  ".join(problems))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
