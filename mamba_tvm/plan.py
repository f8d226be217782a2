"""The planned program and the arena planner.

`plan_program` reads the lowered Relax `main` (a flat list of destination-passing kernel
calls) into a PlannedProgram: tensors (input, output, constant or arena) and an ordered
list of kernel calls on them. Every arena tensor, including each kernel's hoisted
workspace, gets an offset from a liveness-aware greedy-by-size placement (the algorithm of
TVM's former USMP `greedy_by_size`). The C emitter, the memory report and the profiler all
read this one object.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

import numpy as np
import tvm
from tvm import ir, relax, tirx

from .errors import CompileError
from .passes.kernel_workspace import WORKSPACE_ATTR

ALIGN = 16


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


@dataclass
class Tensor:
    name: str
    kind: str  # "input" | "output" | "const" | "arena"
    shape: tuple[int, ...]
    nbytes: int
    value: np.ndarray | None = None  # constants
    first_use: int = -1
    last_use: int = -1
    offset: int | None = None  # arena tensors
    producer: str = ""  # kernel that writes it (the DPS output) or owns it (a workspace)
    dtype: str = "float32"  # element type (an int32 workspace of the integer int8 kernel)
    note: str = ""  # constants: where the values come from and how they are laid out (a C comment)


@dataclass
class KernelCall:
    kernel: str
    args: list[str]


@dataclass
class PlannedProgram:
    tensors: dict[str, Tensor]
    calls: list[KernelCall]
    kernels: dict[str, tirx.PrimFunc]
    inputs: list[str]
    outputs: list[str]
    arena_bytes: int = 0
    unplanned_bytes: int = 0  # every arena tensor back to back: what no reuse would cost
    state: list[str] = field(default_factory=list)  # state parameters (streaming), kept by the caller
    copy_back: list[tuple[str, str]] = field(default_factory=list)  # (arena tensor, state) after the calls
    state_init: dict[str, float] = field(default_factory=dict)  # state -> its value before the first step (0 if absent)
    helpers: dict[str, tirx.PrimFunc] = field(default_factory=dict)  # scalar functions the kernels call (fast math)

    def arena_tensors(self) -> list[Tensor]:
        return [t for t in self.tensors.values() if t.kind == "arena"]

    @property
    def weights_bytes(self) -> int:
        return sum(t.nbytes for t in self.tensors.values() if t.kind == "const")

    @property
    def state_bytes(self) -> int:
        return sum(self.tensors[n].nbytes for n in self.state)


def _shape_bytes(ty) -> tuple[tuple[int, ...], int]:
    shape = tuple(int(s) for s in ty.shape)
    return shape, int(np.prod(shape, dtype=np.int64)) * tvm.DataType(str(ty.dtype)).bits // 8


class _Reader:
    """Walks the bindings of one lowered Relax function; aliases (reshape, tuples) share a tensor.

    `params` gives each parameter's name and kind ("input" or "state"). A function whose
    results are state (the streaming step) returns them in state order: a result that is
    already the state buffer (updated in place) needs nothing, any other is copied back
    after the last call.
    """

    def __init__(self, mod: tvm.IRModule, func: str, params: list[tuple[str, str]] | None, prefix: str,
                 returns_state: bool):
        self.mod, self.func, self.param_spec, self.prefix = mod, func, params, prefix
        self.returns_state = returns_state
        self.tensors: dict[str, Tensor] = {}
        self.calls: list[KernelCall] = []
        self.alias: dict = {}
        self.const_ids: dict = {}

    def _new(self, base: str) -> str:
        return f"{self.prefix}{base}"

    def read(self) -> PlannedProgram:
        main = self.mod[self.func]
        params = self.param_spec or [("input" if len(main.params) == 1 else f"input{i}", "input")
                                     for i in range(len(main.params))]
        if len(params) != len(main.params):
            raise CompileError(f"function '{self.func}' has {len(main.params)} parameters, expected {len(params)}")
        for p, (name, kind) in zip(main.params, params):
            shape, nbytes = _shape_bytes(p.ty)
            self.tensors[name] = Tensor(name, kind, shape, nbytes)
            self.alias[p] = name
        body = main.body
        for block in body.blocks:
            for b in block.bindings:
                self._binding(b.var, b.value)
        ret = self._ref(body.body)
        results = ret if isinstance(ret, list) else [ret]
        inputs = [n for n, k in params if k == "input"]
        state = [n for n, k in params if k == "state"]
        if self.returns_state:
            copy_back = []
            for src, dst in zip(results, state):
                if src != dst:
                    self.tensors[src].last_use = len(self.calls)  # read by the copy after the last call
                    copy_back.append((src, dst))
            program = PlannedProgram(self.tensors, self.calls, self._kernels(), inputs, [], state=state,
                                     copy_back=copy_back, helpers=self._helpers())
            return program
        for i, name in enumerate(results):
            t = self.tensors[name]
            if t.kind != "arena":
                raise CompileError(f"model output {i} is a {t.kind} tensor, expected a computed tensor")
            t.kind, t.name = "output", ("output" if len(results) == 1 else f"output{i}")
        renamed = {name: self.tensors[name].name for name in results}
        self.tensors = {t.name: t for t in self.tensors.values()}
        for call in self.calls:
            call.args = [renamed.get(a, a) for a in call.args]
        return PlannedProgram(self.tensors, self.calls, self._kernels(), inputs, [renamed[n] for n in results],
                              state=state, helpers=self._helpers())

    def _kernels(self) -> dict:
        return {c.kernel: self.mod[c.kernel] for c in self.calls}

    def _helpers(self) -> dict:
        from .codegen.plain_c import callees

        return {name: self.mod[gv] for f in self._kernels().values() for name, gv in callees(f).items()}

    def _binding(self, var, value):
        if isinstance(value, relax.Call) and isinstance(value.op, ir.GlobalVar):
            kernel = value.op.name_hint
            args = [self._ref(a) for a in value.args]
            func = self.mod[value.op]
            for ws in (func.attrs.get(WORKSPACE_ATTR, []) if func.attrs else []):
                buf = next(p for p in func.params if p.name == ws)
                shape, nbytes = _shape_bytes(buf.ty)
                name = self._new(f"{kernel}_{len(self.calls)}_{ws}")
                self.tensors[name] = Tensor(name, "arena", shape, nbytes, producer=kernel,
                                            dtype=str(buf.ty.dtype))
                args.append(name)
            if len(args) != len(func.params):
                raise CompileError(f"kernel '{kernel}' takes {len(func.params)} buffers, called with {len(args)}")
            self._name_constants(kernel, func, value.args, args)
            step = len(self.calls)
            self.calls.append(KernelCall(kernel, args))
            n_outputs = len(args) - len(func.attrs.get(WORKSPACE_ATTR, []) if func.attrs else [])
            self.tensors[args[n_outputs - 1]].producer = self.tensors[args[n_outputs - 1]].producer or kernel
            for a in args:
                t = self.tensors[a]
                if t.first_use < 0:
                    t.first_use = step
                t.last_use = step
            return
        if isinstance(value, relax.Call):
            op = value.op.name if isinstance(value.op, ir.Op) else str(value.op)
            if op == "relax.builtin.alloc_tensor":
                shape, nbytes = _shape_bytes(var.ty)
                name = self._new(f"t{len(self.tensors)}")
                self.tensors[name] = Tensor(name, "arena", shape, nbytes)
                self.alias[var] = name
            elif op == "relax.reshape":
                self.alias[var] = self._ref(value.args[0])
            else:
                raise CompileError(f"unsupported operation '{op}' left in the lowered graph")
        elif isinstance(value, relax.Var):
            self.alias[var] = self._ref(value)
        elif isinstance(value, relax.Tuple):
            self.alias[var] = [self._ref(f) for f in value.fields]
        elif isinstance(value, relax.TupleGetItem):
            self.alias[var] = self._ref(value.tuple_value)[value.index]
        else:
            raise CompileError(f"unsupported binding {type(value).__name__} in the lowered graph")

    def _name_constants(self, kernel: str, func, exprs, args: list) -> None:
        """Constants first read by this call take the kernel's (layer's) name and the role of
        the parameter they bind (`s_w_mamba_x_proj_weight`, `s_w_mamba_scan_step_dt_bias`), so a
        firmware engineer can tell which layer's weights a symbol in the map file holds."""
        for i, (expr, name) in enumerate(zip(exprs, args)):
            t = self.tensors[name]
            if t.kind != "const" or not re.fullmatch(rf"{self.prefix}w\d+", name):
                continue
            param = func.params[i].name if i < len(func.params) else ""
            role = param if param and not _GENERIC_PARAM.fullmatch(param) else ("weight" if len(t.shape) > 1 else "bias")
            base = self._new(f"w_{kernel}_{role}")
            new, k = base, 1
            while new in self.tensors:
                new, k = f"{base}_{k}", k + 1
            t.name = new
            t.note = _layout_note(kernel, role, param, t.shape, str(t.value.dtype) if t.value is not None else "")
            self.tensors = {(new if n == name else n): v for n, v in self.tensors.items()}
            self.const_ids[expr] = new
            args[i] = new

    def _ref(self, expr):
        if isinstance(expr, ir.Constant):
            if expr not in self.const_ids:
                arr = expr.value.numpy()
                name = self._new(f"w{len(self.const_ids)}")
                self.const_ids[expr] = name
                self.tensors[name] = Tensor(name, "const", tuple(arr.shape), arr.nbytes, value=arr)
            return self.const_ids[expr]
        if isinstance(expr, relax.Tuple):
            return [self._ref(f) for f in expr.fields]
        if isinstance(expr, relax.Var):
            return self.alias[expr]
        raise CompileError(f"unsupported expression {type(expr).__name__} in the lowered graph")


