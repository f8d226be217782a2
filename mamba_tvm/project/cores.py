"""The emulated cores a bare-metal firmware is built for: toolchain, harness files, QEMU.

Why a table: the Cortex-M7 (QEMU mps2-an500) and the Xtensa LX7 (QEMU sim, de233_fpu)
firmwares go through one flow (write the project, build the ELF, audit it, run it, parse
what it prints: baremetal.py, rpc_firmware.py, device/qemu.py). What differs per core is
data, kept here: which toolchain and how it is driven, which startup, board, runtime and
linker-script files, and which QEMU machine runs the result.

The two toolchains:
- Cortex-M7: arm-none-eabi-gcc compiles and links in one command; newlib-nano gives libm.
- Xtensa LX7: Debian's clang-22 has the Xtensa target but emits misaligned literal pools
  when it writes objects itself, so each C file goes `clang-22 -S` then `llvm-mc-22`
  (which puts literals in .literal sections); ld.lld-22 does not link Xtensa, the GNU ld of
  binutils-xtensa-lx106 does (every relocation sits on a core-ISA instruction). There is
  no C library: runtime_c/minilibc supplies the float math and memory functions.
"""
from __future__ import annotations

import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from mamba_tvm.codegen import STRICT_C99
from mamba_tvm.codegen.module_name import DEFAULT as DEFAULT_MODULE, rename
from mamba_tvm.device.qemu import MPS2_AN500, XTENSA_SIM, QemuMachine, machine_for_elf
from mamba_tvm.errors import BuildError
from mamba_tvm.resources import runtime_dir

RUNTIME_DIR = runtime_dir()
# Applied to the model sources too: generated code must stay warning-free C99.
STRICT_CFLAGS = [*STRICT_C99, "-ffunction-sections", "-fdata-sections"]


def _run(cmd: list[str], cwd: Path, what: str) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(f"{what} failed (exit {proc.returncode}) in {cwd}\n$ {shlex.join(cmd)}\n{proc.stderr.strip()}")


@dataclass(frozen=True)
class GnuArmToolchain:
    """arm-none-eabi-gcc: compile and link in one command, newlib-nano's libm, no startfiles."""

    prefix: str = "arm-none-eabi-"
    install: str = "apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi"
    ldflags: tuple[str, ...] = ("-nostartfiles", "-Wl,--gc-sections", "--specs=nano.specs")

    def tool(self, name: str) -> str:
        path = shutil.which(self.prefix + name)
        if path is None:
            raise BuildError(f"{self.prefix}{name} not found; install it with: {self.install}")
        return path

    def link(self, project: Path, sources: list[str], include_dirs: list[str], cflags: list[str],
             linker_script: str, elf: Path, freestanding: tuple[str, ...] = (),
             extra_ldflags: list[str] | tuple[str, ...] = ()) -> None:
        del freestanding  # newlib supplies the C library: nothing of ours is compiled freestanding
        cmd = [self.tool("gcc"), *cflags, *STRICT_CFLAGS, *("-I" + d for d in include_dirs), *sources,
               "-T", linker_script, *self.ldflags, f"-Wl,-Map={elf.with_suffix('.map').name}", *extra_ldflags,
               "-o", elf.name, "-lm"]
        _run(cmd, project, f"{self.prefix}gcc")

    def makefile_build(self, sources: list[str], include_dirs: list[str], cflags: list[str],
                       linker_script: str, freestanding: tuple[str, ...] = ()) -> str:
        del freestanding
        return f"""CC = {self.prefix}gcc
SIZE = {self.prefix}size
CFLAGS = {" ".join(cflags + STRICT_CFLAGS)}
INCLUDES = {" ".join("-I" + d for d in include_dirs)}
LDFLAGS = -T {linker_script} {" ".join(self.ldflags)} -Wl,-Map=model.map
SRCS = {" ".join(sources)}

model.elf: $(SRCS) {linker_script}
\t$(CC) $(CFLAGS) $(INCLUDES) $(SRCS) $(LDFLAGS) -o $@ -lm
\t$(SIZE) $@
"""


