"""The compiler driver: ModelSpec -> Relax -> planned program -> C sources on disk."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import tvm

from .codegen import ARENAS
from .codegen.aot import emit_model, state_struct_bytes
from .codegen.module_name import DEFAULT as DEFAULT_MODULE, check_module_name, rename
from .frontend import ModelSpec
from .errors import CompileError
from .importer import import_module
from .passes import kernel_stack_bytes
from .pipeline import mcu_pipeline
from .passes.split_time_step import STATE_INIT, STATE_NAMES
from .plan import PlannedProgram, model_fingerprint, plan_program


@dataclass
class CompiledModel:
    programs: dict[str, PlannedProgram]  # "main", or "step" + "finish"
    sources: dict[str, str]  # file name -> text
    seq_len: int
    mode: str = "sequence"
    fusion: str = "layer"
    weights: str = "fp32"
    module_name: str = DEFAULT_MODULE  # the C prefix tvmgen_<module_name>_ (codegen/module_name.py)
    arena: str = "static"  # "caller": the application passes the arena to every call (codegen/aot.py)

    @property
    def program(self) -> PlannedProgram:
        """The program that holds the most activations (the whole graph, or the step)."""
        return self.programs.get("main") or self.programs["step"]

    @property
    def arena_bytes(self) -> int:
        return max(p.arena_bytes for p in self.programs.values())

    @property
    def weights_bytes(self) -> int:
        return sum(p.weights_bytes for p in self.programs.values())

    @property
    def state_bytes(self) -> int:
        """The state struct of stepwise programs (codegen/aot.py state_struct_bytes), else 0."""
        return state_struct_bytes(self.program.state_bytes) if "step" in self.programs else self.program.state_bytes

    @property
    def kernels(self) -> dict:
        return {k: f for p in self.programs.values() for k, f in p.kernels.items()}

    @property
    def fingerprint(self) -> str:
        return model_fingerprint(self.programs)

    @property
    def c_files(self) -> list[str]:
        return [n for n in self.sources if n.endswith(".c")]

    def kernel_temporaries(self) -> dict[str, int]:
        """Bytes of stack arrays each kernel keeps (from the TIR, before the C compiler)."""
        return {name: kernel_stack_bytes(f) for name, f in self.kernels.items()}

    def memory_report(self) -> dict:
        return {
            "mode": self.mode, "fusion": self.fusion, "weights": self.weights, "seq_len": self.seq_len,
            "arena_bytes": self.arena_bytes,
            "state_bytes": self.state_bytes,
            "weights_bytes": self.weights_bytes,
            "programs": {name: {
                "arena_bytes": p.arena_bytes,
                "arena_without_reuse_bytes": p.unplanned_bytes,
                "arena": [{"name": t.name, "producer": t.producer, "offset": t.offset, "bytes": t.nbytes,
                           "shape": list(t.shape), "live": [t.first_use, t.last_use]}
                          for t in sorted(p.arena_tensors(), key=lambda t: t.offset)],
                "state": {n: p.tensors[n].nbytes for n in p.state},
                "calls": [{"kernel": c.kernel, "args": c.args} for c in p.calls],
            } for name, p in self.programs.items()},
            "kernel_temporaries_bytes": self.kernel_temporaries(),
        }

    def write(self, out_dir: Path) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, text in self.sources.items():
            (out_dir / name).write_text(text)
        (out_dir / "plan.json").write_text(json.dumps(self.memory_report(), indent=1))


MODES = ("sequence", "stream")
FUSIONS = ("timestep", "layer")
WEIGHTS = ("fp32", "int8")
#: the shortest sequence traced for time-step fusion (see compile_model)
TIME_STEP_TRACE_LEN = 3


def as_model(model, n_features: int | None = None, name: str | None = None):
    """A frontend Model from a Model, a TinyMamba ModelSpec or an nn.Module (+ n_features)."""
    from .frontend.model import Model, model_from_spec

    if isinstance(model, Model):
        return model
    if isinstance(model, ModelSpec):
        return model_from_spec(model)
    if n_features is None:
        raise CompileError("n_features is needed to trace a module")
    return Model(name or "model", model, n_features)


def import_model(model, seq_len: int) -> tvm.IRModule:
    """The model as a Relax IRModule for a (1, seq_len, features) input."""
    model = as_model(model)
    if model.onnx_model is not None:
        from .frontend.onnx_import import import_onnx

        return import_onnx(model.onnx_model, seq_len)
    return import_module(model.traced, seq_len, model.n_features)


def compile_model(model, seq_len: int, mode: str = "sequence", fusion: str = "timestep",
                  weights: str = "fp32", pipeline: tvm.transform.Pass | None = None,
                  n_features: int | None = None, name: str | None = None, fold: bool = True,
                  module_name: str = DEFAULT_MODULE, arena: str = "static") -> CompiledModel:
    """Compile a model (a frontend Model, a TinyMamba ModelSpec, or an nn.Module taking
    (1, T, n_features)) for a (1, seq_len, features) input.

    mode "sequence": tvmgen_default_run over a (1, T, F) input; mode "stream": init/step/finish.
    fusion "timestep": the graph is split into a per-frame step and a finish (SplitTimeStep),
    and the time loop runs around the step, so no (T, d) tensor exists; "layer": each layer runs
    over the whole sequence (TVM's usual plan). fold=False skips the exact linear folding
    (the baseline of bench/kernels.py). module_name: the C names' prefix (tvmgen_<name>_).
    arena "caller": the application owns the arena and passes it to every call."""
    from .pipeline import model_passes

    if arena not in ARENAS:
        raise CompileError(f"unknown arena '{arena}' (known: {', '.join(ARENAS)})")
    if mode not in MODES or fusion not in FUSIONS or weights not in WEIGHTS:
        raise CompileError(f"unknown mode/fusion/weights {mode}/{fusion}/{weights} "
                           f"(modes {MODES}, fusions {FUSIONS}, weights {WEIGHTS})")
    if mode == "stream" and fusion != "timestep":
        raise CompileError("streaming needs time-step fusion")
    check_module_name(module_name)
    model = as_model(model, n_features, name)
    # the step graph does not depend on T; a trace of one frame would make the time axis a
    # size-1 axis that reshapes cannot be told apart from the batch
    trace_len = max(seq_len, TIME_STEP_TRACE_LEN) if fusion == "timestep" else seq_len
    mod = tvm.transform.Sequential(model_passes(fusion, weights, fold=fold))(import_model(model, trace_len))
    lowered = (pipeline or mcu_pipeline())(mod)
    if fusion == "layer":
        programs = {"main": plan_program(lowered)}
    else:
        step = lowered["step"]
        names = [str(n) for n in step.attrs[STATE_NAMES]]
        state = [(n, "state") for n in names]
        finish_params = [(p.name, "input" if p.name == "inv_steps" else "state") for p in lowered["finish"].params]
        programs = {
            "step": plan_program(lowered, "step", [("frame", "input"), *state], prefix="s_", returns_state=True),
            "finish": plan_program(lowered, "finish", finish_params, prefix="f_"),
        }
        programs["step"].state_init = {n: float(v) for n, v in zip(names, step.attrs[STATE_INIT])}
    emitted = emit_model(programs, model.name, mode, seq_len, arena)
    sources = {n: rename(text, module_name) for n, text in emitted.items()}
    return CompiledModel(programs, sources, seq_len, mode, fusion, weights, module_name, arena)
