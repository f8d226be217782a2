"""PairAdjacentAccesses: two adjacent floats read (or written) as one 64-bit access.

On the Cortex-M7 one VLDR.64 loads two single-precision registers and one VSTR.64 stores
them: in a register-blocked matvec a pass over the weights costs half the loads, and in the
scan's unrolled state loop A, B, C and the state h come two entries per load (h two per
store). GCC never pairs float loads itself (nor forms VLDM), so the compiler does it in TIR:
in each straight-line statement sequence, loads of `buf[e]` and `buf[e + 1]` with `e` even
become one `mamba_load_pair(&buf[e])` bound to a variable and its two halves; a state entry
updated twice (`buf[e] = ...`, later `buf[e + 1] = ...`) keeps both new values in variables
and stores them together after the second update.

A pair access claims 8-byte alignment, so only tensors whose base the build aligns are paired:
weights, arena tensors and state (declared TVMGEN_DEFAULT_ALIGN8, offsets multiples of 16),
never the caller's input or output. `MarkPairableParams` (a schedule rule, knob `pair_loads`)
names those parameters per kernel from its call sites; `PairAdjacentAccesses` runs in the
plain-C lowering, after unrolling and before common-subexpression elimination.
"""
from __future__ import annotations

import tvm
import tvm_ffi
from tvm import ir, relax, sym, tirx

from .call_sites import kernel_call_args

PAIRABLE = "mamba_tvm.pairable"
LOAD_PAIR, PAIR_LO, PAIR_HI, STORE_PAIR = "mamba_load_pair", "mamba_pair_lo", "mamba_pair_hi", "mamba_store_pair"
F32, F64 = "float32", "float64"


def _size(var) -> int | None:
    try:
        count = 1
        for dim in var.ty.shape:
            count *= int(dim)
        return count
    except (AttributeError, TypeError, ValueError):
        return None


def _even_float_tensor(arg) -> bool:
    ty = arg.ty
    shape = getattr(ty, "shape", None)
    if str(getattr(ty, "dtype", "")) != F32 or shape is None:
        return False
    try:
        count = 1
        for dim in shape:
            count *= int(dim)
    except (TypeError, ValueError):
        return False
    return count % 2 == 0


def _origins(func: relax.Function) -> dict:
    """Relax var -> where its memory comes from: "const", "arena" (a kernel's new output),
    ("param", i), or None (unknown). Views and in-place results take their source's origin."""
    origin: dict = {p: ("param", i) for i, p in enumerate(func.params)}
    bound: dict = {}

    def of(expr):
        if isinstance(expr, ir.Constant):
            return "const"
        return origin.get(expr) if isinstance(expr, (relax.Var, ir.Var)) else None

    def visit(binding):
        bound[binding.var] = binding.value
        return binding

    tvm_ffi.structural_map(func, (relax.VarBinding, visit))
    for var, value in bound.items():  # bindings in program order (dict keeps it)
        result = None
        if isinstance(value, relax.Call) and isinstance(value.op, ir.Op):
            name = value.op.name
            args = list(value.args[1].fields) if name.startswith("relax.call_tir") else []
            if name == "relax.call_tir":
                # a kernel of one tensor of as many elements may be a reshape the plan aliases
                tensors = [a for a in args if not isinstance(a, ir.Constant)]
                result = of(tensors[0]) if len(tensors) == 1 and _size(tensors[0]) == _size(var) else "arena"
            elif name == "relax.call_tir_inplace":
                results = [of(args[i]) if i >= 0 else "arena" for i in (int(i) for i in value.attrs.inplace_indices)]
                result = results[0] if len(results) == 1 else results
            elif value.args and ("reshape" in name or name in ("relax.squeeze", "relax.expand_dims", "relax.flatten")):
                result = of(value.args[0])
        elif isinstance(value, (relax.Var, ir.Var)):
            result = of(value)
        elif isinstance(value, relax.TupleGetItem):
            parts = of(value.tuple_value)
            result = parts[value.index] if isinstance(parts, list) else None
        origin[var] = result
    return origin


def _aligned_arg(arg, origin: dict) -> bool:
    """The build places this argument 8-byte aligned: a weight, an arena tensor or a state
    (a parameter of the step function after the frame), with an even number of floats."""
    if not _even_float_tensor(arg):
        return False
    where = "const" if isinstance(arg, ir.Constant) else origin.get(arg)
    return where in ("const", "arena") or (isinstance(where, tuple) and where[1] > 0)


