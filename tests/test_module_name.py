"""--module-name: each model's C names under its own prefix (microTVM's tvmc --module-name), so
two models link into one firmware; the default build keeps microTVM's tvmgen_default names.
--arena caller: the application owns the arena, so two models run one after the other share one."""
import json
import re
import subprocess
import tarfile

import numpy as np
import pytest

from mamba_tvm.codegen import STRICT_C99
from mamba_tvm.driver import DEFAULT_MODEL, build

DATA = DEFAULT_MODEL.parent
DEFAULT_NAME = re.compile(r"tvmgen_default|TVMGEN_DEFAULT")

#: the program both tests link: the two models' headers and buffers, main reading the inputs,
#: calling run_models (each test's), writing both models' logits
PROGRAM = r"""
#include <stdio.h>
#include "kws/model/model.h"
#include "har/model/model.h"

static float kws_in[TVMGEN_KWS_INPUT_ELEMS], kws_out[TVMGEN_KWS_OUTPUT_ELEMS];
static float har_in[100000], har_out[TVMGEN_HAR_OUTPUT_ELEMS];
static struct tvmgen_kws_inputs kin = {kws_in};
static struct tvmgen_kws_outputs kout = {kws_out};
static struct tvmgen_har_outputs hout = {har_out};
static struct tvmgen_har_state har_state;
static int run_models(int har_frames);

static int read_floats(const char* path, float* dst, int max) {
  FILE* f = fopen(path, "rb");
  int n;
  if (!f) return -1;
  n = (int)fread(dst, sizeof(float), (size_t)max, f);
  fclose(f);
  return n;
}

int main(int argc, char** argv) {
  int rc;
  FILE* f;
  if (argc != 4 || read_floats(argv[1], kws_in, TVMGEN_KWS_INPUT_ELEMS) != TVMGEN_KWS_INPUT_ELEMS) return 2;
  rc = run_models(read_floats(argv[2], har_in, 100000) / TVMGEN_HAR_FRAME_ELEMS);
  if (rc != 0) return rc;
  f = fopen(argv[3], "wb");
  if (!f) return 5;
  fwrite(kws_out, sizeof(float), TVMGEN_KWS_OUTPUT_ELEMS, f);
  fwrite(har_out, sizeof(float), TVMGEN_HAR_OUTPUT_ELEMS, f);
  fclose(f);
  return 0;
}
"""

TWO_MODELS = PROGRAM + r"""
static int run_models(int har_frames) {
  int t;
  if (tvmgen_kws_run(&kin, &kout) != 0) return 3;
  tvmgen_har_init(&har_state);
  for (t = 0; t < har_frames; ++t) tvmgen_har_step(har_in + t * TVMGEN_HAR_FRAME_ELEMS, &har_state);
  return tvmgen_har_finish(&har_state, &hout) != 0 ? 4 : 0;
}
"""

SHARED_ARENA = PROGRAM + r"""
#define MAX(a, b) ((a) > (b) ? (a) : (b))
/* one arena for both models, as an application that runs them one after the other would have */
static float arena[MAX(TVMGEN_KWS_WORKSPACE_SIZE, TVMGEN_HAR_WORKSPACE_SIZE) / 4 + 1] TVMGEN_KWS_ALIGN8;

static int run_models(int har_frames) {
  struct tvmgen_kws_workspace_pools kws_pools = {arena};
  struct tvmgen_har_workspace_pools har_pools = {arena};
  int t;
  tvmgen_har_init(&har_state);
  /* interleaved: a HAR frame, then KWS's whole run, then the other frames; both through one arena */
  tvmgen_har_step(har_in, &har_state, &har_pools);
  if (tvmgen_kws_run(&kin, &kout, &kws_pools) != 0) return 3;
  for (t = 1; t < har_frames; ++t) tvmgen_har_step(har_in + t * TVMGEN_HAR_FRAME_ELEMS, &har_state, &har_pools);
  return tvmgen_har_finish(&har_state, &hout, &har_pools) != 0 ? 4 : 0;
}
"""


@pytest.fixture(scope="module")
def two_models(tmp_path_factory):
    """KWS-10 for the H743's Zephyr RPC app (+ MLF and Zephyr module) as `kws`, and HAR-6
    streaming on the emulated M7 (firmware linked, linker map read) as `har`."""
    out = tmp_path_factory.mktemp("modules")
    kws = build("zephyr/nucleo_h743zi", DATA / "mambalite_kws10.npz", out=out / "kws", app="rpc",
                emit=("mlf", "zephyr-module"), module_name="kws")
    har = build("qemu/mps2_an500", DATA / "mambalite_har6.npz", out=out / "har", mode="stream", module_name="har")
    return out, kws, har


def test_two_models_link_into_one_program_and_keep_their_logits(two_models, tmp_path):
    """One program with both models: no symbol clashes (the link would fail), no macro clashes
    (main.c includes both model.h), and each model's logits equal its own build's, bit for bit."""
    out, kws, har = two_models
    logits = _link_and_run(out, TWO_MODELS, tmp_path)
    assert np.array_equal(logits[:10], np.float32(kws["logits"])), (logits[:10], kws["logits"])
    assert np.array_equal(logits[10:], np.float32(har["logits"])), (logits[10:], har["logits"])


