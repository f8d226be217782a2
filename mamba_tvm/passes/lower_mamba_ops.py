"""LowerMambaOps: graph-level Mamba operators -> call_tir to their TIR kernels.

Runs after the graph passes that need to see the operators whole (folding, the time-step
split, int8 quantization) and before LegalizeOps lowers everything else. Each kernel is
named after the layer its call computes (the binding's name, which the importer set from
the user's module path), so the generated C reads `mamba_scan_step`, not `selective_scan3`.
A one-step conv or scan whose input nothing reads afterwards writes its output over it
(`consumable_args`): the time-step plan then needs one vector of arena less per kernel.
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


#: ops whose result shares its argument's storage (a view)
_VIEWS = ("relax.reshape", "relax.expand_dims", "relax.squeeze", "relax.flatten")
#: step operators whose tuple item 1 is their state argument updated in place
_STATE_ARG = {"causal_conv1d_silu_step": 1, "selective_scan_step": 7}


def consumable_args(func: relax.Function) -> dict:
    """binding var -> positions of its Mamba operator's arguments that nothing reads after it:
    tensors the graph computed (not parameters, constants or views of them), whose storage
    (through views and tuple items) is last read by that binding and is not returned."""
    root: dict = {}      # var -> storage id (a var that owns its storage, or None: not ours)
    fields: dict = {}    # tuple var -> the storage ids of its fields
    last_use: dict = {}  # storage id -> index of the last binding reading it
    bindings = [b for block in func.body.blocks for b in block.bindings]

    def storage(expr):
        return root.get(expr) if isinstance(expr, relax.Var) else None

    def reads(expr) -> list:
        found = []
        relax.analysis.post_order_visit(expr, lambda e: found.append(e) if isinstance(e, relax.Var) else None)
        return found

    for i, b in enumerate(bindings):
        v, value = b.var, b.value
        item = isinstance(value, relax.TupleGetItem) and value.tuple_value in fields
        for used in reads(value):  # an item of a known tuple reads that field alone
            for sid in ([fields[used][value.index]] if item else fields.get(used, [root.get(used)])):
                if sid is not None:
                    last_use[sid] = i
        if isinstance(value, relax.Tuple):
            fields[v], root[v] = [storage(f) for f in value.fields], None
        elif isinstance(value, relax.Var):
            root[v] = root.get(value)
        elif isinstance(value, relax.Call) and getattr(value.op, "name", None) in _VIEWS:
            root[v] = storage(value.args[0])
        elif isinstance(value, relax.TupleGetItem):
            tup = value.tuple_value
            producer = next((x.value for x in bindings if x.var.same_as(tup)), None)
            op = op_name(producer) if producer is not None else None
            if tup in fields:
                root[v] = fields[tup][value.index]
            elif op in _STATE_ARG and value.index == 1:
                root[v] = storage(operands(producer)[_STATE_ARG[op]])
            else:
                root[v] = v if op is not None else storage(tup)
        elif isinstance(value, relax.Call):
            root[v] = v
        else:
            root[v] = None
    for used in reads(func.body.body):
        for sid in fields.get(used, [root.get(used)]):
            if sid is not None:
                last_use[sid] = len(bindings)
    result = {}
    for i, b in enumerate(bindings):
        if op_name(b.value) is None:
            continue
        args = operands(b.value)
        ids = [storage(a) for a in args]
        result[b.var] = frozenset(k for k, sid in enumerate(ids)
                                  if sid is not None and last_use.get(sid) == i and ids.count(sid) == 1)
    return result


@relax.expr_functor.mutator
class _Lower(relax.PyExprMutator):
    consumable: dict = {}

    def visit_var_binding_(self, binding):
        value = binding.value
        op = op_name(value)
        if op is None:
            super().visit_var_binding_(binding)
            return
        args = [self.visit_expr(a) for a in operands(value)]
        new_value = lower(self.builder_, op, args, kernel_name(binding.var.name, op),
                          self.consumable.get(binding.var, frozenset()))
        emit = self.builder_.emit if isinstance(binding.var, relax.DataflowVar) else self.builder_.emit_output
        new_var = emit(new_value, name_hint=binding.var.name)
        self.set_var_remap(binding.var, new_var)


@tvm.transform.module_pass(opt_level=0, name="LowerMambaOps")
def LowerMambaOps(mod: tvm.IRModule, _ctx) -> tvm.IRModule:
    lowerer = _Lower(mod)
    for gv, func in list(mod.functions_items()):
        if isinstance(func, relax.Function):
            lowerer.consumable = consumable_args(func)
            lowerer.builder_.update_func(gv, lowerer.visit_expr(func))
    return lowerer.builder_.get()
