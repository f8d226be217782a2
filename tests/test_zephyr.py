"""Zephyr apps for both boards: written, structurally valid, placed as the budget dictates,
and oversized models refused before anything is left on disk.

Zephyr is not installable here, so "valid" means what zephyr_check can establish: CMake
lists naming real files, CONFIG_X=value lines, overlays accepted by cpp + dtc, and model C
that cross-compiles -Werror with each board's compiler and flags. The apps set only what
differs from the boards' own defaults (their defconfigs and devicetrees, read in the Zephyr
tree): no board .conf, and an overlay only where the arena needs a memory region.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import boards
from mamba_tvm.driver import build
from mamba_tvm.errors import BudgetError
from mamba_tvm.project.budget import check_budget, flash_limit
from mamba_tvm.project.zephyr import board_file_stem, write_zephyr_app
from mamba_tvm.project.zephyr_check import check_zephyr_app

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "mamba_tvm" / "data" / "mambalite_kws10.npz"
H7, S3 = "zephyr/nucleo_h743zi", "zephyr/esp32s3_devkitc"
TARGETS = (H7, S3)
KB = 1024


@pytest.fixture(scope="module")
def apps(tmp_path_factory):
    """One real build per Zephyr target (a few seconds each): target -> JSON report."""
    out = tmp_path_factory.mktemp("zephyr")
    return {t: build(target=t, model=MODEL, out=out / t.split("/")[1]) for t in TARGETS}


def _board(target):
    return boards.targets()[target]


def _app(report) -> Path:
    return Path(report["zephyr_app"])


def _copy_app(report, tmp_path) -> Path:
    return Path(shutil.copytree(_app(report), tmp_path / "app"))


@pytest.mark.parametrize("target", TARGETS)
def test_app_layout(apps, target):
    app = _app(apps[target])
    for name in ("CMakeLists.txt", "prj.conf", "README.md", "src/main.c", "src/sample_input.h",
                 "model/model.c", "model/model.h"):
        assert (app / name).is_file(), name
    assert not (app / "boards").exists()  # console and RAM nodes are the board's own choices
    model_dir = Path(apps[target]["out_dir"]) / "model"
    for src in model_dir.glob("*.[ch]"):  # the model C is copied unchanged
        assert (app / "model" / src.name).read_bytes() == src.read_bytes()
    assert "zephyr/" not in (app / "model" / "model.c").read_text()
    readme = (app / "README.md").read_text()
    assert f"west build -b {_board(target).zephyr_board} ." in readme and "west flash" in readme


def test_board_file_names_follow_hwmv2():
    assert board_file_stem(_board(H7)) == "nucleo_h743zi"
    assert board_file_stem(_board(S3)) == "esp32s3_devkitc_esp32s3_procpu"


@pytest.mark.parametrize("target", TARGETS)
def test_validator_passes(apps, target):
    assert check_zephyr_app(_app(apps[target]), _board(target)) == []


@pytest.mark.parametrize("target", TARGETS)
def test_prj_conf(apps, target):
    """A full C library (picolibc by default: expf), the FPU, and a main stack that holds the model's
    stack + the printk margin, never below the SoC's default; nothing the board's defconfig sets."""
    board = _board(target)
    conf = dict(line.split("=", 1) for line in (_app(apps[target]) / "prj.conf").read_text().splitlines()
                if line.startswith("CONFIG_"))
    assert conf["CONFIG_FPU"] == "y" and conf["CONFIG_REQUIRES_FULL_LIBC"] == "y"
    assert "CONFIG_NEWLIB_LIBC" not in conf  # the Zephyr SDK's toolchains default to picolibc
    for board_default in ("CONFIG_SERIAL", "CONFIG_CONSOLE", "CONFIG_UART_CONSOLE", "CONFIG_PRINTK",
                          "CONFIG_FP_HARDABI"):
        assert board_default not in conf, board_default
    stack = int(conf.get("CONFIG_MAIN_STACK_SIZE", board.zephyr_main_stack_default))
    assert stack >= apps[target]["stack_bytes"] + 1024 and stack >= board.zephyr_main_stack_default
    if "CONFIG_MAIN_STACK_SIZE" in conf:
        assert stack > board.zephyr_main_stack_default  # set only when the default is too small


def test_s3_stack_measured_with_the_lx7_compiler(apps):
    """The S3's stack figure comes from clang-22 for the LX7 with its FPU (not an LX106 soft-float
    build), and the SoC's 4096 B default main stack is kept."""
    r, board = apps[S3], _board(S3)
    assert board.cc == "clang-22" and "+fp" in board.target_features and "+mul32high" in board.target_features
    assert "clang-22 -fstack-usage" in (_app(r) / "prj.conf").read_text()
    conf = (_app(r) / "prj.conf").read_text()
    assert board.zephyr_main_stack_default == 4096 and "\nCONFIG_MAIN_STACK_SIZE=" not in conf
    assert 0 < r["stack_bytes"] < 1024


