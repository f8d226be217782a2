"""Bring your own model (issue 14): classifiers written here, the way users write them, compiled
through the module route and checked against the module itself (float64), on the host and on
both emulated cores, whole-sequence and streaming.

- mamba_ssm-style stacks `h + mixer(RMSNorm(h))` with a final norm, Hugging Face's own
  MambaBlock/MambaMixer (transformers), mean pooling;
- the same shape with mamba_tvm.nn.Mamba mixers, LayerNorm, last-frame pooling, an MLP head;
- a causal Conv1d front end, a mixer whose class is mamba_ssm's (a test-local stand-in with
  its module path, attributes and forward), max pooling;
- .pt2 and .onnx files give the module route's logits through the CLI; unsupported operators
  and time-mixing operators are refused by name; a whole pickled module needs --trust-pickle.
"""
import copy
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import boards
from mamba_tvm.compiler import compile_model
from mamba_tvm.device.host import build_host_runner, run_host
from mamba_tvm.device.qemu_rpc import QemuRpc
from mamba_tvm.errors import CompileError, TimeSplitError
from mamba_tvm.frontend.model import model_from_module
from mamba_tvm.nn import Mamba
from mamba_tvm.project.rpc_firmware import build_rpc_firmware
from tests.mamba_simple_torch import MambaSimple
from tests.reference_f64 import parity_errors

ROOT = Path(__file__).resolve().parents[1]
FEATURES, SEQ_LEN = 10, 13


class RMSNorm(nn.Module):
    def __init__(self, d, eps=1e-5):
        super().__init__()
        self.weight, self.eps = nn.Parameter(1 + 0.1 * torch.randn(d)), eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class HFStack(nn.Module):
    """Hugging Face's MambaBlock (RMSNorm + MambaMixer + residual) twice, norm_f, mean pooling."""

    def __init__(self):
        super().__init__()
        from transformers import MambaConfig
        from transformers.models.mamba.modeling_mamba import MambaBlock, MambaRMSNorm

        cfg = MambaConfig(hidden_size=16, state_size=8, num_hidden_layers=2, expand=2, conv_kernel=4, time_step_rank=2)
        self.embed = nn.Linear(FEATURES, 16)
        self.layers = nn.ModuleList([MambaBlock(cfg, layer_idx=i) for i in range(2)])
        self.norm_f = MambaRMSNorm(16)
        self.head = nn.Linear(16, 4)
        with torch.no_grad():  # trained-like values (HF leaves A_log and D to PreTrainedModel's init)
            for layer in self.layers:
                mixer = layer.mixer
                n = mixer.A_log.shape[1]
                mixer.A_log.copy_(torch.log(torch.arange(1, n + 1).float()).repeat(mixer.A_log.shape[0], 1)
                                  + 0.1 * torch.randn_like(mixer.A_log))
                mixer.D.copy_(torch.rand_like(mixer.D) + 0.5)
                mixer.dt_proj.bias.copy_(torch.rand_like(mixer.dt_proj.bias) - 1.0)

    def forward(self, x):
        h = self.embed(x)
        for layer in self.layers:
            h = layer(h)
        return self.head(self.norm_f(h).mean(dim=1))


