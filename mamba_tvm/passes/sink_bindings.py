"""SinkBindings: each binding of a dataflow block moves down to just before its first use.

Why: the arena holds every tensor from its producer to its last consumer; a value computed
early and used late (Mamba's gate z, projected with the conv input but read only by the
scan) is live across everything in between. Dataflow blocks are pure, so any topological
order computes the same values; this pass takes the depth-first order from the outputs,
which emits every producer right before the first consumer that needs it.
"""
import tvm
from tvm import relax


def _vars(expr, found):
    if isinstance(expr, relax.Var):
        found.append(expr)
    elif isinstance(expr, relax.Tuple):
        for f in expr.fields:
            _vars(f, found)
    elif isinstance(expr, relax.Call):
        for a in expr.args:
            _vars(a, found)
    elif isinstance(expr, relax.TupleGetItem):
        _vars(expr.tuple_value, found)
    return found


def _sink(func: relax.Function) -> relax.Function:
    blocks = func.body.blocks
    if len(blocks) != 1 or not isinstance(blocks[0], relax.DataflowBlock):
        return func
    bindings = {b.var: b for b in blocks[0].bindings}
    order, done = [], set()

    def ensure(var):
        stack = [(var, False)]
        while stack:
            v, expanded = stack.pop()
            if v in done or v not in bindings:
                continue
            if expanded:
                done.add(v)
                order.append(bindings[v])
                continue
            stack.append((v, True))
            for arg in reversed(_vars(bindings[v].value, [])):
                if arg not in done:
                    stack.append((arg, False))

    for v in _vars(func.body.body, []):
        ensure(v)
    for b in blocks[0].bindings:  # outputs of the block not reached from the return (none in practice)
        if not isinstance(b.var, relax.DataflowVar):
            ensure(b.var)
    if len(order) != len(blocks[0].bindings):
        order += [b for b in blocks[0].bindings if b.var not in done]
    body = relax.SeqExpr([relax.DataflowBlock(order)], func.body.body)
    return relax.Function(func.params, body, func.ret_ty, func.is_pure, func.attrs)


@tvm.transform.module_pass(opt_level=0, name="SinkBindings")
def SinkBindings(mod: tvm.IRModule, _ctx) -> tvm.IRModule:
    for gv, func in list(mod.functions_items()):
        if isinstance(func, relax.Function):
            mod[gv] = _sink(func)
    return mod