def test_placement_follows_the_numbers(apps):
    r = apps[H7]
    need = r["arena_bytes"] + r["stack_bytes"] + r.get("state_bytes", 0)
    assert r["placement"] == ("DTCM" if need <= 128 * KB else "AXI_SRAM")
    app = _app(r)
    cmake, readme = (app / "CMakeLists.txt").read_text(), (app / "README.md").read_text()
    if r["placement"] == "DTCM":  # nucleo_h743zi.dts already chooses zephyr,dtcm = &dtcm
        assert '.dtcm_bss' in cmake and "already chooses `&dtcm` as `zephyr,dtcm`" in readme
    else:
        assert '.bss.mamba_arena' in cmake and "already chooses `&sram0` as `zephyr,sram`" in readme
    assert "not in DTCM" in readme or r["placement"] != "DTCM"  # main's stack is in zephyr,sram
    assert apps[S3]["placement"] == "SRAM1"  # the S3's first (and default) RAM region


@pytest.mark.parametrize("region,expect,overlay", [
    ("DTCM", ['section(\\".dtcm_bss\\")'], False),
    ("AXI_SRAM", ['section(\\".bss.mamba_arena\\")'], False),
    ("SRAM4", ['section(\\"SRAM4\\")', 'zephyr,memory-region = "SRAM4";'], True),
])
def test_every_h7_region_generates_a_valid_app(apps, tmp_path, region, expect, overlay):
    """Whichever region the numbers pick, the app places the arena there (checked in the object file);
    only a region the board's devicetree does not choose gets an overlay."""
    r, board = apps[H7], _board(H7)
    sizes = {k: r[k] for k in ("arena_bytes", "stack_bytes", "weights_bytes")}
    app = write_zephyr_app(tmp_path, board, Path(r["out_dir"]) / "model", np.zeros(4000, np.float32),
                           {**sizes, "placement": region})
    overlay_file = app / "boards" / "nucleo_h743zi.overlay"
    assert overlay_file.is_file() == overlay
    text = (app / "CMakeLists.txt").read_text() + (overlay_file.read_text() if overlay else "")
    assert all(e in text for e in expect), text
    assert "zephyr,console" not in text and "current-speed" not in text  # board defaults, not repeated
    assert check_zephyr_app(app, board) == []  # includes: the arena symbol lands in that section


STREAM_MODEL_H = """#ifndef TVMGEN_DEFAULT_H_
#define TVMGEN_DEFAULT_H_
#include <stdint.h>
#define TVMGEN_DEFAULT_OUTPUT_ELEMS 10
#define TVMGEN_DEFAULT_STREAM 1
#define TVMGEN_DEFAULT_FRAME_ELEMS 40
struct tvmgen_default_state { float h[64]; int32_t steps; };
struct tvmgen_default_outputs { float* output; };
void tvmgen_default_init(struct tvmgen_default_state* state);
int32_t tvmgen_default_step(const float* frame, struct tvmgen_default_state* state);
int32_t tvmgen_default_finish(struct tvmgen_default_state* state, struct tvmgen_default_outputs* outputs);
#endif
"""


def test_main_c_also_drives_the_streaming_api(apps, tmp_path):
    from mamba_tvm.project.zephyr_check import check_main_c

    app = _copy_app(apps[H7], tmp_path)
    (app / "model" / "model.h").write_text(STREAM_MODEL_H)
    assert check_main_c(app, _board(H7), []) == []


# ---- the RPC app (--app rpc): the model served over the console UART ------------------------

RPC_C = ROOT / "runtime_c" / "rpc"
RPC_APP_SOURCES = ("rpc/rpc_model.c", "rpc/rpc_server.c", "rpc/rpc_frame.c", "rpc/transport_zephyr_uart.c")


