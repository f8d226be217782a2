"""Zephyr application for a board: the unchanged model C plus thin glue, ready for `west build`.

Why: real boards run Zephyr, and the model's arena should sit in the fastest RAM that
holds it. The model C stays Zephyr-free; placement is applied from CMake through the
TVMGEN_DEFAULT_*_SECTION macros that model.c leaves empty by default. The app sets only
what differs from the board's own defaults (its defconfig and devicetree, checked against
the Zephyr tree): a board overlay is written only when the arena goes to a RAM node the
board does not already choose, and no board .conf at all. No Zephyr tree is needed to
write the app; zephyr_check.py validates it structurally.

Two kinds of app: "run" (the default) runs the model once on a baked-in sample and prints
the logits; "rpc" serves the RPC protocol (docs/rpc.md) on the console UART, so that
`python -m mamba_tvm.profile --port ...` can send inputs and time every kernel call.
"""
from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..codegen.module_name import DEFAULT as DEFAULT_MODULE, rename
from ..errors import BuildError
from .baremetal import APP_ARENA, sample_input_header
from .cores import RUNTIME_DIR, copy_runtime
from .budget import check_budget
from .rpc_firmware import INFO_HEADER, PROFILE_DEFINE, RPC_DIR, info_header, model_info_header

APP_DIR = "zephyr_app"
APP_KINDS = ("run", "rpc")
#: The RPC app: runtime_c/rpc/main_rpc_zephyr.c becomes src/main.c; these go to rpc/ unchanged.
RPC_MAIN = "main_rpc_zephyr.c"
RPC_APP_SOURCES = ("rpc_model.c", "rpc_server.c", "rpc_frame.c", "transport_zephyr_uart.c")
RPC_APP_HEADERS = ("rpc_model.h", "rpc_server.h", "rpc_frame.h", "rpc_transport.h")
#: Margin over the model's measured stack for main()'s own frame and printk/cbprintf with %f.
PRINTK_STACK_MARGIN = 2048
#: kernel/Kconfig's MAIN_STACK_SIZE default, where the board file names no SoC default.
KERNEL_MAIN_STACK_DEFAULT = 1024
WEIGHTS_SECTION = ".rodata.mamba_weights"  # matched by Zephyr's `*(".rodata.*")`: stays in flash


@dataclass(frozen=True)
class ZephyrRegion:
    """How a board-file RAM region is reached from a Zephyr app."""

    label: str  # devicetree node label
    section: str  # input section for the arena
    chosen: str | None = None  # the board's devicetree already chooses the node as this
    memory_region: str | None = None  # set when the overlay must make the node a `zephyr,memory-region`


# The default RAM (`zephyr,sram`) takes plain .bss; the H7's DTCM has its own `.dtcm_bss`
# (zeroed at boot; <zephyr/linker/section_tags.h> __dtcm_bss_section). The boards' own
# devicetrees already choose these nodes (boards/st/nucleo_h743zi/nucleo_h743zi.dts:
# zephyr,sram = &sram0, zephyr,dtcm = &dtcm; boards/espressif/esp32s3_devkitc/
# esp32s3_devkitc_esp32s3_procpu_common.dtsi: zephyr,sram = &sram1), and their console
# (usart3, uart0 at 115200 baud), so the app repeats none of it. Other regions go through
# `zephyr,memory-region` (NOLOAD, not zeroed: fine for the arena, which the model always
# writes before reading), which needs an overlay.
REGIONS = {
    ("nucleo_h743zi", "DTCM"): ZephyrRegion("dtcm", ".dtcm_bss", chosen="zephyr,dtcm"),
    ("nucleo_h743zi", "AXI_SRAM"): ZephyrRegion("sram0", ".bss.mamba_arena", chosen="zephyr,sram"),
    ("esp32s3_devkitc", "SRAM1"): ZephyrRegion("sram1", ".bss.mamba_arena", chosen="zephyr,sram"),
}