def test_every_file_written_for_a_named_module_uses_its_prefix(two_models):
    """model/, the Zephyr app (its RPC glue included), the Zephyr module and the bare-metal
    harness: no microTVM default name left, and the build read its own entry points."""
    out, kws, har = two_models
    texts = [p for p in out.rglob("*") if p.is_file() and p.suffix in (".c", ".h", ".txt", ".md", ".conf", ".yml")]
    assert len(texts) > 20
    assert [p for p in texts if DEFAULT_NAME.search(p.read_text())] == []
    assert kws["module_name"] == "kws" and har["module_name"] == "har"
    assert all(k.startswith("tvmgen_har_") for k in har["kernel_stack_bytes"]), har["kernel_stack_bytes"]
    assert har["stack_bytes"] >= har["kernel_stack_bytes"]["tvmgen_har_step"]
    assert har["model_code_bytes"] > 1000  # the linker map found the renamed kernels
    assert "#define TVMGEN_KWS_WORKSPACE_SIZE" in (out / "kws" / "model" / "model.h").read_text()
    assert "CONFIG_MAMBA_TVM_KWS=y" in (out / "kws" / "zephyr_module" / "README.md").read_text()
    with tarfile.open(out / "kws" / "model.tar") as tar:
        meta = json.load(tar.extractfile("./metadata.json"))
        names = tar.getnames()
    assert list(meta["modules"]) == ["kws"]
    assert "./codegen/host/include/tvmgen_kws.h" in names and "./codegen/host/src/kws_lib0.c" in names
    functions = [f["function_name"] for f in meta["modules"]["kws"]["memory"]["functions"]["operator_functions"]]
    assert functions and all(f.startswith("tvmgen_kws_") for f in functions)


def test_bad_module_name_is_one_error_line(tmp_path):
    proc = subprocess.run(["python", "-m", "mamba_tvm.build", "--module-name", "Two-Models", "--out",
                           str(tmp_path / "out")], capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "error: --module-name 'Two-Models': use 1-32 lower-case letters, digits or '_', starting with a letter "
        "(it becomes the C prefix tvmgen_<name>_ and TVMGEN_<NAME>_)"]
    assert not (tmp_path / "out").exists()


def _link_and_run(out, main_c: str, tmp_path) -> np.ndarray:
    """Both models' C and main_c as one host program, run on the two samples: their logits."""
    objects = []
    for name in ("kws", "har"):
        for src in sorted((out / name / "model").glob("*.c")):
            obj = tmp_path / f"{name}_{src.stem}.o"
            subprocess.run(["gcc", *STRICT_C99, "-O2", "-I", str(src.parent), "-c", str(src), "-o", str(obj)],
                           check=True, capture_output=True, text=True)
            objects.append(str(obj))
    (tmp_path / "main.c").write_text(main_c)
    exe = tmp_path / "two_models"
    proc = subprocess.run(["gcc", *STRICT_C99, "-O2", "-I", str(out), str(tmp_path / "main.c"), *objects,
                           "-o", str(exe), "-lm"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    for name, npz in (("kws", "mambalite_kws10.npz"), ("har", "mambalite_har6.npz")):
        np.load(DATA / npz)["sample_input"].astype(np.float32).tofile(tmp_path / f"{name}.bin")
    subprocess.run([str(exe), str(tmp_path / "kws.bin"), str(tmp_path / "har.bin"), str(tmp_path / "out.bin")],
                   check=True)
    return np.fromfile(tmp_path / "out.bin", dtype=np.float32)


def test_two_models_share_one_caller_owned_arena(tmp_path_factory, tmp_path):
    """--arena caller: neither model.c holds an arena; one buffer of the larger size serves both,
    with the streaming model's frames interleaved around the other's run, and each model's
    logits equal its own build's (whose harness and firmware own the arena) bit for bit."""
    out = tmp_path_factory.mktemp("shared_arena")
    kws = build("qemu/mps2_an500", DATA / "mambalite_kws10.npz", out=out / "kws", module_name="kws", arena="caller")
    har = build("zephyr/esp32s3_devkitc", DATA / "mambalite_har6.npz", out=out / "har", mode="stream",
                module_name="har", arena="caller")
    for name in ("kws", "har"):
        model_c = (out / name / "model" / "model.c").read_text()
        assert f"static float tvmgen_{name}_arena" not in model_c and "workspace_pools->arena" in model_c
    assert "tvmgen_har_arena" in (out / "har" / "zephyr_app" / "src" / "app_arena.h").read_text()
    assert kws["arena"] == "caller" and kws["model_static_ram_bytes"] == kws["arena_bytes"] + kws["state_bytes"]
    logits = _link_and_run(out, SHARED_ARENA, tmp_path)
    assert np.array_equal(logits[:10], np.float32(kws["logits"])), (logits[:10], kws["logits"])
    assert np.array_equal(logits[10:], np.float32(har["logits"])), (logits[10:], har["logits"])


def test_caller_arena_is_refused_for_the_rpc_app(tmp_path):
    proc = subprocess.run(["python", "-m", "mamba_tvm.build", "--target", "zephyr/nucleo_h743zi", "--app", "rpc",
                           "--arena", "caller", "--out", str(tmp_path / "out")], capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "error: --arena caller is for the run app and your own firmware; the RPC app and profiling use the "
        "static arena"]
    assert not (tmp_path / "out").exists()