@pytest.fixture(scope="module")
def rpc_apps(apps, tmp_path_factory):
    """target -> RPC app dir: the H7's through the driver (report key, shapes from the compiled
    model), the S3's from the S3 build's model sources (shapes from the sample and model.h)."""
    out = tmp_path_factory.mktemp("zephyr_rpc")
    h7 = build(target=H7, model=MODEL, out=out / "h7", app="rpc")
    assert h7["zephyr_app_kind"] == "rpc" and apps[H7]["zephyr_app_kind"] == "run"
    r = apps[S3]
    sizes = {k: r[k] for k in ("arena_bytes", "stack_bytes", "weights_bytes", "state_bytes", "placement")}
    s3 = write_zephyr_app(out / "s3", _board(S3), Path(r["out_dir"]) / "model", np.zeros((1, 100, 40), np.float32),
                          sizes, app="rpc")
    return {H7: _app(h7), S3: s3}


@pytest.mark.parametrize("target", TARGETS)
def test_rpc_app_validates(rpc_apps, target):
    """Same structural checks as the run-once app; main.c and rpc/*.c compiled -Werror with the
    board's compiler against the stub Zephyr headers, and the profiling hooks defined."""
    app = rpc_apps[target]
    assert check_zephyr_app(app, _board(target)) == []
    assert not (app / "src" / "sample_input.h").exists()  # the host sends the inputs


@pytest.mark.parametrize("target", TARGETS)
def test_rpc_app_lists_rpc_sources_and_profiles(rpc_apps, target):
    from mamba_tvm.project.zephyr_check import check_cmake, parse_cmake

    app = rpc_apps[target]
    cmds = parse_cmake((app / "CMakeLists.txt").read_text())
    sources = [a for name, args in cmds if name == "target_sources" for a in args]
    assert "src/main.c" in sources and all(s in sources for s in RPC_APP_SOURCES), sources
    assert "rpc" in [a for name, args in cmds if name == "target_include_directories" for a in args]
    problems, defines = check_cmake(app)
    assert problems == [] and "-DTVMGEN_DEFAULT_PROFILE" in defines
    for name in ("rpc_model.c", "rpc_server.c", "rpc_frame.c", "transport_zephyr_uart.c", "rpc_model.h",
                 "rpc_server.h", "rpc_frame.h", "rpc_transport.h"):  # the portable sources, unchanged
        assert (app / "rpc" / name).read_bytes() == (RPC_C / name).read_bytes(), name
    main = (app / "src" / "main.c").read_text()
    assert main.endswith((RPC_C / "main_rpc_zephyr.c").read_text())
    assert "k_cycle_get_32()" in main and "sys_clock_hw_cycles_per_sec()" in main and "RPC_UNIT_CYCLES" in main
    assert "printk(" not in main  # the console UART is the RPC channel
    conf = dict(line.split("=", 1) for line in (app / "prj.conf").read_text().splitlines()
                if line.startswith("CONFIG_"))
    assert "CONFIG_SERIAL" not in conf  # the board's defconfig enables the UART driver
    assert all(conf[k] == "n" for k in ("CONFIG_PRINTK", "CONFIG_UART_CONSOLE", "CONFIG_LOG", "CONFIG_BOOT_BANNER"))
    assert not (app / "boards").exists()  # the board's own zephyr,console is the RPC channel
    readme = (app / "README.md").read_text()
    assert f"--target {target}" in readme and "Not verified on hardware" in readme and "CONFIG_PRINTK=n" in readme


def test_rpc_model_info_from_compiled_model_and_from_sample_agree(rpc_apps):
    h7, s3 = ((rpc_apps[t] / "rpc" / "rpc_model_info.h").read_text() for t in TARGETS)
    assert h7 == s3 and '"mambalite_kws10"' in h7 and "{1u, 100u, 40u}" in h7 and "{1u, 10u}" in h7


def test_stream_rpc_app_validates(apps, built, tmp_path):
    """A streaming model (init/step/finish): rpc_model.c feeds the T frames; state in the arena's region."""
    b = built("kws10", mode="stream")
    assert "TVMGEN_DEFAULT_STREAM" in (b.model_dir / "model.h").read_text()
    r = apps[H7]
    sizes = {"arena_bytes": b.compiled.arena_bytes, "weights_bytes": b.compiled.weights_bytes,
             "state_bytes": b.compiled.state_bytes, "stack_bytes": r["stack_bytes"], "placement": "SRAM4"}
    app = write_zephyr_app(tmp_path, _board(H7), b.model_dir, b.spec.sample_input, sizes, app="rpc",
                           compiled=b.compiled, model_name=b.spec.name)
    assert check_zephyr_app(app, _board(H7)) == []
    assert "{1u, 100u, 40u}" in (app / "rpc" / "rpc_model_info.h").read_text()


