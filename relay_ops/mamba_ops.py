"""The Mamba operators as Relax sees them, and their lowering to the TIR kernels.

Import keeps each custom op as one opaque, pure call `R.call_pure_packed("mamba.<op>", ...)`
so that the graph passes (folding, the time-step split, int8 quantization) see the operator
with its operands, not a kernel; `LowerMambaOps` (mamba_tvm/passes) then replaces each call
by `R.call_tir` (or `R.call_tir_inplace` for the one-step forms, which update their state in
place) to the PrimFunc this module builds, shapes read off the operands.

| op                            | operands                                         | result      |
|-------------------------------|--------------------------------------------------|-------------|
| mamba.causal_conv1d_silu      | x (B,L,C), weight (C,K), bias (C)                | (B,L,C)     |
| mamba.selective_scan          | u, x_dbl, dt_weight, dt_bias, A, D, z [, A_scale]| (B,L,D)     |
| mamba.causal_conv1d_silu_step | x (B,C), state (B,C,K-1), weight, bias           | (y, state)  |
| mamba.selective_scan_step     | u, x_dbl, dt_weight, dt_bias, A, D, z, h [, A_scale] | (y, h)  |
| mamba.linear_int8             | x (M,K), w_q int8 (N,K), scale (N) [, bias (N)]  | (M,N)       |
| mamba.state_update_<kind>     | state (S), value (S); kind add, max, min, copy    | state, in place |
"""
from __future__ import annotations

from tvm import relax

from . import causal_conv1d, linear_int8, selective_scan, state_update

PREFIX = "mamba."


def mamba_call(op: str, args: list, ty) -> relax.Call:
    """`R.call_pure_packed("mamba.<op>", *args)`: the graph-level form of a Mamba operator."""
    return relax.op.call_pure_packed(PREFIX + op, *args, ty_args=ty)


def op_name(call) -> str | None:
    """"selective_scan" for a mamba.selective_scan call, else None."""
    if (isinstance(call, relax.Call) and getattr(call.op, "name", None) == "relax.call_pure_packed"
            and isinstance(call.args[0], relax.ExternFunc) and call.args[0].global_symbol.startswith(PREFIX)):
        return call.args[0].global_symbol[len(PREFIX):]
    return None


def operands(call) -> list:
    return list(call.args[1:])


def _shape(expr) -> list[int]:
    return [int(s) for s in expr.ty.shape]


# ---- import: the torch custom op nodes become graph-level calls -------------------------------

def _import(op: str, result_ty):
    def convert(node, importer):
        args = [a for a in importer.retrieve_args(node) if a is not None]  # absent optionals (A_scale, bias)
        return importer.block_builder.emit(mamba_call(op, args, result_ty(args)))
    return convert


def _tuple_of(*indices):
    return lambda args: relax.TupleType([args[i].ty for i in indices])


def _reduce(op):
    """aten.amax/amin (missing from TVM 0.27's translator) as R.max/R.min."""
    def convert(node, importer):
        args = importer.retrieve_args(node)
        x, dims = args[0], args[1] if len(args) > 1 else None
        keepdims = bool(args[2]) if len(args) > 2 else False
        axis = None if not dims else [int(d) for d in (dims if isinstance(dims, (list, tuple)) else [dims])]
        return importer.block_builder.emit(op(x, axis=axis, keepdims=keepdims))
    return convert


#: node targets of the exported program -> converter for `from_exported_program`
CUSTOM_CONVERT_MAP = {
    "amax.default": _reduce(relax.op.max),
    "amin.default": _reduce(relax.op.min),
    "causal_conv1d_silu.default": _import("causal_conv1d_silu", lambda a: a[0].ty),
    "selective_scan.default": _import("selective_scan", lambda a: a[0].ty),
    "causal_conv1d_silu_step.default": _import("causal_conv1d_silu_step", _tuple_of(0, 1)),
    "selective_scan_step.default": _import("selective_scan_step", _tuple_of(0, 7)),
    "linear_int8.default": _import("linear_int8", lambda a: relax.TensorType(
        (int(a[0].ty.shape[0]), int(a[1].ty.shape[0])), "float32")),
}


