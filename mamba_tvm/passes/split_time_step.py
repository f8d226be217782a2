"""SplitTimeStep: a whole-sequence graph -> `step` (one frame, states updated) + `finish` (logits).

Why: a Mamba classifier is a recurrence followed by a reduction over time. Run layer by layer
it needs (T, d) activations; run one frame at a time it needs only the recurrence's state
(the conv windows, the scan states, the running pooled values) and one frame's vectors. This
pass finds that split in any graph the front end imported, instead of relying on
hand-written step modules:

- Every tensor computed from the input is followed with its time axis (the input's axis 1,
  moved by transposes and reshapes). Ops that act on each frame separately (elementwise
  ops, matmuls against constants, norms and reductions over other axes, slices and splits
  on other axes) are re-emitted on one frame: the time axis has length 1 in `step`.
- Ops that carry information forward in time become state: the Mamba causal conv and
  selective scan (their one-step operators, state updated in place), and a Conv1d over
  time that is causal (left padding K-1, output cut to the first T frames; its state is
  the last K-1 input frames).
- A reduction over time ends the per-frame part: mean and sum accumulate into a state,
  max/min keep a running extreme, taking the last frame keeps it. `finish` turns those
  states into the reduced tensors (mean: times 1/steps) and runs everything after them.
- Anything else that touches the time axis (attention-like matmuls, a non-causal conv, a
  per-frame use of a value reduced over time, a per-frame output) cannot be split: the pass
  raises TimeSplitError naming the operator and the layer that computed it, and the model
  still compiles layer by layer.

The `step` function carries its state layout in attributes: `mamba_tvm.state_names` (its
parameters after the frame, in order, which are also its results) and
`mamba_tvm.state_init` (the value each state starts from: 0, or -inf/+inf for max/min).
`finish` takes the reduction states it needs and `inv_steps` (1/number of frames stepped).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import tvm
from tvm import ir, relax

from relay_ops.mamba_ops import mamba_call, op_name, operands

from ..errors import TimeSplitError
from ..importer import layer_of

STATE_NAMES = "mamba_tvm.state_names"
STATE_INIT = "mamba_tvm.state_init"

ELEMENTWISE = {
    "relax.add", "relax.subtract", "relax.multiply", "relax.divide", "relax.power", "relax.maximum", "relax.minimum",
    "relax.floor_divide", "relax.exp", "relax.log", "relax.sqrt", "relax.rsqrt", "relax.tanh", "relax.sigmoid",
    "relax.negative", "relax.abs", "relax.square", "relax.clip", "relax.astype", "relax.erf", "relax.sin",
    "relax.cos", "relax.floor", "relax.ceil", "relax.round", "relax.sign", "relax.where", "relax.nn.silu",
    "relax.nn.relu", "relax.nn.gelu", "relax.nn.gelu_tanh", "relax.nn.leakyrelu", "relax.nn.softplus",
    "relax.nn.selu", "relax.nn.prelu", "relax.greater", "relax.less", "relax.greater_equal", "relax.less_equal",
    "relax.equal", "relax.not_equal", "relax.zeros_like", "relax.ones_like", "relax.hardsigmoid", "relax.nn.relu6",
}
REDUCTIONS = {"relax.mean": "mean", "relax.sum": "sum", "relax.max": "max", "relax.min": "min"}
NORMS = {"relax.nn.layer_norm", "relax.nn.rms_norm", "relax.nn.group_norm"}


@dataclass
class State:
    name: str
    shape: tuple[int, ...]
    init: float  # 0.0, -inf (running max) or +inf (running min)
    reduction: str | None = None  # mean|sum|max|min|last for the states finish reads


def _ints(expr) -> list[int]:
    if isinstance(expr, relax.Tuple):
        return [int(f.value) for f in expr.fields]
    if isinstance(expr, relax.ShapeExpr):
        return [int(v) for v in expr.values]
    return [int(v) for v in expr]


def _shape(expr) -> list[int]:
    return [int(s) for s in expr.ty.shape]


def _norm_axes(axes, ndim: int) -> list[int]:
    return sorted(a % ndim for a in axes)


def _dtype_or(dtype, default: str) -> str:
    """An op's out_dtype attribute, or `default` where the importer left it unset (ONNX: None)."""
    text = "" if dtype is None else str(dtype)
    return text if text not in ("", "None", "void") else default