RPC_FAULTS = {
    "profiling hooks missing": (lambda a: _replace(a / "rpc" / "rpc_model.c", "#ifdef TVMGEN_DEFAULT_PROFILE",
                                                   "#ifdef TVMGEN_DEFAULT_PROFILE_OFF"),
                                "tvmgen_default_profile_begin"),
    "rpc source warning": (lambda a: _replace(a / "rpc" / "transport_zephyr_uart.c", "static int zephyr_uart_read(",
                                              "static int unused_fn(void) { return 0; }\nstatic int zephyr_uart_read("),
                           "rpc/transport_zephyr_uart.c"),
    "console not chosen": (lambda a: _replace(a / "rpc" / "transport_zephyr_uart.c", "DT_CHOSEN(zephyr_console)",
                                              "DT_CHOSEN(zephyr_shell_uart)"), "zephyr_shell_uart"),
}


@pytest.mark.parametrize("fault", sorted(RPC_FAULTS))
def test_validator_catches_rpc_app_faults(rpc_apps, tmp_path, fault):
    inject, expect = RPC_FAULTS[fault]
    app = Path(shutil.copytree(rpc_apps[S3], tmp_path / "app"))
    inject(app)
    problems = check_zephyr_app(app, _board(S3))
    assert problems and any(expect in p for p in problems), problems


