"""LowerMambaOps: graph-level Mamba operators -> call_tir to their TIR kernels.

Runs after the graph passes that need to see the operators whole (folding, the time-step
split, int8 quantization) and before LegalizeOps lowers everything else. Each kernel is
named after the layer its call computes (the binding's name, which the importer set from
the user's module path), so the generated C reads `mamba_scan_step`, not `selective_scan3`.
"""
import tvm
from tvm import relax

from relay_ops.mamba_ops import lower, op_name, operands

from ..importer import layer_of

#: short kernel-name suffix per operator
SUFFIX = {"causal_conv1d_silu": "conv", "causal_conv1d_silu_step": "conv_step", "selective_scan": "scan",
          "selective_scan_step": "scan_step", "linear_int8": "int8", "state_update_add": "accumulate",
          "state_update_max": "running_max", "state_update_min": "running_min", "state_update_copy": "keep_last"}


def kernel_name(var_name: str, op: str) -> str:
    layer = layer_of(var_name)
    return f"{layer}_{SUFFIX.get(op, op)}" if layer else op


@relax.expr_functor.mutator
class _Lower(relax.PyExprMutator):
    def visit_var_binding_(self, binding):
        value = binding.value
        op = op_name(value)
        if op is None:
            super().visit_var_binding_(binding)
            return
        args = [self.visit_expr(a) for a in operands(value)]
        new_value = lower(self.builder_, op, args, kernel_name(binding.var.name, op))
        emit = self.builder_.emit if isinstance(binding.var, relax.DataflowVar) else self.builder_.emit_output
        new_var = emit(new_value, name_hint=binding.var.name)
        self.set_var_remap(binding.var, new_var)


@tvm.transform.module_pass(opt_level=0, name="LowerMambaOps")
def LowerMambaOps(mod: tvm.IRModule, _ctx) -> tvm.IRModule:
    lowerer = _Lower(mod)
    for gv, func in list(mod.functions_items()):
        if isinstance(func, relax.Function):
            lowerer.builder_.update_func(gv, lowerer.visit_expr(func))
    return lowerer.builder_.get()