# ---- lowering: graph-level call -> call_tir to the TIR kernel -------------------------------------

def lower(bb: relax.BlockBuilder, op: str, args: list, name: str, consumable: frozenset = frozenset()) -> relax.Expr:
    """The call_tir (call_tir_inplace for step forms) implementing `op` on `args`; the kernel is
    added to the module under `name` (BlockBuilder makes it unique) and marked as named.
    `consumable`: positions of arguments that nothing reads after this call (computed
    tensors, used once): a step kernel writes its output over them (one buffer less)."""
    bb = _Naming(bb, name)
    return _lower(bb, op, args, name, consumable)


class _Naming:
    """add_func that tags the kernel with the name it was given (`mamba_tvm.layer`)."""

    def __init__(self, bb, name):
        self.bb, self.name = bb, name

    def add_func(self, func, name):
        return self.bb.add_func(func.with_attr("mamba_tvm.layer", self.name), name)


def _lower(bb, op: str, args: list, name: str, consumable: frozenset = frozenset()) -> relax.Expr:
    if op == "causal_conv1d_silu":
        batch, length, channels = _shape(args[0])
        func = causal_conv1d.make_primfunc(batch, length, channels, _shape(args[1])[1])
        return relax.call_tir(bb.add_func(func, name), args, args[0].ty)
    if op == "causal_conv1d_silu_step":
        batch, channels = _shape(args[0])
        if 0 in consumable:  # u written over x
            func = causal_conv1d.make_step_primfunc_over_x(batch, channels, _shape(args[2])[1])
            return relax.call_tir_inplace(bb.add_func(func, name), args, [0, 1], [args[0].ty, args[1].ty])
        func = causal_conv1d.make_step_primfunc(batch, channels, _shape(args[2])[1])
        return relax.call_tir_inplace(bb.add_func(func, name), args, [-1, 1], [args[0].ty, args[1].ty])
    if op == "selective_scan":
        batch, length, d_inner = _shape(args[0])
        d_state, dt_rank = _shape(args[4])[1], _shape(args[2])[1]
        func = selective_scan.make_primfunc(batch, length, d_inner, d_state, dt_rank, a_int8=len(args) == 8)
        return relax.call_tir(bb.add_func(func, name), args, args[0].ty)
    if op == "selective_scan_step":
        batch, d_inner = _shape(args[0])
        d_state, dt_rank = _shape(args[4])[1], _shape(args[2])[1]
        if 0 in consumable:  # y written over u
            func = selective_scan.make_step_primfunc(batch, d_inner, d_state, dt_rank, a_int8=len(args) == 9,
                                                   over_u=True)
            return relax.call_tir_inplace(bb.add_func(func, name), args, [0, 7], [args[0].ty, args[7].ty])
        func = selective_scan.make_step_primfunc(batch, d_inner, d_state, dt_rank, a_int8=len(args) == 9)
        return relax.call_tir_inplace(bb.add_func(func, name), args, [-1, 7], [args[0].ty, args[7].ty])
    if op == "linear_int8":
        rows, in_features = _shape(args[0])
        out_features = _shape(args[1])[0]
        # opaque to FuseOps: the kernel already carries its epilogue
        # LINEAR_INT8 lets SelectInt8Matvec swap in the exact integer kernel (int8_matvec="int64")
        func = (linear_int8.make_primfunc(rows, in_features, out_features, len(args) == 4).with_attr("op_pattern", 8)
                .with_attr(linear_int8.LINEAR_INT8, [rows, in_features, out_features, int(len(args) == 4)]))
        return relax.call_tir(bb.add_func(func, name), args, relax.TensorType((rows, out_features), "float32"))
    if op.startswith("state_update_"):
        # opaque to FuseOps: fused with the value's producer, the in-place write would lose its buffer
        func = state_update.make_primfunc(_shape(args[0])[0], op[len("state_update_"):]).with_attr("op_pattern", 8)
        return relax.call_tir_inplace(bb.add_func(func, name), args, [0], [args[0].ty])
    raise ValueError(f"unknown Mamba operator mamba.{op}")