#: kernel parameter names that say nothing (matmul's second operand, fused-op parameters)
_GENERIC_PARAM = re.compile(r"param_\d+|p\d+|B|rxplaceholder(_\d+)?")
#: roles of the Mamba kernels' constants -> the state_dict tensor they come from
_ROLE_SOURCE = {"dt_weight": "dt_proj.weight", "dt_bias": "dt_proj.bias", "A": "A_log, stored as A = -exp(A_log)",
                "D": "D", "A_scale": "A_log's int8 scale per state column", "w_q": "weight, int8 per output row",
                "scale": "weight's int8 scale per output row"}


def _layout_note(kernel: str, role: str, param: str, shape: tuple, dtype: str = "") -> str:
    source = _ROLE_SOURCE.get(param, "")
    layout = ""
    if len(shape) == 3 and dtype == "uint32":
        layout = (f"stored as words of four int8 weights (out/{shape[2]}, in/4, {shape[2]}) = {shape}: bytes "
                  "w[k], w[k+2], w[k+1], w[k+3] for SXTB16 (relay_ops/linear_int8.py, smlad)")
    elif len(shape) == 3:
        layout = (f"stored (out/{shape[2]}, in, {shape[2]}) = {shape}: rows register-blocked by {shape[2]}, "
                  "each block transposed (passes/block_matvec.py)")
    elif len(shape) == 2 and param in ("B", "w_q") or (len(shape) == 2 and _GENERIC_PARAM.fullmatch(param or "")):
        layout = f"stored transposed (in, out) = {shape}"
    parts = [f"{role} of {kernel}"] + ([f"from {source}"] if source else []) + ([layout] if layout else [])
    return "; ".join(parts)