@dataclass(frozen=True)
class ClangXtensaToolchain:
    """clang-22 -S, llvm-mc-22 -filetype=obj, xtensa-lx106-elf-ld (see the module docstring)."""

    cc: str = "clang-22"
    mc: str = "llvm-mc-22"
    binutils: str = "xtensa-lx106-elf-"
    install: str = "apt-get install clang-22 llvm-22 binutils-xtensa-lx106 (clang-22 is in bookworm-security)"
    ldflags: tuple[str, ...] = ("--gc-sections", "--no-warn-rwx-segments")

    def tool(self, name: str) -> str:
        exe = {"cc": self.cc, "mc": self.mc}.get(name, self.binutils + name)
        path = shutil.which(exe)
        if path is None:
            raise BuildError(f"{exe} not found; install it with: {self.install}")
        return path

    def _mattr(self, cflags: list[str]) -> str:
        """The target features given to clang (-Xclang -target-feature -Xclang +f), for llvm-mc."""
        feats = [cflags[i + 3] for i in range(len(cflags) - 3)
                 if cflags[i:i + 3] == ["-Xclang", "-target-feature", "-Xclang"]]
        if not feats:
            raise BuildError("Xtensa cflags name no target features (-Xclang -target-feature -Xclang +fp ...): "
                             "the board file's target_features are missing")
        return ",".join(feats)

    @staticmethod
    def _object(source: str) -> str:
        return f"obj/{Path(source).stem}.o"

    def link(self, project: Path, sources: list[str], include_dirs: list[str], cflags: list[str],
             linker_script: str, elf: Path, freestanding: tuple[str, ...] = (),
             extra_ldflags: list[str] | tuple[str, ...] = ()) -> None:
        objects = [self._object(s) for s in sources]
        clash = {o for o in objects if objects.count(o) > 1}
        if clash:
            raise BuildError(f"two sources would compile to the same object {sorted(clash)}: rename one")
        (project / "obj").mkdir(exist_ok=True)
        mc = [self.tool("mc"), "-triple=xtensa", f"-mattr={self._mattr(cflags)}", "-filetype=obj"]
        includes = ["-I" + d for d in include_dirs]
        for source, obj in zip(sources, objects):
            asm = source
            if source.endswith(".c"):
                asm = obj[:-2] + ".s"
                extra = ["-ffreestanding"] if Path(source).name in freestanding else []
                _run([self.tool("cc"), *cflags, *STRICT_CFLAGS, *extra, *includes, "-S", source, "-o", asm],
                     project, f"{self.cc} on {source}")
            _run([*mc, asm, "-o", obj], project, f"{self.mc} on {asm}")
        _run([self.tool("ld"), "-T", linker_script, *self.ldflags, "-Map", elf.with_suffix(".map").name,
              *extra_ldflags, "-o", elf.name, *objects], project, f"{self.binutils}ld")

    def makefile_build(self, sources: list[str], include_dirs: list[str], cflags: list[str],
                       linker_script: str, freestanding: tuple[str, ...] = ()) -> str:
        objects = [self._object(s) for s in sources]
        rules = []
        for source, obj in zip(sources, objects):
            if source.endswith(".c"):
                flags = "$(CFLAGS) -ffreestanding" if Path(source).name in freestanding else "$(CFLAGS)"
                rules.append(f"{obj}: {source} | obj\n\t$(CC) {flags} $(INCLUDES) -S $< -o {obj[:-2]}.s\n"
                             f"\t$(MC) $(MCFLAGS) {obj[:-2]}.s -o $@")
            else:
                rules.append(f"{obj}: {source} | obj\n\t$(MC) $(MCFLAGS) $< -o $@")
        return f"""# C -> assembly (clang-22) -> object (llvm-mc-22): clang's own object writer misaligns
# literal pools (LLVM 22). Linked with the GNU ld of binutils-xtensa-lx106.
CC = {self.cc}
MC = {self.mc}
LD = {self.binutils}ld
SIZE = {self.binutils}size
CFLAGS = {" ".join(shlex.quote(f) for f in cflags + STRICT_CFLAGS)}
MCFLAGS = -triple=xtensa -mattr={self._mattr(cflags)} -filetype=obj
INCLUDES = {" ".join("-I" + d for d in include_dirs)}
OBJS = {" ".join(objects)}

model.elf: $(OBJS) {linker_script}
\t$(LD) -T {linker_script} {" ".join(self.ldflags)} -Map model.map -o $@ $(OBJS)
\t$(SIZE) $@

obj:
\tmkdir -p obj

{chr(10).join(rules)}
"""


