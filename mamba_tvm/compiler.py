"""The compiler driver: ModelSpec -> Relax -> planned program -> C sources on disk."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import tvm

from .codegen.aot import emit_model
from .frontend import ModelSpec
from .importer import import_model
from .passes import kernel_stack_bytes
from .pipeline import mcu_pipeline
from .plan import PlannedProgram, plan_program


@dataclass
class CompiledModel:
    program: PlannedProgram
    sources: dict[str, str]  # file name -> text
    seq_len: int

    @property
    def c_files(self) -> list[str]:
        return [n for n in self.sources if n.endswith(".c")]

    def kernel_temporaries(self) -> dict[str, int]:
        """Bytes of stack arrays each kernel keeps (from the TIR, before the C compiler)."""
        return {name: kernel_stack_bytes(f) for name, f in self.program.kernels.items()}

    def memory_report(self) -> dict:
        p = self.program
        return {
            "arena_bytes": p.arena_bytes,
            "arena_without_reuse_bytes": p.unplanned_bytes,
            "weights_bytes": p.weights_bytes,
            "arena": [{"name": t.name, "producer": t.producer, "offset": t.offset, "bytes": t.nbytes, "shape": list(t.shape),
                       "live": [t.first_use, t.last_use]} for t in sorted(p.arena_tensors(), key=lambda t: t.offset)],
            "calls": [{"kernel": c.kernel, "args": c.args} for c in p.calls],
            "kernel_temporaries_bytes": self.kernel_temporaries(),
        }

    def write(self, out_dir: Path) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, text in self.sources.items():
            (out_dir / name).write_text(text)
        (out_dir / "plan.json").write_text(json.dumps(self.memory_report(), indent=1))


def compile_model(spec: ModelSpec, seq_len: int, pipeline: tvm.transform.Pass | None = None) -> CompiledModel:
    relax_mod = import_model(spec, seq_len)
    lowered = (pipeline or mcu_pipeline())(relax_mod)
    program = plan_program(lowered)
    return CompiledModel(program, emit_model(program, spec.name), seq_len)