def zephyr_region(board, region: str) -> ZephyrRegion:
    known = REGIONS.get((board.name, region))
    return known or ZephyrRegion(region.lower(), region, memory_region=region)


def board_file_stem(board) -> str:
    """`boards/<stem>.conf|.overlay`: the board target with `/` -> `_` (Zephyr >= 3.7 HWMv2)."""
    if not board.zephyr_board:
        raise BuildError(f"board {board.name} has no zephyr_board in its board file")
    return board.zephyr_board.replace("/", "_")


def main_stack_default(board) -> int:
    """CONFIG_MAIN_STACK_SIZE when the app sets none: the SoC's default, else the kernel's."""
    return board.zephyr_main_stack_default or KERNEL_MAIN_STACK_DEFAULT


def main_stack_size(board, stack_bytes: int) -> int:
    """The main stack the app runs with: the model's stack + the margin, in 512 B steps, and
    never less than the board's default."""
    return max(main_stack_default(board), -(-(stack_bytes + PRINTK_STACK_MARGIN) // 512) * 512)


def _stack_conf(board, stack_bytes: int, what: str) -> list[str]:
    """prj.conf lines for the main stack: a setting only when the default is too small."""
    need, default = -(-(stack_bytes + PRINTK_STACK_MARGIN) // 512) * 512, main_stack_default(board)
    why = (f"# Main stack: model {stack_bytes} B ({board.cc} -fstack-usage with the board's flags) + "
           f"{PRINTK_STACK_MARGIN} B for {what} = {need} B")
    if need <= default:
        return [why + f";", f"# the board's default CONFIG_MAIN_STACK_SIZE ({default} B) holds it."]
    return [why + ", above the board's default " + f"({default} B).", f"CONFIG_MAIN_STACK_SIZE={need}"]


def _section_attr(section: str) -> str:
    return f'__attribute__((section("{section}")))'


def _cmake_define(name: str, value: str) -> str:
    return '"' + f"{name}={value}".replace("\\", "\\\\").replace('"', '\\"') + '"'


def _cmakelists(board, model_sources: list[str], region: str, zr: ZephyrRegion, report: dict,
                app: str = "run") -> str:
    if app == "rpc":
        what = "the model served over the console UART by the RPC server (docs/rpc.md)"
        sources = " ".join(["src/main.c", *(f"rpc/{c}" for c in RPC_APP_SOURCES), *model_sources])
        includes = "src model rpc"
        profile = f"""
# Profiling hooks compiled in (model.c calls tvmgen_default_profile_begin/end around every kernel
# call, rpc/rpc_model.c times them), so the host's PROFILE command works.
target_compile_definitions(app PRIVATE {PROFILE_DEFINE[2:]})
"""
    else:
        what, sources, includes, profile = "the model run once on a sample input", " ".join(
            ["src/main.c"] + model_sources), "src model", ""
    return f"""# Generated by mamba_tvm for zephyr/{board.name}: {what}.
#   west build -b {board.zephyr_board} .      then      west flash
cmake_minimum_required(VERSION 3.20.0)
find_package(Zephyr REQUIRED HINTS $ENV{{ZEPHYR_BASE}})
project(mamba_model)

target_sources(app PRIVATE {sources})
target_include_directories(app PRIVATE {includes})

# Placement: weights ({report['weights_bytes']} B) stay const in flash, grouped in {WEIGHTS_SECTION};
# the arena ({report['arena_bytes']} B) and the recurrent state go to {region} (devicetree node &{zr.label}).
target_compile_definitions(app PRIVATE
  {_cmake_define("TVMGEN_DEFAULT_WEIGHTS_SECTION", _section_attr(WEIGHTS_SECTION))}
  {_cmake_define("TVMGEN_DEFAULT_ARENA_SECTION", _section_attr(zr.section))}
  {_cmake_define("TVMGEN_DEFAULT_STATE_SECTION", _section_attr(zr.section))}
)
{profile}"""


_LIBC_CONF = ["# The model calls expf and log1pf: a full C library. Zephyr's default is picolibc (since 3.5),",
              "# which has them; this only keeps the minimal libc (no libm) from being picked.",
              "CONFIG_REQUIRES_FULL_LIBC=y",
              "CONFIG_FPU=y"]


def _prj_conf(board, report: dict, app: str = "run") -> str:
    if app == "rpc":
        return "\n".join([
            f"# Generated by mamba_tvm for zephyr/{board.name}: the RPC server app. Only what differs",
            "# from the board's defaults (its defconfig enables the UART driver and console).",
            *_LIBC_CONF,
            *_stack_conf(board, report["stack_bytes"], "main() and the RPC server"),
            "# The console UART (the board's zephyr,console) is the RPC channel. The serial driver",
            "# stays (transport_zephyr_uart.c polls it with uart_poll_in/uart_poll_out), but nothing",
            "# else may write text to it: no console driver, no printk, no logging, no boot banner.",
            "CONFIG_CONSOLE=n",
            "CONFIG_UART_CONSOLE=n",
            "CONFIG_PRINTK=n",
            "CONFIG_LOG=n",
            "CONFIG_BOOT_BANNER=n",
            ""])
    return "\n".join([
        f"# Generated by mamba_tvm for zephyr/{board.name}. Only what differs from the board's",
        "# defaults (its defconfig enables the UART console; printk is on by default).",
        *_LIBC_CONF,
        *_stack_conf(board, report["stack_bytes"], "main() and printk"),
        "# printk(\"%f\") for the logits (the hex bits are printed too, for bit-exact checks).",
        "CONFIG_CBPRINTF_FP_SUPPORT=y",
        ""])


def _overlay(board, region: str, zr: ZephyrRegion, arena_bytes: int) -> str | None:
    """The board overlay, or None when the board's devicetree already has everything (the
    console and the chosen RAM nodes): only a region that is not chosen needs one."""
    if not zr.memory_region:
        return None
    return "\n".join([
        f"/* Generated by mamba_tvm for {board.zephyr_board}: arena ({arena_bytes} B) in {region}",
        f" * (section {zr.section} -> &{zr.label}); weights stay in flash. The node becomes a",
        " * zephyr,memory-region so that the linker script gets an output section for it. */", "",
        f"&{zr.label} {{", '\tcompatible = "zephyr,memory-region", "mmio-sram";',
        f'\tzephyr,memory-region = "{zr.memory_region}";', '\tstatus = "okay";', "};", ""])


def _placement_note(board, region: str, zr: ZephyrRegion) -> str:
    """How the arena gets to its region, for the READMEs."""
    if zr.chosen:
        return (f"the board's devicetree already chooses `&{zr.label}` as `{zr.chosen}`, so the app "
                "needs no overlay")
    return f"`boards/{board_file_stem(board)}.overlay` makes `&{zr.label}` a `zephyr,memory-region`"


def _main_c(board, region: str) -> str:
    return f"""/* Generated by mamba_tvm for zephyr/{board.name}: runs the model once on the baked-in
 * sample input and prints, over the console UART:
 *   LOGIT <i> <8 hex digits: IEEE-754 bits> <value>   (one per output)
 *   CYCLES <k_cycle_get_32 delta: run, or init + every step + finish when streaming>
 *   CYCLES_PER_SEC <its rate>  US <microseconds>  CLOCK_HZ <CPU clock, from the board file>
 *   ARENA_REGION <name>  RC <rc>  DONE
 * k_cycle_get_32 counts CPU cycles on both boards: SysTick on the Cortex-M7 (480 MHz on the
 * H7), the CCOUNT register on the ESP32-S3's Xtensa LX7 (240 MHz); US is comparable. */
#include <stdint.h>
#include <string.h>

#include <zephyr/kernel.h>
#include <zephyr/sys/printk.h>

#include "model.h"
#include "app_arena.h"
#include "sample_input.h"

#define MAMBA_CLOCK_HZ {board.clock_hz}u
#define MAMBA_ARENA_REGION "{region}"

#ifdef TVMGEN_DEFAULT_STREAM
/* A streaming model (init/step/finish): the sample is T whole feature frames. */
#define APP_INPUT_SIZE SAMPLE_INPUT_COUNT
typedef char sample_input_is_whole_frames[(SAMPLE_INPUT_COUNT % TVMGEN_DEFAULT_FRAME_ELEMS == 0) ? 1 : -1];
#ifndef TVMGEN_DEFAULT_STATE_SECTION
#define TVMGEN_DEFAULT_STATE_SECTION
#endif
static struct tvmgen_default_state g_state TVMGEN_DEFAULT_STATE_SECTION;

static int32_t run_model(float *input, struct tvmgen_default_outputs *outputs)
{{
\tuint32_t t;
\tint32_t rc;

\ttvmgen_default_init(&g_state);
\tfor (t = 0u; t < (uint32_t)(SAMPLE_INPUT_COUNT / TVMGEN_DEFAULT_FRAME_ELEMS); t++) {{
\t\trc = tvmgen_default_step(input + t * TVMGEN_DEFAULT_FRAME_ELEMS, &g_state WORKSPACE_POOLS);
\t\tif (rc != 0) {{
\t\t\treturn rc;
\t\t}}
\t}}
\treturn tvmgen_default_finish(&g_state, outputs WORKSPACE_POOLS);
}}
#else
/* sample_input.h must hold exactly one model input. */
#define APP_INPUT_SIZE TVMGEN_DEFAULT_INPUT_ELEMS
typedef char sample_input_size_matches_model[(SAMPLE_INPUT_COUNT == TVMGEN_DEFAULT_INPUT_ELEMS) ? 1 : -1];

static int32_t run_model(float *input, struct tvmgen_default_outputs *outputs)
{{
\tstruct tvmgen_default_inputs inputs = {{.input = input}};

\treturn tvmgen_default_run(&inputs, outputs WORKSPACE_POOLS);
}}
#endif

static float g_input[APP_INPUT_SIZE];
static float g_output[TVMGEN_DEFAULT_OUTPUT_ELEMS];

int main(void)
{{
\tstruct tvmgen_default_outputs outputs = {{.output = g_output}};
\tunion {{
\t\tfloat f;
\t\tuint32_t u;
\t}} bits;
\tuint32_t i, t0, cycles;
\tint32_t rc;

\tmemcpy(g_input, sample_input, sizeof(g_input));
\tt0 = k_cycle_get_32();
\trc = run_model(g_input, &outputs);
\tcycles = k_cycle_get_32() - t0;

\tfor (i = 0u; i < (uint32_t)TVMGEN_DEFAULT_OUTPUT_ELEMS; i++) {{
\t\tbits.f = g_output[i];
\t\tprintk("LOGIT %u %08x %f\\n", (unsigned int)i, (unsigned int)bits.u, (double)g_output[i]);
\t}}
\tprintk("CYCLES %u\\n", (unsigned int)cycles);
\tprintk("CYCLES_PER_SEC %u\\n", (unsigned int)sys_clock_hw_cycles_per_sec());
\tprintk("US %u\\n", (unsigned int)k_cyc_to_us_floor32(cycles));
\tprintk("CLOCK_HZ %u\\n", (unsigned int)MAMBA_CLOCK_HZ);
\tprintk("ARENA_REGION %s\\n", MAMBA_ARENA_REGION);
\tprintk("RC %d\\n", (int)rc);
\tprintk("DONE\\n");
\treturn 0;
}}
"""


def _readme(board, stem: str, region: str, zr: ZephyrRegion, report: dict) -> str:
    flash_note = {
        "nucleo_h743zi": "A plain `west build` links at 0x08000000 with the whole 2 MB; with MCUboot "
                         "(`--sysbuild`) the image must fit the board's 256 KB slot0 partition.",
        "esp32s3_devkitc": "Zephyr's default partition table gives the app image slot0 = 1344 KB of the "
                           "8 MB flash; mamba_tvm's budget check already refuses weights beyond that. "
                           "Run `west blobs fetch hal_espressif` once before the first build.",
    }.get(board.name, "")
    return f"""# {board.description}: Zephyr app generated by mamba_tvm

Runs the compiled Mamba model once on a baked-in sample input and prints the logits,
the elapsed cycles and the clock over the console UART (115200 baud).

## Build and flash

```sh
export ZEPHYR_BASE=~/zephyrproject/zephyr   # a west workspace, Zephyr >= 3.7
west build -b {board.zephyr_board} .
west flash
```

{flash_note}

Output (one `LOGIT` line per class), then `CYCLES`, `CYCLES_PER_SEC`, `US`, `CLOCK_HZ`,
`ARENA_REGION`, `RC 0`, `DONE`. Compare the logits with `logits` in mamba_tvm's JSON report
(the host build of the same C); expect agreement to ~1e-5 (libm and FMA contraction
differ between the host and the board, so the last bits may not match).

## Layout

| file | what |
|---|---|
| `model/` | the generated model C, unchanged and Zephyr-free (also `plan.json`, the arena plan) |
| `src/main.c`, `src/sample_input.h` | Zephyr glue and the sample input (exact hex floats) |
| `prj.conf` | full C library (for `expf`), FPU, `%f` in printk{_stack_row(board, report)}; console and UART come from the board's defconfig |
{_overlay_row(board, zr)}

{_memory_text(board, region, zr, report)}

## What was checked when this app was generated, and what was not

{_checked_text(board, zr, region)}
"""


def _stack_row(board, report: dict) -> str:
    size = main_stack_size(board, report["stack_bytes"])
    if size == main_stack_default(board):
        return f"; the main stack stays at the board's default {size} B"
    return f", main stack {size} B"


def _overlay_row(board, zr: ZephyrRegion) -> str:
    if zr.memory_region:
        return f"| `boards/{board_file_stem(board)}.overlay` | makes `&{zr.label}`, where the arena goes, a `zephyr,memory-region` |"
    return "| (no board overlay or .conf) | the board's devicetree already chooses the console and the arena's RAM |"


def _memory_text(board, region: str, zr: ZephyrRegion, report: dict) -> str:
    sram = next((z.label for (b, _), z in REGIONS.items() if b == board.name and z.chosen == "zephyr,sram"), None)
    main_stack = main_stack_size(board, report["stack_bytes"])
    if sram == zr.label:
        stack = f"Zephyr puts the main thread's stack ({main_stack} B) in `zephyr,sram`, `&{sram}`: the same region."
    else:
        stack = (f"The budget counts that stack against {region} too, which errs on the safe side: Zephyr puts "
                 f"the main thread's stack ({main_stack} B) in `zephyr,sram`{f' (`&{sram}`)' if sram else ''}, "
                 f"not in {region}.")
    return f"""Memory: arena {report['arena_bytes']} B in **{region}** (section `{zr.section}`, node `&{zr.label}`:
{_placement_note(board, region, zr)}), the fastest RAM region of the board file that holds
arena + stack + state; recurrent state {report.get('state_bytes', 0)} B in the same region
(TVMGEN_DEFAULT_STATE_SECTION); weights {report['weights_bytes']} B are `const` in flash (section
`{WEIGHTS_SECTION}`). Model stack {report['stack_bytes']} B ({board.cc} `-fstack-usage` with the board
file's flags). {stack}"""


def _checked_text(board, zr: ZephyrRegion, region: str) -> str:
    compiler = {
        "esp32s3_devkitc": "Debian's clang-22 and the ESP32-S3's own LX7 ISA options (single-precision FPU, "
                           "MUL32_HIGH, ...: the board file's `target_features`), a stand-in for Espressif's GCC, "
                           "which Zephyr uses and which was not available where this was generated,",
    }.get(board.name, f"{board.cc} and the board file's flags")
    emulated = ""
    if board.emulation:
        emulated = (f" `python -m mamba_tvm.build --target qemu/{board.emulation} --run` runs the same C on the "
                    f"board's emulated stand-in (see mamba_tvm's docs/boards.md for how close it is).")
    overlay = " the overlay passes `cpp` + `dtc`;" if zr.memory_region else ""
    return f"""Checked by `mamba_tvm.project.zephyr_check` (no Zephyr tree involved): the CMake lists
name existing files; every `.conf` line is `CONFIG_X=value`;{overlay} the model C compiles
`-std=c99 -Wall -Wextra -Werror` with {compiler}, and the placement macros above;
`main.c` compiles against stub Zephyr headers (its own C, not Zephyr's API). The same model C
was built for the host and matched the PyTorch reference (`max_abs_err_vs_torch` in the
report).{emulated}

Not verified: `west build` itself (Kconfig symbol names, devicetree bindings, the linker
placing `{zr.section}` in {region}), flashing, and timing on the board."""


def _rpc_main_c(board) -> str:
    return (f"/* Generated by mamba_tvm for zephyr/{board.name}: runtime_c/rpc/{RPC_MAIN}, unchanged. */\n"
            + (RPC_DIR / RPC_MAIN).read_text())


def _rpc_readme(board, stem: str, region: str, zr: ZephyrRegion, report: dict) -> str:
    port = {"nucleo_h743zi": "/dev/ttyACM0", "esp32s3_devkitc": "/dev/ttyUSB0"}.get(board.name, "/dev/ttyACM0")
    where = {"nucleo_h743zi": "USART3, the ST-LINK virtual COM port",
             "esp32s3_devkitc": "UART0, the board's USB-UART bridge"}.get(board.name, "zephyr,console")
    elsewhere = {
        "nucleo_h743zi": "The ST-LINK virtual COM port is the board's only USB serial link; another\n"
                         "UART would need a USB-serial adapter on its pins.",
        "esp32s3_devkitc": "The console could move to the chip's USB Serial/JTAG port (the board's\n"
                           "second USB connector), but that is one more driver and devicetree node, which\n"
                           "cannot be checked here.",
    }.get(board.name, "Another UART would need its own USB-serial link.")
    timer = {"nucleo_h743zi": "SysTick:\nCPU cycles at 480 MHz.",
             "esp32s3_devkitc": "the\nLX7's CCOUNT register: CPU cycles at 240 MHz."}.get(
                 board.name, "the\nkernel's hardware cycle counter.")
    boot_note = {"esp32s3_devkitc": "\nThe ESP32-S3's ROM and second-stage bootloader still print their boot log on\n"
                                    "UART0 before the app starts (outside Zephyr's Kconfig); the host skips those\n"
                                    "bytes and resynchronizes at the next frame delimiter.\n"}.get(board.name, "")
    return f"""# {board.description}: RPC app generated by mamba_tvm

Serves the compiled Mamba model to a host over the console UART
({where}, 115200 baud) with mamba_tvm's RPC protocol (COBS frames
with CRC-16; docs/rpc.md in the mamba_tvm repository): the host writes inputs, runs the model, reads the logits and, because
the model is compiled with `-DTVMGEN_DEFAULT_PROFILE`, reads per-kernel cycle counts.

**Not verified on hardware:** this app is generated and structurally checked without a
Zephyr tree or a board (see the last section).

## Build, flash, profile

```sh
export ZEPHYR_BASE=~/zephyrproject/zephyr   # a west workspace, Zephyr >= 3.7
west build -b {board.zephyr_board} .
west flash
# then, from the mamba_tvm repository, with the same model and options as this build:
python -m mamba_tvm.profile --port {port} --target zephyr/{board.name}
```

The profiler compiles the model itself to learn its kernel names, and refuses a device that
serves another model (different call names or input size). Add `--inputs FILE.npz` to run many
inputs on the board and compare them with PyTorch, `--json PATH` to keep the table.

## Why nothing else is printed

The console UART is the RPC channel, and any other text on it corrupts frames (the host then
has to retry, and a reply may be lost). So the app turns console output off in `prj.conf`:
`CONFIG_CONSOLE=n`, `CONFIG_UART_CONSOLE=n`, `CONFIG_PRINTK=n`, `CONFIG_LOG=n`,
`CONFIG_BOOT_BANNER=n`. `CONFIG_SERIAL=y` keeps the UART driver, which
`rpc/transport_zephyr_uart.c` polls on the devicetree's `zephyr,console` node (set in the
board overlay). The price: Zephyr's fault messages are not printed either; a crashed app
shows as a host that gets no reply ("the device stopped answering"). To debug, build the
run-once app (`python -m mamba_tvm.build --target zephyr/{board.name}`) first.

Why not move the console to another port instead?
{elsewhere}
{boot_note}
## Timing

RUN and PROFILE are timed with `k_cycle_get_32()` at `sys_clock_hw_cycles_per_sec()` Hz,
reported in INFO as unit "cycles", 1 per tick. On this board that counter is {timer}
It is 32 bits wide: one run must take fewer than 2^32 counts. Interrupts are not masked
during a run (the UART is polled, but the kernel's timer interrupt can still land inside one),
and caches and flash wait states count as they are: repeated runs may differ by a few cycles.

## Layout

| file | what |
|---|---|
| `model/` | the generated model C, unchanged and Zephyr-free (also `plan.json`, the arena plan) |
| `src/main.c` | Zephyr glue: fills the RPC target, k_cycle_get_32 timer, serves forever |
| `rpc/` | the portable RPC server (`rpc_server.c`, `rpc_frame.c`), the model glue (`rpc_model.c`: buffers, sequence or streaming run, profiling hooks), `transport_zephyr_uart.c`, and `{INFO_HEADER}` (name and shapes INFO reports) |
| `prj.conf` | full C library (for `expf`), FPU, console output off (the UART driver stays, from the board's defconfig){_stack_row(board, report)} |
{_overlay_row(board, zr)}

{_memory_text(board, region, zr, report)} The RPC server adds its own static buffers (~3.2 KB) and
the input and output tensors in `.bss`.

## What was checked when this app was generated, and what was not

Checked by `mamba_tvm.project.zephyr_check` (no Zephyr tree involved): the CMake lists name
existing files; every `.conf` line is `CONFIG_X=value`;{" the overlay passes `cpp` + `dtc`;" if zr.memory_region else ""}
the model C compiles `-std=c99 -Wall -Wextra -Werror` with the board file's compiler, flags,
placement macros and `-DTVMGEN_DEFAULT_PROFILE`; `src/main.c` and `rpc/*.c` compile with the
same flags against stub Zephyr headers (their own C, not Zephyr's API) and define the
profiling hooks model.c calls. The same server and model glue run in mamba_tvm's tests on
QEMU's Cortex-M7 (over semihosting and an emulated UART) and Xtensa LX7 (over semihosting),
through `python -m mamba_tvm.profile`.

Not verified: `west build` (Kconfig symbols, devicetree, linking), flashing, the UART at real
speed on the board (receive overruns are recovered by the host's retries), and the cycle
counts themselves.
"""


def _rpc_info_header(src_dir: Path, sample_input: np.ndarray, compiled, model_name: str | None) -> str:
    """rpc_model_info.h: from the compiled model when given, else from sample_input's shape and model.h."""
    header = (src_dir / "model.h").read_text()
    if not model_name:
        m = re.search(r"for model '([^'\n]+)'", header)
        model_name = m[1] if m else "model"
    if compiled is not None:
        return model_info_header(compiled, model_name)
    m = re.search(r"#define TVMGEN_DEFAULT_OUTPUT_ELEMS (\d+)", header)
    if not m:
        raise BuildError(f"{src_dir / 'model.h'} has no TVMGEN_DEFAULT_OUTPUT_ELEMS")
    shape = tuple(np.shape(sample_input))
    return info_header(model_name, shape if len(shape) == 3 else (1, *shape), (1, int(m[1])))


def write_zephyr_app(out_dir: Path, board, compiled_sources_dir: Path, sample_input: np.ndarray,
                     report: dict, app: str = "run", compiled=None, model_name: str | None = None) -> Path:
    """Write out_dir/zephyr_app/ for `board` from the model sources; return that directory.

    report needs arena_bytes, stack_bytes, weights_bytes (state_bytes optional); its
    `placement` (a RAM region name) is used when given, else the budget check picks it.
    app: "run" runs sample_input once and prints the logits; "rpc" serves the model over the
    console UART (runtime_c/rpc) with profiling compiled in, and sample_input only gives the
    input shape when `compiled` (the CompiledModel, for the exact shapes) is not passed.
    """
    if app not in APP_KINDS:
        raise BuildError(f"unknown Zephyr app kind '{app}' (known: {', '.join(APP_KINDS)})")
    src_dir = Path(compiled_sources_dir)
    c_files = sorted(p.name for p in src_dir.glob("*.c"))
    if not c_files or not (src_dir / "model.h").is_file():
        raise BuildError(f"no model sources (model.h + *.c) in {src_dir}")
    region = report.get("placement") or check_budget(
        board, report["arena_bytes"], report["stack_bytes"], report.get("state_bytes", 0),
        report["weights_bytes"], platform="zephyr").region
    zr = zephyr_region(board, region)
    stem = board_file_stem(board)

    kind = app
    files = {
        "CMakeLists.txt": _cmakelists(board, [f"model/{c}" for c in c_files], region, zr, report, kind),
        "prj.conf": _prj_conf(board, report, kind),
    }
    overlay = _overlay(board, region, zr, report["arena_bytes"])
    if overlay is not None:
        files[f"boards/{stem}.overlay"] = overlay
    if kind == "rpc":
        files.update({"src/main.c": _rpc_main_c(board),
                      f"rpc/{INFO_HEADER}": _rpc_info_header(src_dir, sample_input, compiled, model_name),
                      "README.md": _rpc_readme(board, stem, region, zr, report)})
    else:
        files.update({"src/main.c": _main_c(board, region),
                      "src/app_arena.h": (RUNTIME_DIR / APP_ARENA).read_text(),
                      "src/sample_input.h": sample_input_header(sample_input),
                      "README.md": _readme(board, stem, region, zr, report)})

    app = Path(out_dir) / APP_DIR
    if app.exists():
        shutil.rmtree(app)
    for sub in ("model", "src", *(("rpc",) if kind == "rpc" else ())):
        (app / sub).mkdir(parents=True)
    for p in sorted(src_dir.iterdir()):
        if p.suffix in (".c", ".h", ".json"):
            shutil.copyfile(p, app / "model" / p.name)
    module_name = compiled.module_name if compiled is not None else DEFAULT_MODULE
    if kind == "rpc":
        copy_runtime(app / "rpc", [f"rpc/{name}" for name in (*RPC_APP_SOURCES, *RPC_APP_HEADERS)], module_name)
    for name, text in files.items():
        (app / name).parent.mkdir(exist_ok=True)
        (app / name).write_text(rename(text, module_name))
    return app
