"""The Mamba operators as ONNX custom-domain nodes (domain `mamba_tvm`, version 1).

Why: ONNX has no selective scan; written out with standard ops it becomes a loop over time
that no importer turns back into one kernel. So export writes each Mamba operator as one
node of the `mamba_tvm` domain (schemas below, registered with onnx so the checker and
onnxscript accept them), the rest of the model as standard ONNX; import maps the nodes back
to the compiler's operators, and `REFERENCE_OPS` lets onnx's own reference evaluator run
such a model (float64 inside) for the self-check.

| node | inputs | output |
|---|---|---|
| mamba_tvm.CausalConv1dSiLU | x (B, L, C), weight (C, K), bias (C) | silu(causal depthwise conv) (B, L, C) |
| mamba_tvm.SelectiveScan | u (B, L, D), x_dbl (B, L, R+2N), dt_weight (D, R), dt_bias (D), A (D, N), D (D), z (B, L, D) | y (B, L, D) |

No attributes: every size is read from the input shapes (R = dt_weight's second dim, N = A's).
SelectiveScan computes delta = softplus(x_dbl[..., :R] dt_weight^T + dt_bias) (threshold 20),
h_t = exp(delta A) h_{t-1} + delta B u, y = (C . h_t + D u) silu(z), with B, C the next N columns
of x_dbl each (mamba_simple.Mamba semantics).
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx.defs import OpSchema

DOMAIN = "mamba_tvm"
VERSION = 1

_SCHEMAS = {
    "CausalConv1dSiLU": (["x", "weight", "bias"], ["y"],
                         "SiLU of a causal depthwise conv1d over time, input (B, L, C), weight (C, K)."),
    "SelectiveScan": (["u", "x_dbl", "dt_weight", "dt_bias", "A", "D", "z"], ["y"],
                      "Mamba's selective scan with its discretization, gated by silu(z)."),
}


def register_schemas() -> None:
    """Make the custom nodes known to onnx (idempotent)."""
    for name, (inputs, outputs, doc) in _SCHEMAS.items():
        try:
            onnx.defs.get_schema(name, VERSION, DOMAIN)
            continue
        except onnx.defs.SchemaError:
            pass
        param = OpSchema.FormalParameter
        onnx.defs.register_schema(OpSchema(
            name, DOMAIN, VERSION, doc=doc, inputs=[param(i, "T") for i in inputs],
            outputs=[param(o, "T") for o in outputs], type_constraints=[("T", ["tensor(float)"], "float32")]))


def _softplus(x):
    return np.where(x > 20.0, x, np.log1p(np.exp(np.minimum(x, 20.0))))


def _silu(x):
    return x / (1.0 + np.exp(-x))


def causal_conv1d_silu(x, weight, bias):
    x, weight, bias = (np.asarray(a, np.float64) for a in (x, weight, bias))
    k, length = weight.shape[1], x.shape[1]
    padded = np.concatenate([np.zeros((x.shape[0], k - 1, x.shape[2])), x], axis=1)
    return _silu(bias + sum(weight[:, j] * padded[:, j:j + length] for j in range(k)))


def selective_scan(u, x_dbl, dt_weight, dt_bias, A, D, z):
    u, x_dbl, dt_weight, dt_bias, A, D, z = (np.asarray(a, np.float64) for a in (u, x_dbl, dt_weight, dt_bias, A, D, z))
    r, n = dt_weight.shape[1], A.shape[1]
    delta = _softplus(x_dbl[..., :r] @ dt_weight.T + dt_bias)
    Bm, Cm = x_dbl[..., r:r + n], x_dbl[..., r + n:]
    h = np.zeros((u.shape[0], u.shape[2], n))
    y = np.empty_like(u)
    for t in range(u.shape[1]):
        h = np.exp(delta[:, t, :, None] * A) * h + (delta[:, t] * u[:, t])[..., None] * Bm[:, t, None, :]
        y[:, t] = np.einsum("bdn,bn->bd", h, Cm[:, t]) + D * u[:, t]
    return y * _silu(z)


def _reference_ops():
    from onnx.reference.op_run import OpRun

    class CausalConv1dSiLU(OpRun):
        op_domain = DOMAIN

        def _run(self, x, weight, bias):
            return (causal_conv1d_silu(x, weight, bias).astype(np.float32),)

    class SelectiveScan(OpRun):
        op_domain = DOMAIN

        def _run(self, u, x_dbl, dt_weight, dt_bias, A, D, z):
            return (selective_scan(u, x_dbl, dt_weight, dt_bias, A, D, z).astype(np.float32),)

    return [CausalConv1dSiLU, SelectiveScan]


def run_reference(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    """The ONNX model's outputs on x (N, T, F), by onnx's reference evaluator with the Mamba nodes
    in float64 numpy (onnxruntime has no kernels for them), one input at a time."""
    from onnx.reference import ReferenceEvaluator

    session = ReferenceEvaluator(model, new_ops=_reference_ops())
    name = model.graph.input[0].name
    return np.stack([np.asarray(session.run(None, {name: xi[None].astype(np.float32)})[0]).reshape(-1)
                     for xi in np.asarray(x, np.float32)])