def MarkPairableParams(enabled: bool = True) -> tvm.transform.Pass:
    @tvm.transform.module_pass(opt_level=0, name="MarkPairableParams")
    def _pass(mod: tvm.IRModule, _ctx) -> tvm.IRModule:
        if not enabled:
            return mod
        calls: dict = {}
        for caller in mod.functions.values():
            if not isinstance(caller, relax.Function):
                continue
            origin = _origins(caller)
            for gv, arg_lists in kernel_call_args(tvm.IRModule({"f": caller})).items():
                for args in arg_lists:
                    calls.setdefault(gv.name_hint, []).append([_aligned_arg(a, origin) for a in args])
        for gv, func in list(mod.functions.items()):
            if not isinstance(func, tirx.PrimFunc) or gv.name_hint not in calls:
                continue
            per_site = calls[gv.name_hint]
            names = [p.name for i, p in enumerate(func.params)
                     if all(i < len(site) and site[i] for site in per_site)]
            if names:
                mod[gv] = func.with_attr(PAIRABLE, names)
        return mod

    return _pass


def _buffer(node):
    return node.buffer if isinstance(node, tirx.BufferStore) else node.source


class _Access:
    """A load or store of one float of a pairable buffer: buffer data var, index split into a
    symbolic base and a constant offset."""

    def __init__(self, analyzer, node):
        index = analyzer.simplify(node.indices[0])
        base, offset = index, 0
        if isinstance(index, tirx.IntImm):
            base, offset = None, int(index.value)
        elif isinstance(index, tirx.Add) and isinstance(index.b, tirx.IntImm):
            base, offset = index.a, int(index.b.value)
        self.buffer, self.index = _buffer(node), index
        self.key = (self.buffer.name, None if base is None else tvm_ffi.structural_hash(base), offset)
        residue = analyzer.modular_set(index)
        self.even = residue.coeff % 2 == 0 and residue.base % 2 == 0


def _loads(stmt, data_vars) -> list:
    found = []

    def visit(load):
        if len(load.indices) == 1 and load.source.name in data_vars and str(load.ty.dtype) == F32:
            found.append(load)
        return load

    tvm_ffi.structural_map(stmt, (ir.expr.TensorLoad, visit))
    return found


def _straight_line(stmt) -> bool:
    return isinstance(stmt, (tirx.BufferStore, tirx.Bind, tirx.Evaluate))


def _pair_seq(seq: tirx.SeqStmt, data_vars, analyzer) -> tirx.Stmt:
    """Each maximal run of straight-line statements paired on its own (a loop or a branch
    between two runs is a barrier)."""
    out, run, changed = [], [], False
    for stmt in list(seq.seq) + [None]:
        if stmt is not None and _straight_line(stmt):
            run.append(stmt)
            continue
        if run:
            paired = _pair_run(run, data_vars, analyzer)
            changed |= paired is not None
            out += run if paired is None else paired
            run = []
        if stmt is not None:
            out.append(stmt)
    return tirx.SeqStmt(out) if changed else seq


