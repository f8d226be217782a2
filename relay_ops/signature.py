"""One TVMScript signature per kernel. TVMScript parameter lists are fixed, so a kernel with an
optional operand (int8 A's scale, a linear layer's bias) is written once with the operand, its
body reading it only where the form has it, and `drop_params` takes it out of the other form."""
from tvm import tirx


def drop_params(func: tirx.PrimFunc, *names: str) -> tirx.PrimFunc:
    """`func` without the named parameters, which its body must not read."""
    dropped = [p for p in func.params if p.name in names]
    assert len(dropped) == len(names), (names, [p.name for p in func.params])
    read = tirx.analysis.undefined_vars(func.body, [])
    assert not any(v.same_as(p) for v in read for p in dropped), f"the body reads one of {names}"
    return tirx.PrimFunc([p for p in func.params if p.name not in names], func.body, func.ret_type, func.attrs)
