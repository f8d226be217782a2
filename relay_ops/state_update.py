"""In-place updates of a recurrent state by one frame's value: the reductions over time of a
time-step-split model (SplitTimeStep): a running sum (mean and sum pooling), a running max or
min, and keeping the last frame.

Why a kernel of its own: written as `state + value` the update makes a new tensor that the
step must copy back into the state after its last kernel; updated in place
(R.call_tir_inplace on the state) there is no copy and no second buffer.
"""
from tvm.script import tirx as T

KINDS = ("add", "max", "min", "copy")


def make_primfunc(size: int, kind: str):
    """TIR: state[i] = combine(state[i], value[i]) for i < size, in place on `state`."""
    if kind not in KINDS:
        raise ValueError(f"unknown state update '{kind}' (known: {', '.join(KINDS)})")

    @T.prim_func(private=True, s_tir=True)
    def state_update(state: T.Buffer((size,), "float32"), value: T.Buffer((size,), "float32")):
        for i in range(size):
            with T.sblock("update"):
                vi = T.axis.remap("S", [i])
                if kind == "add":
                    state[vi] = state[vi] + value[vi]
                elif kind == "max":
                    state[vi] = T.max(state[vi], value[vi])
                elif kind == "min":
                    state[vi] = T.min(state[vi], value[vi])
                else:
                    state[vi] = value[vi]

    return state_update
