"""torch.export -> Relax: the user's program as one Relax function `main`.

The Mamba custom ops arrive as graph-level calls (relay_ops/mamba_ops.py); every other
operator goes through TVM's own ExportedProgram translator. Each binding is named after the
module that computed it (`mamba.x_proj` -> `mamba_x_proj`), so kernels, states and error
messages can say which layer they belong to; an operator TVM cannot translate is refused
with its name and that layer.
"""
from __future__ import annotations

import re
import warnings

import torch
import tvm
from tvm import relax
from tvm.relax.frontend.torch.exported_program_translator import ExportedProgramImporter

from relay_ops.mamba_ops import CUSTOM_CONVERT_MAP

from .errors import CompileError


def module_path(node) -> str:
    """The dotted path of the innermost user module that produced an FX node ('' at top level)."""
    stack = node.meta.get("nn_module_stack") or {}
    return list(stack.values())[-1][0] if stack else ""


def layer_name(node) -> str:
    """`<module path>__<node name>` (e.g. `mamba_x_proj__linear`): the layer, then what in it."""
    path = re.sub(r"\W+", "_", module_path(node)).strip("_")
    return f"{path}__{node.name}" if path else node.name


def layer_of(var_name: str) -> str:
    """The layer part of a binding name the importer gave (`mamba_x_proj`), or ''."""
    return var_name.split("__", 1)[0] if "__" in var_name else ""


class _NamingBlockBuilder(relax.BlockBuilder):
    """Names every binding it emits after the FX node being translated."""

    current = ""

    def emit(self, expr, name_hint: str = ""):
        return super().emit(expr, name_hint or self.current)


class _Importer(ExportedProgramImporter):
    @property
    def block_builder(self):
        return self._builder

    @block_builder.setter
    def block_builder(self, _bb):  # the translator makes a fresh builder per program: ours names
        self._builder = _NamingBlockBuilder()

    def create_convert_map(self):
        def named(convert):
            def run(node, *args):
                self._builder.current = layer_name(node)
                return convert(node, *args)
            return run

        return {target: named(f) for target, f in super().create_convert_map().items()}

    def update_convert_map(self, custom_convert_map):
        def named(convert):
            def run(node, importer):
                self._builder.current = layer_name(node)
                return convert(node, importer)
            return run

        super().update_convert_map({k: named(f) for k, f in custom_convert_map.items()})


def export(module: torch.nn.Module, example_inputs: tuple) -> torch.export.ExportedProgram:
    """torch.export of a module in inference mode (no grad, eval)."""
    from .frontend.reference import inference_mode

    module = inference_mode(module)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return torch.export.export(module, tuple(example_inputs))
        except Exception as exc:  # data-dependent control flow, unsupported Python, ...
            first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
            raise CompileError(f"torch.export could not trace the model: {first[:300]}") from None


def import_exported(ep: torch.export.ExportedProgram) -> tvm.IRModule:
    """ExportedProgram -> IRModule with `main`; weights become Relax constants."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ep = ep.run_decompositions()
    importer = _Importer()
    custom = dict(CUSTOM_CONVERT_MAP)
    known = set(importer.convert_map) | set(custom)
    for node in ep.graph.nodes:
        if node.op == "call_function" and getattr(node.target, "__name__", str(node.target)) not in known:
            where = module_path(node) or "the model's forward"
            raise CompileError(f"operator {node.target} (in {where}) is not supported by the compiler")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return importer.from_exported_program(ep, False, False, False, custom)
        except CompileError:
            raise
        except Exception as exc:
            first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
            raise CompileError(f"the model could not be imported into Relax: {first[:300]}") from None


def import_module(module: torch.nn.Module, seq_len: int, n_features: int) -> tvm.IRModule:
    """Trace `module` for a (1, seq_len, n_features) float32 input and import it."""
    if seq_len < 1:
        raise CompileError(f"sequence length must be positive, got {seq_len}")
    return import_exported(export(module, (torch.zeros(1, seq_len, n_features),)))