@dataclass(frozen=True)
class BareMetalCore:
    """Everything core-specific about a bare-metal firmware; paths are relative to runtime_c/."""

    name: str  # the `core` of the board files
    description: str
    toolchain: GnuArmToolchain | ClangXtensaToolchain
    machine: QemuMachine
    linker_script: str
    startup: tuple[str, ...]  # start-up, board layer and C runtime sources (every firmware has them)
    headers: tuple[str, ...]
    rpc_main: str
    rpc_transports: dict[str, tuple[str, str]]  # name -> (source, define)
    freestanding: tuple[str, ...] = ()  # file names compiled -ffreestanding (a libc's own functions)

    @property
    def files(self) -> tuple[str, ...]:
        return (*self.startup, *self.headers, self.linker_script)


CORTEX_M7 = BareMetalCore(
    name="cortex-m7", description="Cortex-M7 (QEMU mps2-an500)", toolchain=GnuArmToolchain(), machine=MPS2_AN500,
    linker_script="baremetal/mps2_an500.ld",
    startup=("baremetal/startup_m7.c", "baremetal/board_mps2_an500.c", "baremetal/board_console.c"),
    headers=("baremetal/board.h",),
    rpc_main="rpc/main_rpc_mps2.c",
    rpc_transports={"semihost": ("rpc/transport_semihost.c", "-DRPC_TRANSPORT_SEMIHOST"),
                    "uart": ("rpc/transport_cmsdk_uart.c", "-DRPC_TRANSPORT_UART")},
)

XTENSA_LX7 = BareMetalCore(
    name="xtensa-lx7", description="Xtensa LX7 with FPU (QEMU sim, de233_fpu)", toolchain=ClangXtensaToolchain(),
    machine=XTENSA_SIM, linker_script="baremetal/xtensa_sim.ld",
    startup=("baremetal/startup_lx7.s", "baremetal/board_xtensa_sim.c", "baremetal/board_console.c",
             "minilibc/mathf.c", "minilibc/string.c"),
    headers=("baremetal/board.h",),
    rpc_main="rpc/main_rpc_xtensa.c",
    rpc_transports={"semihost": ("rpc/transport_xtensa_semihost.c", "-DRPC_TRANSPORT_SEMIHOST")},
    freestanding=("string.c",),
)

CORES = {c.name: c for c in (CORTEX_M7, XTENSA_LX7)}


def bare_metal_core(name: str) -> BareMetalCore:
    """The core named by a board file; BuildError when no emulated firmware exists for it."""
    if name not in CORES:
        raise BuildError(f"no bare-metal QEMU firmware for core '{name}' (known: {', '.join(CORES)})")
    return CORES[name]


def core_for_elf(elf: Path | str) -> BareMetalCore:
    """The core an ELF was built for (from its e_machine), to pick nm/size and QEMU."""
    machine = machine_for_elf(elf)
    return next(c for c in CORES.values() if c.machine is machine)


def copy_runtime(project: Path, names: tuple[str, ...] | list[str], module_name: str = DEFAULT_MODULE) -> list[str]:
    """Copy runtime_c/<name> files flat into `project`; return their file names there. The C
    files call the model by module_name's names (codegen/module_name.py)."""
    out = []
    for name in names:
        dst = project / Path(name).name
        if module_name != DEFAULT_MODULE and dst.suffix in (".c", ".h"):
            dst.write_text(rename((RUNTIME_DIR / name).read_text(), module_name))
        else:
            shutil.copyfile(RUNTIME_DIR / name, dst)
        out.append(dst.name)
    return out


def build_firmware(core: BareMetalCore, project: Path, sources: list[str], include_dirs: list[str],
                   cflags: list[str], elf_name: str = "model.elf",
                   extra_ldflags: list[str] | tuple[str, ...] = ()) -> Path:
    """Compile and link `sources` (relative to `project`, which holds the core's linker script)
    into project/<elf_name> and its .map; BuildError with the tool's stderr on failure."""
    elf = project / elf_name
    elf.unlink(missing_ok=True)  # a failed build must not leave a stale ELF
    core.toolchain.link(project, sources, include_dirs, list(cflags), Path(core.linker_script).name, elf,
                        core.freestanding, extra_ldflags)
    return elf