def _pair_run(stmts: list, data_vars, analyzer) -> list | None:
    if len(stmts) < 2:
        return None
    loads = [[_Access(analyzer, l) for l in _loads(s, data_vars)] for s in stmts]
    stores = [_Access(analyzer, s) if isinstance(s, tirx.BufferStore) and s.buffer.name in data_vars
              and len(s.indices) == 1 and str(s.value.ty.dtype) == F32 else None for s in stmts]
    stored_buffers = {a.key[0] for a in stores if a is not None}
    # a buffer updated in place is paired only if every access shares one index base: a read
    # at another base (h[i] for an unknown i) might be an element whose store is deferred
    bases: dict = {}
    for a in [a for row in loads for a in row] + [a for a in stores if a is not None]:
        bases.setdefault(a.key[0], set()).add(a.key[1])
    in_place = {b for b in stored_buffers if len(bases[b]) == 1}
    # every store to a buffer must have a comparable index, or its loads stay as they are
    for i, s in enumerate(stmts):
        if isinstance(s, tirx.BufferStore) and s.buffer.name in data_vars and stores[i] is None:
            return None

    replace: list[dict] = [{} for _ in stmts]  # per statement: access key -> expression
    before: dict[int, list] = {}
    after: dict[int, list] = {}
    as_bind: dict[int, tirx.Var] = {}
    first_use: dict = {}
    for i, accesses in enumerate(loads):
        for a in accesses:
            first_use.setdefault(a.key, (i, a))
    store_at = {a.key: i for i, a in enumerate(stores) if a is not None}
    if len(store_at) != sum(a is not None for a in stores):
        return None  # one element stored twice: leave the sequence alone
    paired = set()
    for key, (i, access) in sorted(first_use.items(), key=lambda kv: kv[1][0]):
        buf, base, offset = key
        hi_key = (buf, base, offset + 1)
        if key in paired or hi_key in paired or not access.even:
            continue
        if buf in stored_buffers:
            continue
        if hi_key not in first_use:
            continue
        pair = tirx.Var("pair", F64)
        at = min(i, first_use[hi_key][0])
        before.setdefault(at, []).append(tirx.Bind(pair, tirx.op.call_pure_extern(
            F64, LOAD_PAIR, tirx.op.address_of(tirx.BufferLoad(access.buffer, [access.index])))))
        lo, hi = tirx.op.call_pure_extern(F32, PAIR_LO, pair), tirx.op.call_pure_extern(F32, PAIR_HI, pair)
        for k in range(len(stmts)):
            replace[k][key], replace[k][hi_key] = lo, hi
        paired |= {key, hi_key}
    # state entries updated in place: new values in variables, one paired store
    for key, i in sorted(store_at.items(), key=lambda kv: kv[1]):
        buf, base, offset = key
        hi_key = (buf, base, offset + 1)
        if key in paired or buf not in in_place or not stores[i].even or hi_key not in store_at \
                or store_at[hi_key] < i:
            continue
        j = store_at[hi_key]
        # reads of the old values (at or before each store); later reads get the new values
        old = [first_use[k][0] for k in (key, hi_key) if k in first_use and first_use[k][0] <= store_at[k]]
        access = stores[i]
        if old:
            pair = tirx.Var("pair", F64)
            before.setdefault(min(old), []).append(tirx.Bind(pair, tirx.op.call_pure_extern(
                F64, LOAD_PAIR, tirx.op.address_of(tirx.BufferLoad(access.buffer, [access.index])))))
            lo, hi = tirx.op.call_pure_extern(F32, PAIR_LO, pair), tirx.op.call_pure_extern(F32, PAIR_HI, pair)
        new_lo, new_hi = tirx.Var(f"{access.buffer.name}_even", F32), tirx.Var(f"{access.buffer.name}_odd", F32)
        for k in range(len(stmts)):
            if k <= i and old:
                replace[k][key] = lo
            elif k > i:
                replace[k][key] = new_lo
            if k <= j and old:
                replace[k][hi_key] = hi
            elif k > j:
                replace[k][hi_key] = new_hi
        as_bind[i], as_bind[j] = new_lo, new_hi
        after.setdefault(j, []).append(tirx.Evaluate(tirx.op.call_extern(
            "int32", STORE_PAIR, tirx.op.address_of(tirx.BufferLoad(access.buffer, [access.index])), new_lo, new_hi)))
        paired |= {key, hi_key}
    if not paired:
        return None

    out = []
    for k, stmt in enumerate(stmts):
        table = replace[k]

        def swap(load, table=table):
            if len(load.indices) != 1 or load.source.name not in data_vars:
                return load
            return table.get(_Access(analyzer, load).key, load)

        out += before.get(k, [])
        if k in as_bind:
            out.append(tirx.Bind(as_bind[k], tvm_ffi.structural_map(stmt.value, (ir.expr.TensorLoad, swap))))
        else:
            out.append(tvm_ffi.structural_map(stmt, (ir.expr.TensorLoad, swap)))
        out += after.get(k, [])
    return out


@tirx.transform.prim_func_pass(opt_level=0, name="PairAdjacentAccesses")
def PairAdjacentAccesses(func: tirx.PrimFunc, _mod, _ctx) -> tirx.PrimFunc:
    names = func.attrs[PAIRABLE] if func.attrs is not None and PAIRABLE in func.attrs else None
    if not names:
        return func
    wanted = {str(n) for n in names}
    # after FlattenBuffer the kernel reads flattened views named as its parameters
    local = set()
    tvm_ffi.structural_map(func, (tirx.AllocBuffer, lambda a: local.add(a.buffer.name) or a))
    data_vars = {p.name for p in func.params if p.name in wanted} - local
    if not data_vars:
        return func
    analyzer = sym.Analyzer()
    return tvm_ffi.structural_map(func, (tirx.SeqStmt, lambda s: _pair_seq(s, data_vars, analyzer)))
