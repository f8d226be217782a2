"""Exact algebraic folding of linear layers (Relax, weights as constants).

Why: in a trained Mamba classifier several linear maps meet with no nonlinearity between
them: `linear_in` feeds `in_proj`, and the last block's `out_proj` is followed by the mean
over time and the classifier. Composing them at build time is exact up to float rounding
(the product is formed in float64) and removes whole matrix-vector products per frame:

- FoldLinearChains: y = (x W1 + b1) W2 + b2  ->  x (W1 W2) + (b1 W2 + b2), when the middle
  value has no other use and the folded product costs no more multiply-adds than the two.
- MoveLinearAfterTimeMean: mean_t(x W + b) -> mean_t(x) W + b (and the same for taking the
  last frame), so a linear layer before the pooling runs once per inference instead of once
  per frame, and is then folded into the head by FoldLinearChains.
- SplitLinearOutputs: split(x W, [n1, n2]) -> (x W[:, :n1], x W[:, n1:]): each part of a
  projection (Mamba's in_proj makes the conv input and the gate z) is its own matmul, with
  no copy of the whole projection.

Each works on `main`'s dataflow block. A linear layer is recognized as TVM's import writes
it: reshape(x, (rows, K)) -> matmul(., W) -> add(., b) -> reshape(., (..., N)), W and b
constants; reshapes that keep the last axis are looked through.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tvm
from tvm import ir, relax

from ..importer import layer_of


@dataclass
class Affine:
    """var = reshape(src @ W + b, var's shape): W (K, N) float64, b (N,) or None."""

    src: relax.Var
    W: np.ndarray
    b: np.ndarray | None
    chain: list  # the vars from the first matmul to this one (each must have no other use)


def _const(expr) -> np.ndarray | None:
    return expr.value.numpy() if isinstance(expr, ir.Constant) else None


def _shape(expr) -> list[int]:
    return [int(s) for s in expr.ty.shape]


def _op(value) -> str:
    return getattr(value.op, "name", "") if isinstance(value, relax.Call) else ""


def _uses(func) -> dict:
    counts: dict = {}

    def visit(expr):
        if isinstance(expr, relax.Var):
            counts[expr] = counts.get(expr, 0) + 1
        elif isinstance(expr, relax.Tuple):
            for f in expr.fields:
                visit(f)
        elif isinstance(expr, relax.Call):
            for a in expr.args:
                visit(a)
        elif isinstance(expr, relax.TupleGetItem):
            visit(expr.tuple_value)

    for block in func.body.blocks:
        for b in block.bindings:
            visit(b.value)
    visit(func.body.body)
    return counts


class _Rewriter:
    """Re-emits main's bindings in order; `rewrite(var, value, bb, m)` may return a replacement."""

    def __init__(self, mod: tvm.IRModule):
        self.mod, self.func = mod, mod["main"]
        self.uses = _uses(self.func)
        self.affine: dict = {}
        self.bindings = {b.var: b.value for blk in self.func.body.blocks for b in blk.bindings}

    def run(self) -> tvm.IRModule:
        bb = relax.BlockBuilder()
        params = [relax.Var(p.name, p.ty) for p in self.func.params]
        m: dict = dict(zip(self.func.params, params))
        attrs = dict(self.func.attrs) if self.func.attrs else {}
        with bb.function("main", params, attrs=attrs, pure=True):
            with bb.dataflow():
                for block in self.func.body.blocks:
                    for b in block.bindings:
                        self.track(b.var, b.value)
                        new = self.rewrite(b.var, b.value, bb, m)
                        if new is None:
                            new = _substitute(b.value, m)
                        emit = bb.emit if isinstance(b.var, relax.DataflowVar) else bb.emit_output
                        m[b.var] = emit(new, name_hint=b.var.name)
                gv = bb.emit_output(_substitute(self.func.body.body, m)) \
                    if not isinstance(self.func.body.body, relax.Var) else m[self.func.body.body]
            bb.emit_func_output(gv)
        out = self.mod.clone() if hasattr(self.mod, "clone") else tvm.IRModule(dict(self.mod.functions_items()))
        out["main"] = bb.get()["main"]
        return relax.transform.DeadCodeElimination(["main"])(out)

    def single_use(self, var) -> bool:
        return self.uses.get(var, 0) == 1

    def track(self, var, value):
        """Record var as an affine map of an earlier tensor when it is one."""
        op = _op(value)
        if op == "relax.matmul":
            a, w = value.args
            W = _const(w)
            if W is not None and W.ndim >= 2 and all(d == 1 for d in W.shape[:-2]) and str(w.ty.dtype) == "float32":
                W = W.reshape(W.shape[-2:])  # a batched matmul against one broadcast matrix is a linear layer
                self.affine[var] = Affine(self.through_reshapes(a), W.astype(np.float64), None, [var])
        elif op == "relax.add":
            x, y = value.args
            c, v = (x, y) if _const(x) is not None else (y, x)
            b = _const(c)
            src = self.affine.get(v)
            if b is not None and src is not None and self.single_use(v) and b.size == src.W.shape[1] \
                    and b.shape[-1] == src.W.shape[1]:
                bias = b.reshape(-1).astype(np.float64) + (src.b if src.b is not None else 0)
                self.affine[var] = Affine(src.src, src.W, bias, src.chain + [var])
        elif op == "relax.reshape":
            src = self.affine.get(value.args[0])
            if src is not None and self.single_use(value.args[0]) and _shape(var)[-1] == _shape(value.args[0])[-1]:
                self.affine[var] = Affine(src.src, src.W, src.b, src.chain + [var])

    def rewrite(self, var, value, bb, m):
        return None

    def through_reshapes(self, var):
        """The tensor `var` reshapes, looking through reshapes that keep the last axis."""
        while isinstance(var, relax.Var) and _op(self.bindings.get(var)) == "relax.reshape":
            src = self.bindings[var].args[0]
            if _shape(src)[-1] != _shape(var)[-1]:
                break
            var = src
        return var


def _substitute(expr, m):
    if isinstance(expr, relax.Var):
        return m.get(expr, expr)
    if isinstance(expr, relax.Tuple):
        return relax.Tuple([_substitute(f, m) for f in expr.fields])
    if isinstance(expr, relax.TupleGetItem):
        return relax.TupleGetItem(_substitute(expr.tuple_value, m), expr.index)
    if isinstance(expr, relax.Call):
        return relax.Call(expr.op, [_substitute(a, m) for a in expr.args], expr.attrs, expr.ty_args)
    return expr


def emit_affine(bb, src, W: np.ndarray, b: np.ndarray | None, out_shape: list[int], name: str):
    """reshape(src, (rows, K)) @ W (+ b), reshaped to out_shape; W, b cast to float32."""
    K = W.shape[0]
    rows = int(np.prod(_shape(src))) // K
    x = bb.emit(relax.op.reshape(src, (rows, K)), name_hint=name)
    y = bb.emit(relax.op.matmul(x, relax.const(W.astype(np.float32))), name_hint=name)
    if b is not None:
        y = bb.emit(relax.op.add(y, relax.const(b.astype(np.float32))), name_hint=name)
    return relax.op.reshape(y, out_shape)


def _folded_name(outer: str, inner: str) -> str:
    """The binding name of a folded layer: the outer layer, noting the one folded into it."""
    a, b = layer_of(outer), layer_of(inner)
    return f"{a}__fold_{b}" if a and b and a != b else outer


class _FoldChains(_Rewriter):
    def rewrite(self, var, value, bb, m):
        if _op(value) != "relax.matmul":
            return None
        inner = self.affine.get(value.args[0])
        outer = self.affine.get(var)
        if inner is None or outer is None or not self.single_use(value.args[0]):
            return None
        K, N1 = inner.W.shape
        N2 = outer.W.shape[1]
        if K * N2 > K * N1 + N1 * N2:  # folding would add multiply-adds
            return None
        W = inner.W @ outer.W
        b = inner.b @ outer.W if inner.b is not None else None
        self.affine[var] = Affine(inner.src, W, b, inner.chain + [var])
        name = _folded_name(var.name, inner.chain[0].name)
        y = emit_affine(bb, m.get(inner.src, inner.src), W, b, _shape(var), name)
        return y


class _MoveAfterMean(_Rewriter):
    """mean/last over leading axes of an affine map -> the affine map of the mean/last."""

    def rewrite(self, var, value, bb, m):
        op = _op(value)
        if op not in ("relax.mean", "relax.take"):
            return None
        src_var = value.args[0]
        aff = self.affine.get(src_var)
        if aff is None or not self.single_use(src_var):
            return None
        src_shape, a_shape = _shape(src_var), _shape(aff.src)
        if src_shape[:-1] != a_shape[:-1]:
            return None  # the layer's rows are not the pooled tensor's leading axes
        rank = len(src_shape)
        a = m.get(aff.src, aff.src)
        if op == "relax.mean":
            axes = list(range(rank)) if value.attrs.axis is None else [int(x) % rank for x in value.attrs.axis]
            if rank - 1 in axes:
                return None
            pooled = bb.emit(relax.op.mean(a, axis=axes, keepdims=bool(value.attrs.keepdims)), name_hint=var.name)
        else:
            if int(value.attrs.axis) % rank == rank - 1:
                return None
            pooled = bb.emit(relax.Call(value.op, [a, value.args[1]], value.attrs), name_hint=var.name)
        # the pooled input is rows of K: the layer applies to it like to any rows
        y = emit_affine(bb, pooled, aff.W, aff.b, _shape(var), aff.chain[0].name)
        out_shape = _shape(var)
        self.affine[var] = None
        return y if out_shape else y


class _SplitOutputs(_Rewriter):
    """split(affine(x), sections, axis=-1) -> one affine map a section."""

    def rewrite(self, var, value, bb, m):
        if _op(value) != "relax.split":
            return None
        src = value.args[0]
        aff = self.affine.get(src)
        rank = len(_shape(src))
        if aff is None or not self.single_use(src) or int(value.attrs.axis) % rank != rank - 1:
            return None
        N = aff.W.shape[1]
        sections = value.attrs.indices_or_sections
        if isinstance(sections, (tvm.tirx.IntImm, int)):
            n = int(sections)
            bounds = [N * i // n for i in range(n + 1)]
        else:
            bounds = [0, *[int(i) for i in sections], N]
        a = m.get(aff.src, aff.src)
        parts = []
        for i, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
            shape = _shape(src)[:-1] + [hi - lo]
            layer, _, rest = aff.chain[0].name.partition("__")
            name = f"{layer}_{i}__{rest}" if rest else f"{aff.chain[0].name}_{i}"
            parts.append(bb.emit(emit_affine(bb, a, aff.W[:, lo:hi], None if aff.b is None else aff.b[lo:hi], shape,
                                             name), name_hint=name))
        return relax.Tuple(parts)


def _module_pass(rewriter, name):
    @tvm.transform.module_pass(opt_level=0, name=name)
    def _pass(mod: tvm.IRModule, _ctx) -> tvm.IRModule:
        return rewriter(mod).run()
    return _pass


FoldLinearChains = _module_pass(_FoldChains, "FoldLinearChains")
MoveLinearAfterTimeMean = _module_pass(_MoveAfterMean, "MoveLinearAfterTimeMean")
SplitLinearOutputs = _module_pass(_SplitOutputs, "SplitLinearOutputs")