def greedy_by_size(tensors: list[Tensor]) -> int:
    """Place the largest tensors first, each at the lowest offset that overlaps no tensor
    live at the same time; returns the arena size."""
    placed: list[Tensor] = []
    for t in sorted(tensors, key=lambda t: (-t.nbytes, t.first_use)):
        busy = sorted((p.offset, p.offset + _align(p.nbytes)) for p in placed
                      if not (p.last_use < t.first_use or t.last_use < p.first_use))
        offset = 0
        for lo, hi in busy:
            if offset + _align(t.nbytes) <= lo:
                break
            offset = max(offset, hi)
        t.offset = offset
        placed.append(t)
    return max((t.offset + _align(t.nbytes) for t in placed), default=0)


def check_plan(program: PlannedProgram) -> None:
    """No two arena tensors live at the same time may overlap (guards the planner itself)."""
    ts = program.arena_tensors()
    for i, a in enumerate(ts):
        for b in ts[i + 1:]:
            live_together = not (a.last_use < b.first_use or b.last_use < a.first_use)
            overlap = a.offset < b.offset + b.nbytes and b.offset < a.offset + a.nbytes
            if live_together and overlap:
                raise CompileError(f"arena plan error: {a.name} and {b.name} overlap while both live")


def plan_program(lowered: tvm.IRModule, func: str = "main", params: list[tuple[str, str]] | None = None,
                 prefix: str = "", returns_state: bool = False) -> PlannedProgram:
    """Read one lowered Relax function into a PlannedProgram and place its arena tensors."""
    program = _Reader(lowered, func, params, prefix, returns_state).read()
    arena = program.arena_tensors()
    program.arena_bytes = greedy_by_size(arena)
    program.unplanned_bytes = sum(_align(t.nbytes) for t in arena)
    check_plan(program)
    return program


def model_fingerprint(programs: dict[str, PlannedProgram]) -> str:
    """16 hex digits identifying a compiled model: a hash of its weights and its plan (every
    tensor's shape, kind and offset, every kernel call). The firmware reports it, so the
    host can tell a device serving another model with the same shapes."""
    h = hashlib.sha256()
    for name in sorted(programs):
        p = programs[name]
        h.update(name.encode())
        for t in p.tensors.values():
            h.update(f"{t.name}:{t.kind}:{t.shape}:{t.offset}".encode())
            if t.value is not None:
                h.update(np.ascontiguousarray(t.value).tobytes())
        for c in p.calls:
            h.update(f"{c.kernel}({','.join(c.args)})".encode())
    return h.hexdigest()[:16]
