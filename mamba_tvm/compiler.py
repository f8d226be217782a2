"""The compiler driver: ModelSpec -> Relax -> planned program -> C sources on disk."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import tvm

from .codegen.aot import emit_model
from .frontend import ModelSpec
from .errors import CompileError
from .frontend.reference import state_shapes
from .importer import import_model, import_step_model
from .passes import kernel_stack_bytes
from .pipeline import mcu_pipeline
from .plan import PlannedProgram, model_fingerprint, plan_program


@dataclass
class CompiledModel:
    programs: dict[str, PlannedProgram]  # "main", or "step" + "finish"
    sources: dict[str, str]  # file name -> text
    seq_len: int
    mode: str = "sequence"
    fusion: str = "layer"
    weights: str = "fp32"

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
        """The state struct: its tensors plus the int32 step counter (stepwise programs)."""
        return self.program.state_bytes + (4 if "step" in self.programs else 0)

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


def compile_model(spec: ModelSpec, seq_len: int, mode: str = "sequence", fusion: str = "timestep",
                  weights: str = "fp32", pipeline: tvm.transform.Pass | None = None) -> CompiledModel:
    """mode "sequence": tvmgen_default_run over a (1, T, F) input; mode "stream": init/step/finish.
    fusion "timestep": the whole block chain runs per time step inside one loop over time (no
    (T, d) tensor exists); "layer": each layer runs over the whole sequence (TVM's usual plan)."""
    if mode not in MODES or fusion not in FUSIONS or weights not in WEIGHTS:
        raise CompileError(f"unknown mode/fusion/weights {mode}/{fusion}/{weights} "
                           f"(modes {MODES}, fusions {FUSIONS}, weights {WEIGHTS})")
    int8 = weights == "int8"
    if mode == "stream" and fusion != "timestep":
        raise CompileError("streaming needs time-step fusion")
    pipeline = pipeline or mcu_pipeline()
    if fusion == "layer":
        program = plan_program(pipeline(import_model(spec, seq_len, int8)))
        programs = {"main": program}
    else:
        if spec.d_conv < 2:
            raise CompileError(f"time-step fusion needs d_conv >= 2, the checkpoint has d_conv={spec.d_conv}")
        lowered = pipeline(import_step_model(spec, int8))
        state = [(name, "state") for name, _ in state_shapes(spec)]
        programs = {
            "step": plan_program(lowered, "step", [("frame", "input"), *state], prefix="s_", returns_state=True),
            "finish": plan_program(lowered, "finish", [state[0], ("inv_steps", "input")], prefix="f_"),
        }
    sources = emit_model(programs, spec.name, mode, seq_len)
    return CompiledModel(programs, sources, seq_len, mode, fusion, weights)