def test_rpc_app_refused_for_qemu():
    """QEMU targets have `python -m mamba_tvm.profile`, which builds and serves the RPC firmware."""
    from mamba_tvm.errors import CompileError

    with pytest.raises(CompileError, match="mamba_tvm.profile"):
        build(target="qemu/mps2_an500", model=MODEL, app="rpc")
    proc = subprocess.run([sys.executable, "-m", "mamba_tvm.build", "--target", "qemu/mps2_an500", "--app", "rpc"],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and proc.stdout == ""
    assert len(lines) == 1 and lines[0].startswith("error: --app") and "mamba_tvm.profile" in lines[0], proc.stderr


def _replace(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


FAULTS = {
    "bad prj.conf line": (lambda a: _replace(a / "prj.conf", "CONFIG_FPU=y", "CONFIG_FPU = y"), "prj.conf:"),
    "missing CMake source": (lambda a: _replace(a / "CMakeLists.txt", "src/main.c", "src/main.c src/nope.c"),
                             "src/nope.c"),
    "overlay syntax error": (lambda a: _replace(next((a / "boards").glob("*.overlay")), "};", "}"), "dtc"),
    "misnamed board overlay": (lambda a: next((a / "boards").glob("*.overlay")).rename(
        a / "boards" / "esp32s3_devkitc_procpu.overlay"), "Zephyr reads only boards/esp32s3_devkitc_esp32s3_procpu"),
    "memory region overlay missing": (lambda a: next((a / "boards").glob("*.overlay")).unlink(),
                                      'zephyr,memory-region "SRAM2"'),
    "model C warning": (lambda a: _replace(a / "model" / "model.c", "int32_t tvmgen_default_run(",
                                           "static int unused_fn(void) { return 0; }\nint32_t tvmgen_default_run("),
                        "model/model.c"),
}


@pytest.fixture(scope="module")
def s3_sram2_app(apps, tmp_path_factory):
    """An S3 app with the arena in SRAM2 (not the board's zephyr,sram): the case that needs an overlay."""
    r = apps[S3]
    sizes = {k: r[k] for k in ("arena_bytes", "stack_bytes", "weights_bytes", "state_bytes")}
    app = write_zephyr_app(tmp_path_factory.mktemp("s3_sram2"), _board(S3), Path(r["out_dir"]) / "model",
                           np.zeros((1, 100, 40), np.float32), {**sizes, "placement": "SRAM2"})
    assert 'zephyr,memory-region = "SRAM2"' in (app / "boards" / "esp32s3_devkitc_esp32s3_procpu.overlay").read_text()
    assert check_zephyr_app(app, _board(S3)) == []
    return app


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_validator_catches_injected_faults(apps, s3_sram2_app, tmp_path, fault):
    inject, expect = FAULTS[fault]
    on_s3 = "overlay" in fault
    app = Path(shutil.copytree(s3_sram2_app, tmp_path / "app")) if on_s3 else _copy_app(apps[H7], tmp_path)
    inject(app)
    problems = check_zephyr_app(app, _board(S3 if on_s3 else H7))
    assert problems and any(expect in p for p in problems), problems


def test_check_budget_picks_fastest_region_that_fits():
    h7 = _board(H7)
    assert check_budget(h7, 100_000, 216).region == "DTCM"
    assert check_budget(h7, 128 * KB - 216, 216).region == "DTCM"  # exactly full
    assert check_budget(h7, 128 * KB - 215, 216).region == "AXI_SRAM"
    assert check_budget(h7, 168_000, 216, weights_bytes=143_656).region == "AXI_SRAM"
    assert check_budget(h7, 100_000, 216, state_bytes=40 * KB).region == "AXI_SRAM"  # state counts too
    qemu = boards.targets()["qemu/mps2_an500"]
    assert check_budget(qemu, 168_000, 216, weights_bytes=143_656, platform="qemu").region == "SSRAM23"


def test_check_budget_refusals_name_sizes_and_limits():
    h7, s3 = _board(H7), _board(S3)
    with pytest.raises(BudgetError) as exc:
        check_budget(h7, 600_000, 216)
    msg = str(exc.value)
    assert "600000" in msg and "216" in msg and "AXI_SRAM 524288" in msg and "\n" not in msg
    with pytest.raises(BudgetError) as exc:
        check_budget(h7, 1000, 216, weights_bytes=3 * 1024 * KB)
    assert "3145728" in str(exc.value) and "2097152" in str(exc.value) and "int8" in str(exc.value)
    # Zephyr's default ESP32-S3 partition table leaves the app 1344 KB of the 8 MB.
    assert flash_limit(s3, "zephyr")[0] == 1344 * KB
    with pytest.raises(BudgetError):
        check_budget(s3, 1000, 216, weights_bytes=2 * 1024 * KB, platform="zephyr")


def _tinymamba_npz(path: Path, d_model: int, n_features=40, d_state=16, d_conv=4, n_classes=10) -> int:
    """Random TinyMamba checkpoint (single block); returns its weight bytes."""
    rng = np.random.default_rng(0)
    d_inner, dt_rank = 2 * d_model, -(-d_model // 16)

    def w(*shape):
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    weights = {
        "linear_in.weight": w(d_model, n_features), "linear_in.bias": w(d_model),
        "mamba.A_log": np.log(np.tile(np.arange(1, d_state + 1, dtype=np.float32), (d_inner, 1))),
        "mamba.D": np.ones(d_inner, np.float32), "mamba.in_proj.weight": w(2 * d_inner, d_model),
        "mamba.conv1d.weight": w(d_inner, 1, d_conv), "mamba.conv1d.bias": w(d_inner),
        "mamba.x_proj.weight": w(dt_rank + 2 * d_state, d_inner), "mamba.dt_proj.weight": w(d_inner, dt_rank),
        "mamba.dt_proj.bias": w(d_inner), "mamba.out_proj.weight": w(d_model, d_inner),
        "classifier.weight": w(n_classes, d_model), "classifier.bias": w(n_classes),
    }
    np.savez(path, sample_input=w(1, 100, n_features), **weights)
    return sum(v.nbytes for v in weights.values())


def test_oversized_model_refused_by_cli(tmp_path):
    ckpt = tmp_path / "big.npz"
    weight_bytes = _tinymamba_npz(ckpt, d_model=512)
    out = tmp_path / "out" / "s3"
    env = {**os.environ, "PYTHONWARNINGS": "ignore::FutureWarning"}  # torch deprecation noise, not ours
    proc = subprocess.run([sys.executable, "-m", "mamba_tvm.build", "--target", S3, "--model", str(ckpt),
                           "--out", str(out)], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    assert str(weight_bytes) in lines[0] and str(1344 * KB) in lines[0]  # sizes and the limit
    assert proc.stdout == ""
    assert not out.exists() and not (tmp_path / "out").exists()  # refused before anything was written


def test_ram_refusal_after_planning_leaves_nothing(apps, tmp_path, monkeypatch):
    """The arena is known only after planning: refused before any C is written; staging removed.
    A copy of the S3 whose RAM is 1 KB stands in for a model too big for the real one."""
    import dataclasses

    import mamba_tvm.driver as driver

    s3 = _board(S3)
    tiny = dataclasses.replace(s3, memories=tuple(dataclasses.replace(m, size=1024) if m.kind == "ram" else m
                                                  for m in s3.memories))
    monkeypatch.setattr(driver, "resolve_target", lambda target: ("zephyr", tiny))
    out = tmp_path / "s3"
    with pytest.raises(BudgetError) as exc:
        build(target=S3, model=MODEL, out=out)
    msg = str(exc.value)
    assert f"arena {apps[S3]['arena_bytes']} B" in msg and "SRAM1 1024 B" in msg and "\n" not in msg
    assert list(tmp_path.iterdir()) == []
