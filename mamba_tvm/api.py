"""`mamba_tvm.compile(module, example_inputs, target=...)`: the Python API, the way PyTorch users
hand a model to a compiler (torch.compile, torch.export, TVM's relax.frontend).

The module is the user's own: any nn.Module taking (batch, T, features) built from
mamba_tvm.nn.Mamba, Hugging Face MambaMixer or mamba_ssm Mamba blocks (the foreign mixers are
swapped for mamba_tvm.nn.Mamba in a copy) and standard layers. The build is the CLI's (same
output-directory contract, same checks), and its self-check runs this module.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class CompileResult:
    report: dict  # the build report (the CLI's JSON line)
    compiled: object  # the CompiledModel: its plan (programs), C sources, memory report
    out_dir: Path


def compile(module, example_inputs, target: str = "qemu/mps2_an500", out: str | Path | None = None,
            mode: str = "sequence", fusion: str = "timestep", weights: str = "fp32", run: bool = False,
            app: str = "run", name: str = "model", module_name: str = "default",
            arena: str = "static") -> CompileResult:  # noqa: A001
    """Compile `module` for `target`; example_inputs: a (1, T, features) tensor (or a 1-tuple of
    one), whose T is the compiled sequence length and which the build checks and bakes in.
    (Named like torch.compile.) module_name: the C prefix tvmgen_<module_name>_ (build's --module-name);
    arena "caller": the application passes the arena to every call (build's --arena)."""
    from .driver import build_model
    from .frontend.model import model_from_module

    model = model_from_module(module, example_inputs, name)
    report, compiled = build_model(target, model, out, model.sample_input.shape[1], run, mode, fusion, weights, app,
                                   module_name=module_name, arena=arena)
    return CompileResult(report, compiled, Path(report["out_dir"]))
