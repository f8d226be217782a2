"""An independent float64 reference of the TinyMamba classifier, in numpy, for every form the
compiler emits. It shares no code with mamba_tvm/ or relay_ops/ (never import them here):
a bug in the compiler's own PyTorch reference, its custom ops or its quantizer cannot reach
both sides of a test through this file.

Model (mamba_simple.Mamba semantics, MambaLite-Micro's TinyMamba): input (B, T, F) ->
linear_in -> Mamba block(s) -> mean over time -> classifier. One block:
    x | z = in_proj(h)                                   (the two halves of in_proj's rows)
    u     = silu(causal depthwise conv(x) + conv bias)   (taps oldest first, zero history)
    dt | B | C = x_proj(u)
    delta = softplus(dt_proj(dt))                        (torch's threshold: linear above 20)
    A     = -exp(A_log)
    h_t   = exp(delta * A) * h_{t-1} + delta * B * u     (h_0 = 0, per channel d_state floats)
    y     = (C . h_t + D * u) * silu(z)
    out   = out_proj(y)

Forms:
- `sequence_logits`: the whole sequence at once (the conv over a zero-padded sequence, the
  scan as a loop over time). Checks `--fusion timestep` and `--fusion layer` builds.
- `stream_logits`: its own frame-by-frame recurrence with an explicit conv window (the last
  d_conv inputs of each channel) and scan state per block, and a running pooled sum; the
  logits are classifier(pooled / frames). Checks `--mode stream` builds at any length.
- `int8_params`: the documented int8 scheme (docs/architecture.md, README), written from the
  documentation. First the exact folding the compiler applies (`fold_linear_layers`), then
  symmetric quantization: scale = amax / 127 (stored as float32 in the C, so rounded to
  float32 here), q = round half to even (w / scale), clipped to +-127, dequantized as q * scale.
  Quantized, as in the product: every weight matrix of the per-frame part that remains after
  folding — in_proj (per output row, so its x and z halves are quantized the same whole or
  split), x_proj, out_proj where it was not folded, linear_in where it was not folded —
  with one scale per output row, and A = -exp(A_log) (one scale per state column: its
  columns share a magnitude). Kept float: the classifier (after the pooling: it runs once
  per inference), conv1d weight and bias, dt_proj weight and bias, D and every bias. Either
  form then runs on the dequantized parameters in float64.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

#: arrays an .npz fixture carries beside the state_dict
NON_WEIGHTS = ("sample_input", "mambalite_c_logits")


@dataclass(frozen=True)
class Block:
    W_in: np.ndarray     # (2 * d_inner, d_model): rows of x, then rows of z
    conv_w: np.ndarray   # (d_inner, d_conv), oldest tap first
    conv_b: np.ndarray   # (d_inner,)
    W_x: np.ndarray      # (dt_rank + 2 * d_state, d_inner): rows of dt, B, C
    W_dt: np.ndarray     # (d_inner, dt_rank)
    b_dt: np.ndarray     # (d_inner,)
    A: np.ndarray        # (d_inner, d_state), = -exp(A_log)
    D: np.ndarray        # (d_inner,)
    W_out: np.ndarray | None  # (d_model, d_inner); None: folded away (the block outputs y itself)
    b_in: np.ndarray | None = None  # (2 * d_inner,): in_proj bias (made by folding linear_in into it)

    @property
    def d_inner(self) -> int:
        return self.A.shape[0]

    @property
    def d_state(self) -> int:
        return self.A.shape[1]

    @property
    def dt_rank(self) -> int:
        return self.W_dt.shape[1]


@dataclass(frozen=True)
class Params:
    W_lin: np.ndarray | None  # None: folded into the first block's in_proj
    b_lin: np.ndarray | None
    blocks: tuple[Block, ...]
    W_cls: np.ndarray
    b_cls: np.ndarray


def _f64(a) -> np.ndarray:
    a = a.detach().cpu().numpy() if hasattr(a, "detach") else a
    return np.array(a, dtype=np.float64)


def params_from_state(state: dict) -> Params:
    """A TinyMamba state_dict (numpy arrays or torch tensors; one block as `mamba.*`, several
    as `mamba.0.*`, `mamba.1.*`, ...) -> float64 parameters."""
    w = {k: _f64(v) for k, v in state.items() if k not in NON_WEIGHTS}
    if "mamba.A_log" in w:
        prefixes = ["mamba."]
    else:
        prefixes = []
        while f"mamba.{len(prefixes)}.A_log" in w:
            prefixes.append(f"mamba.{len(prefixes)}.")
    blocks = tuple(Block(W_in=w[p + "in_proj.weight"], conv_w=w[p + "conv1d.weight"][:, 0, :],
                         conv_b=w[p + "conv1d.bias"], W_x=w[p + "x_proj.weight"], W_dt=w[p + "dt_proj.weight"],
                         b_dt=w[p + "dt_proj.bias"], A=-np.exp(w[p + "A_log"]), D=w[p + "D"],
                         W_out=w[p + "out_proj.weight"]) for p in prefixes)
    assert blocks, "no Mamba block in the state_dict"
    return Params(w["linear_in.weight"], w["linear_in.bias"], blocks, w["classifier.weight"], w["classifier.bias"])


def load_npz(path: str | Path) -> tuple[Params, dict]:
    """A fixture .npz -> (parameters, its non-weight arrays)."""
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    return params_from_state(arrays), {k: arrays[k] for k in NON_WEIGHTS if k in arrays}


def softplus(x: np.ndarray) -> np.ndarray:
    """torch.nn.functional.softplus (beta 1, threshold 20): x itself above 20."""
    return np.where(x > 20.0, x, np.log1p(np.exp(np.minimum(x, 20.0))))


def silu(x: np.ndarray) -> np.ndarray:
    return x / (1.0 + np.exp(-x))


def _batched(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x[None] if x.ndim == 2 else x


# ---- whole sequence -----------------------------------------------------------------------

def _block_sequence(blk: Block, h: np.ndarray) -> np.ndarray:
    batch, length, _ = h.shape
    di, n, r = blk.d_inner, blk.d_state, blk.dt_rank
    xz = _in_proj(blk, h)
    x, z = xz[..., :di], xz[..., di:]
    k = blk.conv_w.shape[1]
    padded = np.concatenate([np.zeros((batch, k - 1, di)), x], axis=1)
    u = silu(blk.conv_b + sum(blk.conv_w[:, j] * padded[:, j:j + length] for j in range(k)))
    x_dbl = u @ blk.W_x.T
    dt, Bm, Cm = x_dbl[..., :r], x_dbl[..., r:r + n], x_dbl[..., r + n:]
    delta = softplus(dt @ blk.W_dt.T + blk.b_dt)
    state = np.zeros((batch, di, n))
    y = np.empty_like(u)
    for t in range(length):
        state = np.exp(delta[:, t, :, None] * blk.A) * state + (delta[:, t] * u[:, t])[..., None] * Bm[:, t, None, :]
        y[:, t] = np.einsum("bdn,bn->bd", state, Cm[:, t]) + blk.D * u[:, t]
    return _out_proj(blk, y * silu(z))


def _in_proj(blk: Block, h: np.ndarray) -> np.ndarray:
    return h @ blk.W_in.T + (0.0 if blk.b_in is None else blk.b_in)


def _out_proj(blk: Block, y: np.ndarray) -> np.ndarray:
    return y if blk.W_out is None else y @ blk.W_out.T


def _linear_in(params: Params, x: np.ndarray) -> np.ndarray:
    return x if params.W_lin is None else x @ params.W_lin.T + params.b_lin


def sequence_logits(params: Params, x) -> np.ndarray:
    """(T, F) or (B, T, F) input -> (B, classes) float64 logits, the whole sequence at once."""
    h = _linear_in(params, _batched(x))
    for blk in params.blocks:
        h = _block_sequence(blk, h)
    return h.mean(axis=1) @ params.W_cls.T + params.b_cls


# ---- frame by frame ----------------------------------------------------------------------

class StreamState:
    """The recurrence's memory: per block the conv window (the last d_conv inputs of each
    channel, oldest first) and the scan state; the pooled sum of the block outputs."""

    def __init__(self, params: Params, batch: int):
        self.windows = [np.zeros((batch, b.d_inner, b.conv_w.shape[1])) for b in params.blocks]
        self.scan = [np.zeros((batch, b.d_inner, b.d_state)) for b in params.blocks]
        self.pooled = np.zeros((batch, params.W_cls.shape[1]))
        self.frames = 0


def stream_step(params: Params, st: StreamState, frame: np.ndarray) -> None:
    """Advance the state by one feature frame (B, F)."""
    h = _linear_in(params, frame)
    for i, blk in enumerate(params.blocks):
        di, n, r = blk.d_inner, blk.d_state, blk.dt_rank
        xz = _in_proj(blk, h)
        window = st.windows[i]
        window[:, :, :-1] = window[:, :, 1:].copy()   # drop the oldest input, append this one
        window[:, :, -1] = xz[:, :di]
        u = silu((window * blk.conv_w).sum(axis=-1) + blk.conv_b)
        x_dbl = u @ blk.W_x.T
        delta = softplus(x_dbl[:, :r] @ blk.W_dt.T + blk.b_dt)
        Bm, Cm = x_dbl[:, r:r + n], x_dbl[:, r + n:]
        scan = np.exp(delta[:, :, None] * blk.A) * st.scan[i] + (delta * u)[:, :, None] * Bm[:, None, :]
        st.scan[i] = scan
        y = (scan * Cm[:, None, :]).sum(axis=-1) + blk.D * u
        h = _out_proj(blk, y * silu(xz[:, di:]))
    st.pooled += h
    st.frames += 1


def stream_finish(params: Params, st: StreamState) -> np.ndarray:
    return (st.pooled / st.frames) @ params.W_cls.T + params.b_cls


def stream_logits(params: Params, x) -> np.ndarray:
    """(T, F) or (B, T, F) input -> (B, classes), fed one frame at a time."""
    x = _batched(x)
    st = StreamState(params, x.shape[0])
    for t in range(x.shape[1]):
        stream_step(params, st, x[:, t])
    return stream_finish(params, st)


# ---- int8 weights -------------------------------------------------------------------------

def dequantize_rows(w: np.ndarray) -> np.ndarray:
    """Symmetric int8 with one scale per row: scale = amax / 127 as float32 (1 for an all-zero
    row), q = round half to even (w / scale) clipped to +-127; returns q * scale."""
    amax = np.abs(w).max(axis=1)
    scale = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32).astype(np.float64)
    q = np.clip(np.rint(w / scale[:, None]), -127, 127)
    return q * scale[:, None]


def _f32(w: np.ndarray) -> np.ndarray:
    return w.astype(np.float32).astype(np.float64)


def fold_linear_layers(params: Params) -> Params:
    """The compiler's exact folding, as documented (docs/architecture.md, "Folding"): a linear
    map feeding another with nothing nonlinear between is composed into one when that costs no
    more multiply-adds per row (K*N2 <= K*N1 + N1*N2). In TinyMamba: linear_in into the first
    block's in_proj (giving in_proj a bias), and the last block's out_proj, moved after the
    mean over time, into the classifier. Products are formed in float64 and stored as float32."""
    blocks = list(params.blocks)
    W_lin, b_lin, W_cls = params.W_lin, params.b_lin, params.W_cls
    first = blocks[0]
    F, dm, n1 = W_lin.shape[1], W_lin.shape[0], first.W_in.shape[0]
    if F * n1 <= F * dm + dm * n1:
        b_in = first.W_in @ b_lin + (0.0 if first.b_in is None else first.b_in)
        blocks[0] = replace(first, W_in=_f32(first.W_in @ W_lin), b_in=_f32(b_in))
        W_lin = b_lin = None
    last = blocks[-1]
    di, dm_out, C = last.W_out.shape[1], last.W_out.shape[0], W_cls.shape[0]
    if di * C <= di * dm_out + dm_out * C:
        W_cls = _f32(W_cls @ last.W_out)
        blocks[-1] = replace(last, W_out=None)
    return replace(params, W_lin=W_lin, b_lin=b_lin, blocks=tuple(blocks), W_cls=W_cls)


def int8_params(params: Params) -> Params:
    """The parameters the int8 build implements: the folded model (fold_linear_layers), then
    every remaining weight matrix quantized (see the module docstring)."""
    params = fold_linear_layers(params)

    def block(b: Block) -> Block:
        return replace(b, W_in=dequantize_rows(b.W_in), W_x=dequantize_rows(b.W_x),
                       W_out=None if b.W_out is None else dequantize_rows(b.W_out),
                       A=dequantize_rows(b.A.T).T)  # one scale per state column
    return replace(params, W_lin=None if params.W_lin is None else dequantize_rows(params.W_lin),
                   blocks=tuple(block(b) for b in params.blocks))  # the classifier, after the pooling: float


# ---- ablations: each removes or breaks one part of every block ------------------------------

def _ablate(params: Params, f) -> Params:
    return replace(params, blocks=tuple(f(b) for b in params.blocks))


def _swap_bc(b: Block) -> Block:
    r, n = b.dt_rank, b.d_state
    W_x = np.concatenate([b.W_x[:r], b.W_x[r + n:], b.W_x[r:r + n]])
    return replace(b, W_x=W_x)


def _no_scan(b: Block) -> Block:
    W_x = b.W_x.copy()
    W_x[b.dt_rank + b.d_state:] = 0.0   # C = 0: y = D * u, the state is never read
    return replace(b, W_x=W_x)


ABLATIONS = {
    "no scan": lambda p: _ablate(p, _no_scan),
    "B and C swapped": lambda p: _ablate(p, _swap_bc),
    "A state order reversed": lambda p: _ablate(p, lambda b: replace(b, A=b.A[:, ::-1].copy())),
    "D dropped": lambda p: _ablate(p, lambda b: replace(b, D=np.zeros_like(b.D))),
    "dt bias dropped": lambda p: _ablate(p, lambda b: replace(b, b_dt=np.zeros_like(b.b_dt))),
    "conv taps reversed": lambda p: _ablate(p, lambda b: replace(b, conv_w=b.conv_w[:, ::-1].copy())),
}


# ---- the project's parity bound -----------------------------------------------------------

def parity_tolerance(reference: np.ndarray) -> float:
    """1e-5 x max(1, max |reference logit|)."""
    return 1e-5 * max(1.0, float(np.max(np.abs(reference))))


def parity_errors(got, reference) -> list[str]:
    """Violations of the parity bound for one input's logits (empty when within it): max |err|
    <= tolerance, and the argmax equal wherever the reference's top-two margin exceeds it."""
    got, reference = np.asarray(got, np.float64).reshape(-1), np.asarray(reference, np.float64).reshape(-1)
    tol = parity_tolerance(reference)
    problems = []
    if not np.all(np.isfinite(got)):
        return [f"non-finite logits {got}"]
    err = float(np.max(np.abs(got - reference)))
    if err > tol:
        problems.append(f"max |err| {err:.3g} > {tol:.3g} (ratio {err / tol:.3g})")
    top2 = np.sort(reference)[-2:] if reference.size > 1 else np.array([-np.inf, reference[0]])
    if top2[1] - top2[0] > tol and np.argmax(got) != np.argmax(reference):
        problems.append(f"argmax {np.argmax(got)} != {np.argmax(reference)} (margin {top2[1] - top2[0]:.3g})")
    return problems
