"""runtime_c/minilibc: the float runtime the LX7 firmware links (no libm exists for it here).

Accuracy is measured on the host against double-precision glibc (minilibc_accuracy.c): every
257th 32-bit input pattern in CI (~16.7 M inputs, a second or two), all 2^32 in the slow test
(`pytest -m slow`, ~6 CPU-minutes; measured: expf 1.023 ulp, logf 0.835, log1pf 0.863).
__divsf3 and sqrtf must equal the host's IEEE division and square root bit for bit. The device computes the same bits
as the host build (a hash over a sample, run on QEMU's LX7), so the host figures hold there.
"""
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import boards
from mamba_tvm.device.qemu import qemu_command
from mamba_tvm.project.cores import XTENSA_LX7, build_firmware, copy_runtime

ROOT = Path(__file__).resolve().parents[1]
MINILIBC = ROOT / "runtime_c" / "minilibc"
ULP_BOUND = 1.5  # documented in mathf.c
DEVICE_STRIDE = 65537  # 65,536 inputs spread over every exponent


@pytest.fixture(scope="module")
def accuracy_exe(tmp_path_factory):
    exe = tmp_path_factory.mktemp("minilibc") / "minilibc_accuracy"
    subprocess.run(["gcc", "-O2", "-std=c99", "-Wall", "-Wextra", "-Werror", "-ffp-contract=off",
                    "-DMINILIBC_PREFIX=mini_", str(ROOT / "tests" / "minilibc_accuracy.c"), str(MINILIBC / "mathf.c"),
                    "-lm", "-o", str(exe)], check=True)
    return exe


def _measure(exe: Path, stride: int, div_pairs: int, timeout: float) -> dict:
    out = subprocess.run([str(exe), str(stride), str(div_pairs)], capture_output=True, text=True, timeout=timeout,
                         check=True).stdout
    ulps = {m[1]: (float(m[2]), int(m[3])) for m in re.finditer(r"^(\w+) max_ulp (\S+) at \w+ inputs (\d+)$", out, re.M)}
    div = re.search(r"^__divsf3 mismatches (\d+) pairs (\d+)$", out, re.M)
    sqrt = re.search(r"^sqrtf mismatches (\d+) inputs (\d+)$", out, re.M)
    return {"ulps": ulps, "div_mismatches": int(div[1]), "div_pairs": int(div[2]), "sqrt_mismatches": int(sqrt[1]),
            "sqrt_inputs": int(sqrt[2]), "text": out}


def _assert_within_bounds(result: dict, min_inputs: int) -> None:
    assert set(result["ulps"]) == {"expf", "logf", "log1pf"}, result["text"]
    for name, (ulp, inputs) in result["ulps"].items():
        assert ulp <= ULP_BOUND, f"{name}: {ulp} ulp\n{result['text']}"
        assert inputs >= min_inputs // 4, (name, inputs)  # logf/log1pf take only their domain
    assert result["div_mismatches"] == 0, result["text"]
    assert result["sqrt_mismatches"] == 0 and result["sqrt_inputs"] >= min_inputs - 2**24, result["text"]


def test_accuracy_sampled(accuracy_exe):
    """Every 257th input pattern (all exponents, signs, subnormals, inf) and 1 M division pairs."""
    result = _measure(accuracy_exe, 257, 1_000_000, timeout=300)
    _assert_within_bounds(result, 2**32 // 257)
    assert result["div_pairs"] > 1_000_000
    print(result["text"])


@pytest.mark.slow
def test_accuracy_exhaustive(accuracy_exe):
    """All 2^32 input patterns (~6 CPU-minutes) and 100 M division pairs."""
    result = _measure(accuracy_exe, 1, 100_000_000, timeout=3600)
    _assert_within_bounds(result, 2**32 - 2**24)
    print(result["text"])


def test_device_computes_the_host_bits(accuracy_exe, tmp_path):
    """The LX7 build of mathf.c (clang-22, its FPU, on QEMU) returns the same bits as the host
    build for 65,536 inputs spread over every exponent, and __divsf3 is what `1.0f / x` calls."""
    host = subprocess.run([str(accuracy_exe), str(DEVICE_STRIDE), "0", "hash"], capture_output=True, text=True,
                          check=True).stdout
    project = tmp_path / "fw"
    project.mkdir()
    names = copy_runtime(project, XTENSA_LX7.files)
    shutil.copy(ROOT / "tests" / "minilibc_hash_lx7.c", project)
    sources = [n for n in names if n.endswith((".c", ".s"))] + ["minilibc_hash_lx7.c"]
    cflags = [*boards.load_board("xtensa_lx7").cflags, f"-DSTRIDE={DEVICE_STRIDE}u"]
    elf = build_firmware(XTENSA_LX7, project, sources, ["."], cflags)
    nm = subprocess.run([XTENSA_LX7.toolchain.tool("nm"), str(elf)], capture_output=True, text=True, check=True).stdout
    assert re.search(r" T __divsf3$", nm, re.M) and re.search(r" T expf$", nm, re.M)  # ours, not a library's
    device = subprocess.run(qemu_command(elf), capture_output=True, text=True, timeout=120).stdout
    assert "DONE" in device, device
    assert re.search(r"HASH (\w+)", device)[1] == re.search(r"hash (\w+)", host)[1], (device, host)


def test_memory_functions_on_the_host(tmp_path):
    """string.c (compiled -ffreestanding, as in the firmware) against libc on overlapping moves."""
    src = tmp_path / "t.c"
    src.write_text(r"""
#include <stdio.h>
#include <string.h>
void *mini_memmove(void *d, const void *s, size_t n);
void *mini_memset(void *d, int c, size_t n);
void *mini_memcpy(void *restrict d, const void *restrict s, size_t n);
size_t mini_strlen(const char *s);
int main(void) {
  unsigned char a[64], b[64];
  int i, n, off, bad = 0;
  for (n = 0; n < 40; n++)
    for (off = -8; off <= 8; off++) {
      for (i = 0; i < 64; i++) a[i] = b[i] = (unsigned char)(i * 7 + 1);
      memmove(a + 16 + off, a + 16, (size_t)n);
      mini_memmove(b + 16 + off, b + 16, (size_t)n);
      bad += memcmp(a, b, 64) != 0;
    }
  mini_memset(b, 0xAB, 10); memset(a, 0xAB, 10); bad += memcmp(a, b, 64) != 0;
  mini_memcpy(b + 20, a + 40, 12); memcpy(a + 20, a + 40, 12); bad += memcmp(a, b, 64) != 0;
  bad += mini_strlen("mamba") != 5 || mini_strlen("") != 0;
  printf("bad %d\n", bad);
  return bad != 0;
}
""")
    shim = tmp_path / "string_prefixed.c"  # the same file with its functions renamed, as the host has its own
    text = (MINILIBC / "string.c").read_text().replace("#include <string.h>", "")
    for f in ("memset", "memcpy", "memmove", "strlen"):
        text = re.sub(rf"\b{f}\(", f"mini_{f}(", text)
    shim.write_text(text)
    exe = tmp_path / "t"
    subprocess.run(["gcc", "-O2", "-std=c99", "-Wall", "-Wextra", "-Werror", "-ffreestanding", "-c", str(shim), "-o",
                    str(tmp_path / "s.o")], check=True)
    subprocess.run(["gcc", "-O2", "-std=c99", "-Wall", "-Wextra", "-Werror", str(src), str(tmp_path / "s.o"), "-o",
                    str(exe)], check=True)
    assert subprocess.run([str(exe)], capture_output=True, text=True).stdout.strip() == "bad 0"