class LastFrameMLP(nn.Module):
    """mamba_tvm.nn.Mamba mixers in pre-norm residual blocks, LayerNorm, the last frame, an MLP (ReLU, tanh)."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(FEATURES, 12)
        self.norms = nn.ModuleList([nn.LayerNorm(12) for _ in range(2)])
        self.mixers = nn.ModuleList([Mamba(12, d_state=4, d_conv=3) for _ in range(2)])
        self.norm_f = nn.LayerNorm(12)
        self.head = nn.Sequential(nn.Linear(12, 20), nn.ReLU(), nn.Dropout(0.2), nn.Linear(20, 20), nn.Tanh(),
                                  nn.Linear(20, 5))

    def forward(self, x):
        h = self.embed(x)
        for norm, mixer in zip(self.norms, self.mixers):
            h = h + mixer(norm(h))
        return self.head(self.norm_f(h)[:, -1])


class MambaSSMStyle(MambaSimple):
    """mamba_ssm's mamba_simple.Mamba inference forward (no CUDA path; the independent
    tests/mamba_simple_torch.py), under mamba_ssm's module path, with trained-like A and D."""

    def __init__(self, d_model, d_state=8, d_conv=4, expand=2):
        super().__init__(d_model, d_state=d_state, d_conv=d_conv, expand=expand, dt_rank=max(1, d_model // 16))
        self.activation = "silu"
        with torch.no_grad():
            self.A_log.add_(0.1 * torch.randn_like(self.A_log))
            self.D.copy_(torch.rand_like(self.D) + 0.5)


MambaSSMStyle.__module__ = "mamba_ssm.modules.mamba_simple"
MambaSSMStyle.__name__ = MambaSSMStyle.__qualname__ = "Mamba"


class ConvFrontMax(nn.Module):
    """A causal Conv1d front end over time with GELU, a mamba_ssm mixer, max pooling over time."""

    def __init__(self):
        super().__init__()
        self.front = nn.Conv1d(FEATURES, 16, 3, padding=2)
        self.mixer = MambaSSMStyle(16)
        self.norm = RMSNorm(16)
        self.head = nn.Linear(16, 3)

    def forward(self, x):
        h = F.gelu(self.front(x.transpose(1, 2))[..., :x.shape[1]].transpose(1, 2))
        h = h + self.mixer(self.norm(h))
        return self.head(h.amax(dim=1))


MODELS = {"hf_stack": HFStack, "last_frame_mlp": LastFrameMLP, "conv_front_max": ConvFrontMax}


def _make(name):
    torch.manual_seed(len(name))
    return MODELS[name]().eval()


def _inputs(n=4, seed=0, length=SEQ_LEN):
    return (3 * np.random.default_rng(seed).standard_normal((n, length, FEATURES))).astype(np.float32)


def _float64(module, x):
    with torch.no_grad():
        return copy.deepcopy(module).double()(torch.as_tensor(x, dtype=torch.float64)).numpy()


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    cache = {}

    def get(name, mode):
        if (name, mode) not in cache:
            module = _make(name)
            model = model_from_module(module, torch.from_numpy(_inputs(1)), name=name)
            c = compile_model(model, SEQ_LEN, mode=mode, fusion="timestep")
            out = tmp_path_factory.mktemp(f"{name}_{mode}") / "model"
            c.write(out)
            cache[name, mode] = (module, model, c, out, build_host_runner(out, c.c_files))
        return cache[name, mode]

    return get


@pytest.mark.parametrize("mode", ["sequence", "stream"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_module_route_host_parity(compiled, name, mode):
    module, model, c, _, exe = compiled(name, mode)
    xs = _inputs()
    want = _float64(module, xs)
    for x, w in zip(xs, want):
        got = run_host(exe, x[None])
        assert not parity_errors(got, w), (name, mode, parity_errors(got, w))
    if name != "last_frame_mlp":  # foreign mixers were swapped, in a copy: the user's module is untouched
        assert model.notes and all("compiled as mamba_tvm.nn.Mamba" in n for n in model.notes)
        assert not any(isinstance(m, Mamba) for m in module.modules())


@pytest.mark.parametrize("core, board", [("cortex-m7", "mps2_an500"), ("xtensa-lx7", "xtensa_lx7")])
@pytest.mark.parametrize("mode", ["sequence", "stream"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_module_route_on_both_cores(compiled, name, mode, core, board, tmp_path):
    module, model, c, out, _ = compiled(name, mode)
    b = boards.load_board(board)
    elf = build_rpc_firmware(tmp_path, out, c, name, "semihost", profile=False, cflags=list(b.cflags), core=core)
    xs = _inputs(3, seed=1)
    want = _float64(module, xs)
    with QemuRpc(elf, "semihost", timeout=10.0) as q:
        for x, w in zip(xs, want):
            got = q.session.infer(x[None])[0]
            assert not parity_errors(got, w), (name, mode, core, parity_errors(got, w))


def test_last_frame_pooling_reports_its_true_error(compiled):
    """Pooling the last frame is compiled as such: the host C matches the module, and a mean
    pooling would not (the check can tell the two apart)."""
    module, _, _, _, exe = compiled("last_frame_mlp", "sequence")
    x = _inputs(1)[0][None]
    got = run_host(exe, x)
    assert not parity_errors(got, _float64(module, x)[0])

    class MeanInstead(nn.Module):
        def __init__(self):
            super().__init__()
            self.m = module

        def forward(self, inp):
            m = self.m
            h = m.embed(inp)
            for norm, mixer in zip(m.norms, m.mixers):
                h = h + mixer(norm(h))
            return m.head(m.norm_f(h).mean(1))

    assert parity_errors(got, _float64(MeanInstead(), x)[0])


def test_time_mixing_and_unknown_operators_are_refused_by_name():
    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed, self.mixer = nn.Linear(FEATURES, 8), Mamba(8, d_state=4)

        def forward(self, x):
            h = self.mixer(self.embed(x))
            w = torch.softmax(h @ h.transpose(1, 2), dim=-1)
            return (w @ h).mean(1)

    with pytest.raises(TimeSplitError, match=r"attention-like"):
        compile_model(Attention().eval(), SEQ_LEN, mode="stream", n_features=FEATURES)
    compile_model(Attention().eval(), SEQ_LEN, fusion="layer", n_features=FEATURES)  # whole-sequence: fine

    class Bessel(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Linear(FEATURES, 4)

        def forward(self, x):
            return torch.special.bessel_j0(self.embed(x)).mean(1)

    with pytest.raises(CompileError, match=r"operator aten\.special_bessel_j0\.default \(in the model's forward\)"):
        compile_model(Bessel().eval(), SEQ_LEN, fusion="layer", n_features=FEATURES)


def _cli(module_name, *args):
    """The CLI as a user runs it from their project: their model's classes importable."""
    import os

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    return subprocess.run([sys.executable, "-m", module_name, *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, env=env)


def test_pt2_onnx_and_pickle_routes_match_the_module(tmp_path):
    """The same classifier saved three ways compiles to the module route's logits; the .onnx
    holds the Mamba operators as mamba_tvm nodes; a whole pickled module needs --trust-pickle."""
    import onnx

    module = _make("last_frame_mlp")
    x = torch.from_numpy(_inputs(1))
    np.save(tmp_path / "x.npy", x.numpy())
    torch.export.save(torch.export.export(module, (x,)), tmp_path / "m.pt2")
    torch.save(module, tmp_path / "whole.pt")
    from mamba_tvm.export import export_onnx

    export_onnx(copy.deepcopy(module), x, tmp_path / "m.onnx")
    ops = {(n.domain, n.op_type) for n in onnx.load(str(tmp_path / "m.onnx")).graph.node}
    assert {("mamba_tvm", "SelectiveScan"), ("mamba_tvm", "CausalConv1dSiLU")} <= ops
    # these files carry no sample: every route checks the same seeded N(0, 1) input
    from mamba_tvm.frontend.check_inputs import inputs_like

    check = inputs_like(None, 1, SEQ_LEN, FEATURES)
    want = _float64(module, check)[0]
    logits = {}
    for route, path, extra in (("pt2", "m.pt2", ()), ("onnx", "m.onnx", ()),
                               ("pickle", "whole.pt", ("--trust-pickle", "--seq-len", SEQ_LEN))):
        proc = _cli("mamba_tvm.build", "--model", tmp_path / path, *extra, "--target", "zephyr/nucleo_h743zi",
                    "--out", tmp_path / route)
        assert proc.returncode == 0, proc.stderr
        report = json.loads(proc.stdout.strip().splitlines()[-1])
        assert report["seq_len"] == SEQ_LEN and report["check_input"].startswith("random N(0, 1)")
        got = np.array(report["logits"], np.float32)
        assert not parity_errors(got, want), (route, parity_errors(got, want))
        logits[route] = got
    assert "onnx" in json.loads((tmp_path / "onnx" / "report.json").read_text())["reference"]
    refused = _cli("mamba_tvm.build", "--model", tmp_path / "whole.pt", "--out", tmp_path / "w0")
    assert refused.returncode == 1 and "--trust-pickle" in refused.stderr


class CNNBaseline(nn.Module):
    """A keyword-spotting CNN with no Mamba layer: two causal Conv1d + ReLU, mean, Linear."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv1d(FEATURES, 16, 3, padding=2), nn.Conv1d(16, 16, 3, padding=2)
        self.head = nn.Linear(16, 4)

    def forward(self, x):
        length = x.shape[1]
        h = torch.relu(self.conv1(x.transpose(1, 2))[..., :length])
        return self.head(torch.relu(self.conv2(h)[..., :length]).mean(-1))


@pytest.mark.parametrize("mode", ["sequence", "stream"])
def test_onnx_model_without_mamba_nodes(tmp_path, mode):
    """Standard ONNX (no mamba_tvm node) goes through the same flow, time split included."""
    from mamba_tvm.export import export_onnx
    from mamba_tvm.frontend.model import load_model

    torch.manual_seed(3)
    module = CNNBaseline().eval()
    export_onnx(module, torch.from_numpy(_inputs(1)), tmp_path / "cnn.onnx")
    c = compile_model(load_model(tmp_path / "cnn.onnx"), SEQ_LEN, mode=mode)
    assert "step" in c.programs
    c.write(tmp_path / "model")
    xs, exe = _inputs(3, seed=7), build_host_runner(tmp_path / "model", c.c_files)
    got = np.stack([run_host(exe, xi[None]) for xi in xs])
    assert not parity_errors(got, _float64(module, xs)), parity_errors(got, _float64(module, xs))


class MeanMaxPool(nn.Module):
    """Mean and max over time concatenated, hardswish: the whole-sequence max reduction."""

    def __init__(self):
        super().__init__()
        self.embed, self.mixer, self.head = nn.Linear(FEATURES, 16), Mamba(16, d_state=4), nn.Linear(32, 5)

    def forward(self, x):
        h = F.hardswish(self.mixer(self.embed(x)))
        return self.head(torch.cat([h.mean(1), h.amax(1)], -1))


@pytest.mark.parametrize("fusion", ["layer", "timestep"])
def test_max_pooling_whole_sequence(tmp_path, fusion):
    """A max over time reduced in one kernel (layer fusion): the C backend's min/max printing
    must not reuse a value read before the accumulator was stored (BindMinMaxLoads)."""
    torch.manual_seed(4)
    module, xs = MeanMaxPool().eval(), _inputs(3, seed=9, length=16)  # T = 16: the reduction is unrolled (by 4 or 8)
    c = compile_model(model_from_module(module, torch.from_numpy(xs[:1])), 16, fusion=fusion)
    c.write(tmp_path / "model")
    exe = build_host_runner(tmp_path / "model", c.c_files)
    got = np.stack([run_host(exe, xi[None]) for xi in xs])
    assert not parity_errors(got, _float64(module, xs)), parity_errors(got, _float64(module, xs))


def test_a_miscompile_is_refused_not_written(tmp_path, monkeypatch):
    """The build's self-check is a gate: with the min/max fix taken out, the max pooling above
    comes out wrong, and the build fails as a compiler bug (exit 2) leaving no output. (The
    ESP32-S3's record keeps min/max as C expressions; the M7's prints them as fmaxf calls.)"""
    import tvm

    import mamba_tvm
    from mamba_tvm.codegen import plain_c
    from mamba_tvm.errors import MiscompileError, cli_error

    monkeypatch.setattr(plain_c, "BindMinMaxLoads", tvm.transform.module_pass(lambda m, _c: m, opt_level=0))
    torch.manual_seed(4)
    with pytest.raises(MiscompileError, match=r"differ from the PyTorch module, float32 by .* \(allowed") as info:
        mamba_tvm.compile(MeanMaxPool().eval(), torch.from_numpy(_inputs(1, length=16)), target="zephyr/esp32s3_devkitc",
                          out=tmp_path / "out", fusion="layer")
    assert cli_error(info.value)[1] == 2 and not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left


def test_swapped_hf_stack_saved_as_pt2(tmp_path):
    """The README's export recipe for Hugging Face mixers: torch.export of
    mamba_tvm.swap_mixers(model), saved and loaded back, compiles to the module's logits; the
    user's module itself is left untouched."""
    import mamba_tvm
    from mamba_tvm.frontend.model import load_model

    module = _make("hf_stack")
    x = torch.from_numpy(_inputs(1))
    torch.export.save(torch.export.export(mamba_tvm.swap_mixers(module), (x,)), tmp_path / "hf.pt2")
    assert type(module.layers[0].mixer).__name__ == "MambaMixer"
    model = load_model(tmp_path / "hf.pt2")
    c = compile_model(model, SEQ_LEN)
    c.write(tmp_path / "model")
    xs, exe = _inputs(3, seed=5), build_host_runner(tmp_path / "model", c.c_files)
    got = np.stack([run_host(exe, xi[None]) for xi in xs])
    assert not parity_errors(got, _float64(module, xs)), parity_errors(got, _float64(module, xs))


def test_python_api_builds_and_runs_on_qemu(tmp_path):
    import mamba_tvm

    module = _make("hf_stack")
    x = torch.from_numpy(_inputs(1))
    result = mamba_tvm.compile(module, x, target="qemu/mps2_an500", out=tmp_path / "api", run=True, name="hf")
    r = result.report
    assert r["logits_from"] == "qemu" and result.out_dir == tmp_path / "api"
    assert not parity_errors(np.array(r["logits"], np.float32), _float64(module, x.numpy())[0])
    assert (result.out_dir / "baremetal" / "model.elf").is_file() and "step" in result.compiled.programs