class _Splitter:
    """Reads main's bindings once (what is per frame, what is state, what is after the
    reductions), then emits `step` and `finish` with a BlockBuilder."""

    def __init__(self, mod: tvm.IRModule):
        self.mod = mod
        self.main = mod["main"]
        if len(self.main.params) != 1:
            raise TimeSplitError(f"time-step fusion needs one input tensor, the model takes {len(self.main.params)}")
        (self.x,) = self.main.params
        shape = _shape(self.x)
        if len(shape) != 3 or shape[0] != 1:
            raise TimeSplitError(f"time-step fusion needs a (1, T, features) input, the model takes {tuple(shape)}")
        self.T = shape[1]
        blocks = self.main.body.blocks
        if len(blocks) != 1 or not isinstance(blocks[0], relax.DataflowBlock):
            raise TimeSplitError("time-step fusion needs the model as one dataflow block (no control flow)")
        self.bindings = list(blocks[0].bindings)
        self.time: dict = {self.x: 1}  # frame var -> its time axis
        self.extra: dict = {}  # frame var -> future frames it carries (a conv output before its causal cut)
        self.reduced: dict = {}  # var -> reduction state (the var is computed in finish)
        self.after: set = set()  # vars computed from reduced values (finish)
        self.states: list[State] = []
        self.stateful: dict = {}  # var -> State of the op (conv window / scan state)
        self.names: dict = {}

    # ---- phase 1: classify ----------------------------------------------------------------

    def where(self, var) -> str:
        return f"'{var.name}'" if not var.name.startswith(("lv", "gv")) else "the model's forward"

    def fail(self, var, what: str):
        raise TimeSplitError(f"{what} (at {self.where(var)}): this model cannot be split into time steps; "
                             "compile it with --fusion layer (whole-sequence, no streaming)")

    def _state_name(self, var, suffix: str) -> str:
        """`<layer>_<what>` (mamba_conv_window, mamba_scan_state); reductions in the model's own
        forward are `pooled_<kind>`."""
        base = layer_of(var.name) or "pooled"
        name, i = f"{base}_{suffix}", 1
        while name in self.names:
            name, i = f"{base}_{suffix}{i}", i + 1
        self.names[name] = True
        return name

    def classify(self):
        for b in self.bindings:
            self._classify(b.var, b.value)
        ret = self.main.body.body
        outs = ret.fields if isinstance(ret, relax.Tuple) else [ret]
        for o in outs:
            if isinstance(o, relax.Var) and o in self.time:
                self.fail(o, "the model returns a per-frame tensor")

    def _frame_args(self, args):
        found = []
        for a in args:
            if isinstance(a, relax.Tuple):
                found += self._frame_args(a.fields)
            elif isinstance(a, relax.Var) and a in self.time:
                found.append(a)
        return found

    def _after_args(self, args):
        found = []
        for a in args:
            if isinstance(a, relax.Tuple):
                found += self._after_args(a.fields)
            elif isinstance(a, relax.Var) and (a in self.reduced or a in self.after):
                found.append(a)
        return found

    def _classify(self, var, value):
        if isinstance(value, relax.TupleGetItem):
            src = value.tuple_value
            if src in self.time:
                self.time[var] = self.time[src][value.index] if isinstance(self.time[src], list) else self.time[src]
                if isinstance(self.time[var], list):
                    self.fail(var, "nested tuples of per-frame tensors")
            elif src in self.after or src in self.reduced:
                self.after.add(var)
            return
        if isinstance(value, relax.Tuple):
            frames = self._frame_args(value.fields)
            if frames:
                self.time[var] = [self.time.get(f) for f in value.fields]
            elif self._after_args(value.fields):
                self.after.add(var)
            return
        if isinstance(value, relax.Var):
            for table in (self.time, self.extra):
                if value in table:
                    table[var] = table[value]
            if value in self.after or value in self.reduced:
                self.after.add(var)
            return
        if not isinstance(value, relax.Call):
            return
        args = operands(value) if op_name(value) else list(value.args)
        frames, later = self._frame_args(args), self._after_args(args)
        if frames and later:
            self.fail(var, f"operator {self._op(value)} combines a per-frame tensor with one reduced over time")
        if later:
            self.after.add(var)
            return
        if not frames:
            return  # constants only: emitted wherever it is used
        axis = self._time_axis(var, value, frames)
        if axis is not None:  # None: a reduction over time, computed by finish
            self.time[var] = axis

    @staticmethod
    def _op(call) -> str:
        name = op_name(call)
        return f"mamba.{name}" if name else getattr(call.op, "name", str(call.op))

    def _time_axis(self, var, call, frames) -> int:
        """The time axis of `var`, or a state / reduction recorded for it; fails for ops that mix time."""
        op = self._op(call)
        args = list(call.args)
        out_rank = len(var.ty.shape) if isinstance(var.ty, relax.TensorType) else None
        extra = max((self.extra.get(f, 0) for f in frames), default=0)

        if op in ELEMENTWISE:
            axes = {self.time[f] + out_rank - len(_shape(f)) for f in frames}
            if len(axes) != 1:
                self.fail(var, f"operator {op} combines tensors whose time axes differ")
            (ta,) = axes
            for a in args:
                if isinstance(a, (relax.Var, ir.Constant)) and a not in self.time and isinstance(a.ty, relax.TensorType):
                    shape = _shape(a)
                    pos = ta - (out_rank - len(shape))
                    if 0 <= pos < len(shape) and shape[pos] != 1:
                        self.fail(var, f"operator {op} combines frames with a constant that varies over time")
            if extra:
                self.extra[var] = extra
            return ta
        if extra and op != "relax.strided_slice":
            self.fail(var, f"operator {op} reads a convolution's output beyond the causal window")

        if op == "relax.matmul":
            a, b = args
            if b in self.time:
                self.fail(var, "a matmul of two time-dependent tensors (attention-like) mixes time steps")
            ta = self.time[a]
            if ta == len(_shape(a)) - 1:
                self.fail(var, "a matmul contracts the time axis")
            if len(_shape(b)) > 2:
                self.fail(var, "a matmul against a batched constant")
            return ta + out_rank - len(_shape(a))
        if op == "relax.permute_dims":
            axes = call.attrs.axes
            axes = list(range(len(_shape(args[0])) - 1, -1, -1)) if axes is None else [int(x) for x in axes]
            return axes.index(self.time[args[0]])
        if op == "relax.reshape":
            return self._reshape_axis(var, args[0], _shape(var))
        if op == "relax.broadcast_to":
            ta = self.time[args[0]] + out_rank - len(_shape(args[0]))
            return ta
        if op == "relax.squeeze":
            ta, rank = self.time[args[0]], len(_shape(args[0]))
            axes = list(range(rank)) if call.attrs.axis is None else _norm_axes(call.attrs.axis, rank)
            if call.attrs.axis is None and _shape(args[0])[ta] == 1 or ta in axes:
                self.fail(var, "a squeeze of the time axis")
            return ta - sum(1 for a in axes if a < ta)
        if op == "relax.expand_dims":
            ta = self.time[args[0]]
            for a in sorted(_norm_axes(call.attrs.axis, out_rank)):
                if a <= ta:
                    ta += 1
            return ta
        if op in ("relax.split",):
            ta = self.time[args[0]]
            if int(call.attrs.axis) % len(_shape(args[0])) == ta:
                self.fail(var, "a split along the time axis")
            return [ta] * len(var.ty.fields)
        if op == "relax.strided_slice":
            src = args[0]
            ta, axes = self.time[src], _norm_axes(_ints(args[1]), len(_shape(src)))
            if ta in axes:
                i = axes.index(ta)
                begin, end = _ints(args[2])[i], _ints(args[3])[i]
                strides = _ints(args[4])[i] if len(args) > 4 else 1
                if not (begin == 0 and end >= self.T and strides == 1):
                    self.fail(var, "a slice along the time axis")
                # the causal cut of a conv's output: back to T frames
            return ta
        if op == "relax.take":
            src, idx = args[0], args[1]
            ta = self.time[src]
            if int(call.attrs.axis) % len(_shape(src)) == ta:
                if isinstance(idx, ir.Constant) and idx.value.numpy().size == 1 and \
                        int(idx.value.numpy().reshape(-1)[0]) % self.T == self.T - 1:
                    return self._reduce(var, src, [ta], keepdims=False, kind="last")
                self.fail(var, "indexing along the time axis (only the last frame can be taken)")
            if idx in self.time:
                self.fail(var, "a take with per-frame indices")
            return ta + out_rank - len(_shape(src))
        if op == "relax.concat":
            ta = {self.time[f] for f in frames}
            fields = args[0].fields
            if len(ta) != 1 or len(frames) != len(fields):
                self.fail(var, "a concat of per-frame tensors with constants")
            (ta,) = ta
            if int(call.attrs.axis) % out_rank == ta:
                self.fail(var, "a concat along the time axis")
            return ta
        if op in REDUCTIONS:
            src, rank = args[0], len(_shape(args[0]))
            ta = self.time[src]
            axes = list(range(rank)) if call.attrs.axis is None else _norm_axes(call.attrs.axis, rank)
            if ta in axes:
                return self._reduce(var, src, axes, bool(call.attrs.keepdims), REDUCTIONS[op])
            return ta - (0 if call.attrs.keepdims else sum(1 for a in axes if a < ta))
        if op in NORMS:
            ta, rank = self.time[args[0]], len(_shape(args[0]))
            if ta in _norm_axes(call.attrs.axes, rank):
                self.fail(var, f"{op} normalizes over the time axis")
            return ta
        if op in ("relax.nn.softmax", "relax.nn.log_softmax"):
            ta = self.time[args[0]]
            if int(call.attrs.axis) % len(_shape(args[0])) == ta:
                self.fail(var, f"{op} over the time axis")
            return ta
        if op == "relax.nn.conv1d":
            return self._conv1d(var, call)
        if op == "mamba.causal_conv1d_silu":
            u = operands(call)[0]
            if self.time[u] != 1:
                self.fail(var, "mamba.causal_conv1d_silu on a tensor whose time axis is not axis 1")
            _, _, channels = _shape(u)
            kernel = _shape(operands(call)[1])[1]
            self.stateful[var] = self._new_state(var, "conv_window", (1, channels, kernel - 1), 0.0)
            return 1
        if op == "mamba.selective_scan":
            ops = operands(call)
            if any(self.time.get(a) != 1 for a in (ops[0], ops[1], ops[6])):
                self.fail(var, "mamba.selective_scan on tensors whose time axis is not axis 1")
            d_inner, d_state = _shape(ops[4])
            self.stateful[var] = self._new_state(var, "scan_state", (1, d_inner, d_state), 0.0)
            return 1
        self.fail(var, f"operator {op} is not known to act on each time step separately")

    def _reshape_axis(self, var, src, new_shape) -> int:
        old_shape, ta = _shape(src), self.time[src]
        before = math.prod(old_shape[:ta])
        for j, d in enumerate(new_shape):
            if math.prod(new_shape[:j]) == before and d == old_shape[ta] and \
                    math.prod(new_shape[j + 1:]) == math.prod(old_shape[ta + 1:]):
                return j
        self.fail(var, f"a reshape {tuple(old_shape)} -> {tuple(new_shape)} that merges the time axis with others")

    def _conv1d(self, var, call) -> int:
        data, weight = call.args
        attrs = call.attrs
        if str(attrs.data_layout) != "NCW" or str(attrs.kernel_layout) != "OIW":
            self.fail(var, "a conv1d in a layout other than NCW/OIW")
        if self.time[data] != 2:
            self.fail(var, "a conv1d whose spatial axis is not the time axis")
        if weight in self.time:
            self.fail(var, "a conv1d with time-dependent weights")
        kernel = _shape(weight)[2]
        pad_left, pad_right = (int(p) for p in attrs.padding)
        if [int(s) for s in attrs.strides] != [1] or [int(d) for d in attrs.dilation] != [1]:
            self.fail(var, "a strided or dilated conv1d over time")
        if pad_left != kernel - 1:
            self.fail(var, f"a conv1d over time that is not causal (padding {pad_left} before the frames, "
                      f"kernel {kernel}: a causal conv pads kernel-1 before them and cuts the output to T frames)")
        self.extra[var] = pad_left + pad_right - kernel + 1
        channels = _shape(data)[1]
        self.stateful[var] = self._new_state(var, "conv_window", (1, channels, kernel - 1), 0.0)
        return 2

    def _new_state(self, var, suffix, shape, init, reduction=None) -> State:
        state = State(self._state_name(var, suffix), tuple(shape), init, reduction)
        if math.prod(shape) > 0:
            self.states.append(state)
        return state

    def _reduce(self, var, src, axes, keepdims, kind):
        shape = _shape(src)
        size = math.prod(1 if a in axes else d for a, d in enumerate(shape))  # stored flat
        init = {"max": -math.inf, "min": math.inf}.get(kind, 0.0)
        self.reduced[var] = (self._new_state(var, kind, (size,), init, kind), src, axes, keepdims)
        return None

    # ---- phase 2: step ----------------------------------------------------------------------

    def frame_ty(self, ty, ta):
        shape = list(int(s) for s in ty.shape)
        shape[ta] = 1
        return relax.TensorType(shape, ty.dtype)

    def build(self) -> tvm.IRModule:
        self.classify()
        bb = relax.BlockBuilder(self.mod)
        self._emit_step(bb)
        self._emit_finish(bb)
        out = bb.get()
        return tvm.IRModule({gv: f for gv, f in out.functions_items() if gv.name_hint != "main"}, attrs=out.attrs)

    def _emit_step(self, bb):
        frame = relax.Var("frame", self.frame_ty(self.x.ty, 1))
        params = [relax.Var(s.name, relax.TensorType(s.shape, "float32")) for s in self.states]
        state_param = {s.name: p for s, p in zip(self.states, params)}
        m = {self.x: frame}
        new_state = {}
        with bb.function("step", [frame, *params], attrs={
                STATE_NAMES: [s.name for s in self.states], STATE_INIT: [float(s.init) for s in self.states]},
                pure=True):
            with bb.dataflow():
                for b in self.bindings:
                    var, value = b.var, b.value
                    if var in self.reduced:
                        state, src, axes, keepdims = self.reduced[var]
                        new_state[state.name] = self._accumulate(bb, state, state_param[state.name], m[src], axes)
                        continue
                    if var not in self.time:
                        continue
                    m[var] = self._emit_frame_op(bb, var, value, m, state_param, new_state)
                outs = [new_state.get(s.name, state_param[s.name]) for s in self.states]
                gv = bb.emit_output(relax.Tuple(outs))
            bb.emit_func_output(gv)

    def _arg(self, bb, a, m):
        if isinstance(a, relax.Tuple):
            return relax.Tuple([self._arg(bb, f, m) for f in a.fields])
        if isinstance(a, relax.Var):
            if a in m:
                return m[a]
            return self._const_value(bb, a, m)
        return a

    def _const_value(self, bb, var, m):
        """A binding computed from constants only, re-emitted in the function that uses it."""
        binding = next((b for b in self.bindings if b.var.same_as(var)), None)
        if binding is None:
            raise TimeSplitError(f"internal: '{var.name}' is neither per-frame, reduced nor constant")
        value = binding.value
        if isinstance(value, relax.Call):
            value = relax.Call(value.op, [self._arg(bb, a, m) for a in value.args], value.attrs, value.ty_args)
        elif isinstance(value, relax.Tuple):
            value = relax.Tuple([self._arg(bb, f, m) for f in value.fields])
        elif isinstance(value, relax.TupleGetItem):
            value = relax.TupleGetItem(self._arg(bb, value.tuple_value, m), value.index)
        m[var] = bb.emit(value, name_hint=var.name)
        return m[var]

    def _emit_frame_op(self, bb, var, value, m, state_param, new_state):
        if isinstance(value, relax.TupleGetItem):
            return bb.emit(relax.TupleGetItem(m[value.tuple_value], value.index), name_hint=var.name)
        if isinstance(value, relax.Var):
            return m[value]
        if isinstance(value, relax.Tuple):
            return bb.emit(relax.Tuple([self._arg(bb, f, m) for f in value.fields]), name_hint=var.name)
        op = self._op(value)
        if op == "mamba.causal_conv1d_silu":
            u, w, b = (self._arg(bb, a, m) for a in operands(value))
            state = self.stateful[var]
            channels = _shape(u)[2]
            u2 = bb.emit(relax.op.reshape(u, (1, channels)))
            res = bb.emit(mamba_call("causal_conv1d_silu_step", [u2, state_param[state.name], w, b],
                                     relax.TupleType([u2.ty, state_param[state.name].ty])), name_hint=var.name)
            new_state[state.name] = bb.emit(relax.TupleGetItem(res, 1))
            return bb.emit(relax.op.reshape(relax.TupleGetItem(res, 0), (1, 1, channels)), name_hint=var.name)
        if op == "mamba.selective_scan":
            ops = [self._arg(bb, a, m) for a in operands(value)]
            state = self.stateful[var]
            d_inner = _shape(ops[0])[2]
            n_dbl = _shape(ops[1])[2]
            u = bb.emit(relax.op.reshape(ops[0], (1, d_inner)))
            x_dbl = bb.emit(relax.op.reshape(ops[1], (1, n_dbl)))
            z = bb.emit(relax.op.reshape(ops[6], (1, d_inner)))
            args = [u, x_dbl, *ops[2:6], z, state_param[state.name], *ops[7:]]
            res = bb.emit(mamba_call("selective_scan_step", args, relax.TupleType([u.ty, state_param[state.name].ty])),
                          name_hint=var.name)
            new_state[state.name] = bb.emit(relax.TupleGetItem(res, 1))
            return bb.emit(relax.op.reshape(relax.TupleGetItem(res, 0), (1, 1, d_inner)), name_hint=var.name)
        if op == "relax.nn.conv1d":
            data, weight = (self._arg(bb, a, m) for a in value.args)
            state = self.stateful[var]
            kernel = _shape(weight)[2]
            window = bb.emit(relax.op.concat([state_param[state.name], data], axis=2))
            attrs = value.attrs
            out = bb.emit(relax.op.nn.conv1d(window, weight, strides=1, padding=0, dilation=1,
                                             groups=int(attrs.groups), data_layout="NCW", kernel_layout="OIW",
                                             out_dtype=_dtype_or(attrs.out_dtype, "float32")), name_hint=var.name)
            if kernel > 1:
                new_state[state.name] = bb.emit(relax.op.strided_slice(window, axes=[2], begin=[1], end=[kernel]))
            return out
        args = [self._arg(bb, a, m) for a in value.args]
        if op == "relax.reshape":
            args[1] = relax.ShapeExpr(self._frame_shape(var))
        elif op == "relax.broadcast_to":
            args[1] = relax.ShapeExpr(self._frame_shape(var))
        elif op == "relax.strided_slice":
            ta = self.time[value.args[0]]
            axes = _norm_axes(_ints(value.args[1]), len(_shape(value.args[0])))
            if ta in axes:  # the full (or causal-cut) time range: one frame in, one frame out
                return args[0]
        return bb.emit(relax.Call(value.op, args, value.attrs, value.ty_args), name_hint=var.name)

    def _frame_shape(self, var) -> list[int]:
        shape = _shape(var)
        shape[self.time[var]] = 1
        return shape

    def _accumulate(self, bb, state, acc, frame, axes):
        other = [a for a in axes if a != self.time_of_source(state)]
        value = frame
        if other:
            reducer = {"mean": relax.op.mean, "sum": relax.op.sum, "max": relax.op.max, "min": relax.op.min,
                       "last": None}[state.reduction]
            value = bb.emit(reducer(frame, axis=other, keepdims=True))
        # updated in place (relay_ops/state_update.py): no new tensor to copy back after the step
        kind = {"mean": "add", "sum": "add", "max": "max", "min": "min", "last": "copy"}[state.reduction]
        value = bb.emit(relax.op.reshape(value, state.shape))
        return bb.emit(mamba_call(f"state_update_{kind}", [acc, value], acc.ty), name_hint=state.name)

    def time_of_source(self, state) -> int:
        for var, (s, src, axes, keepdims) in self.reduced.items():
            if s is state:
                return self.time[src]
        raise KeyError(state.name)

    # ---- phase 3: finish --------------------------------------------------------------------

    def _emit_finish(self, bb):
        used = [s for s in self.states if s.reduction]
        params = {s.name: relax.Var(s.name, relax.TensorType(s.shape, "float32")) for s in used}
        inv_steps = relax.Var("inv_steps", relax.TensorType((1,), "float32"))
        m = {}
        with bb.function("finish", [*params.values(), inv_steps], pure=True):
            with bb.dataflow():
                for b in self.bindings:
                    var, value = b.var, b.value
                    if var in self.reduced:
                        state, src, axes, keepdims = self.reduced[var]
                        val = params[state.name]
                        if state.reduction == "mean":
                            val = bb.emit(relax.op.multiply(val, inv_steps))
                        m[var] = bb.emit(relax.op.reshape(val, _shape(var)), name_hint=var.name)
                    elif var in self.after:
                        if isinstance(value, relax.Call):
                            new = relax.Call(value.op, [self._arg(bb, a, m) for a in value.args], value.attrs,
                                             value.ty_args)
                        elif isinstance(value, relax.Tuple):
                            new = relax.Tuple([self._arg(bb, f, m) for f in value.fields])
                        elif isinstance(value, relax.TupleGetItem):
                            new = relax.TupleGetItem(self._arg(bb, value.tuple_value, m), value.index)
                        else:
                            new = self._arg(bb, value, m)
                        m[var] = bb.emit(new, name_hint=var.name)
                ret = self.main.body.body
                out = self._arg(bb, ret, m)
                gv = bb.emit_output(out)
            bb.emit_func_output(gv)


def split_time_step(mod: tvm.IRModule) -> tvm.IRModule:
    """`main` -> `step` + `finish` (module pass body; TimeSplitError when the graph mixes time)."""
    return _Splitter(mod).build()


@tvm.transform.module_pass(opt_level=0, name="SplitTimeStep")
def SplitTimeStep(mod: tvm.IRModule, _ctx) -> tvm.IRModule:
    return split_time_step(mod)
