"""An independent PyTorch TinyMamba written like mamba_simple.Mamba (nn.Linear, a padded
nn.Conv1d, chunk, an explicit scan loop), used to make random checkpoints of any shape and
to check the compiler against code that shares nothing with mamba_tvm's own reference.

`random_model` calibrates mamba_simple's default init so that every part of the block
matters (see `trained_like`); tests/test_reference.py asserts it."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class MambaSimple(nn.Module):
    def __init__(self, d_model, d_state=16, d_conv=4, expand=2, dt_rank=None):
        super().__init__()
        self.d_inner, self.d_state = expand * d_model, d_state
        self.dt_rank = dt_rank or math.ceil(d_model / 16)
        self.in_proj = nn.Linear(d_model, 2 * self.d_inner, bias=False)
        self.conv1d = nn.Conv1d(self.d_inner, self.d_inner, d_conv, groups=self.d_inner, padding=d_conv - 1)
        self.x_proj = nn.Linear(self.d_inner, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, self.d_inner)
        with torch.no_grad():  # mamba's dt init: softplus^-1 of dt in [1e-3, 1e-1]
            dt = torch.exp(torch.rand(self.d_inner) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3))
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))
        self.A_log = nn.Parameter(torch.log(torch.arange(1, d_state + 1, dtype=torch.float32).repeat(self.d_inner, 1)))
        self.D = nn.Parameter(torch.ones(self.d_inner))
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=False)

    def forward(self, hidden):
        length = hidden.shape[1]
        x, z = self.in_proj(hidden).chunk(2, dim=-1)
        x = F.silu(self.conv1d(x.transpose(1, 2))[..., :length]).transpose(1, 2)
        dt, B, C = torch.split(self.x_proj(x), [self.dt_rank, self.d_state, self.d_state], dim=-1)
        delta = F.softplus(self.dt_proj(dt))
        A = -torch.exp(self.A_log)
        h = x.new_zeros(x.shape[0], self.d_inner, self.d_state)
        ys = []
        for t in range(length):
            h = torch.exp(delta[:, t, :, None] * A) * h + (delta[:, t] * x[:, t])[..., None] * B[:, t, None, :]
            ys.append(torch.einsum("bdn,bn->bd", h, C[:, t]) + self.D * x[:, t])
        y = torch.stack(ys, dim=1) * F.silu(z)
        return self.out_proj(y)


class TinyMambaTorch(nn.Module):
    def __init__(self, n_features, d_model, n_classes, n_blocks=1, **block_kw):
        super().__init__()
        self.linear_in = nn.Linear(n_features, d_model)
        blocks = [MambaSimple(d_model, **block_kw) for _ in range(n_blocks)]
        self.mamba = blocks[0] if n_blocks == 1 else nn.ModuleList(blocks)
        self.classifier = nn.Linear(d_model, n_classes)

    def forward(self, x):
        h = self.linear_in(x)
        for block in (self.mamba if isinstance(self.mamba, nn.ModuleList) else [self.mamba]):
            h = block(h)
        return self.classifier(h.mean(dim=1))


def trained_like(model: TinyMambaTorch, seed: int, dt_range=(0.01, 0.5), saturated_dt=()) -> TinyMambaTorch:
    """Make a default-initialised model look trained where it matters for testing. With
    mamba_simple's init (A_log = log(1..N) in every channel, dt in [1e-3, 0.1], D = 1) and
    inputs of unit scale, the D*u skip dominates and the scan barely moves the logits, so a
    kernel that swaps B and C or drops the scan would still pass a parity test. Here A_log is
    log(1..N) plus noise (as in the trained fixtures), dt is drawn from a wider range, D varies
    per channel; the inputs the tests use have a larger scale (tests/conftest.py).
    `saturated_dt`: channels whose dt bias is 100, beyond softplus's threshold (20) and beyond
    float32 exp's range (88.7), so a kernel that drops torch's threshold computes inf."""
    g = torch.Generator().manual_seed(seed + 1000)
    blocks = model.mamba if isinstance(model.mamba, nn.ModuleList) else [model.mamba]
    lo, hi = (math.log(v) for v in dt_range)
    with torch.no_grad():
        for b in blocks:
            d_inner, d_state = b.A_log.shape
            b.A_log.copy_(torch.log(torch.arange(1, d_state + 1, dtype=torch.float32)).repeat(d_inner, 1)
                          + 0.15 * torch.randn(d_inner, d_state, generator=g))
            dt = torch.exp(torch.rand(d_inner, generator=g) * (hi - lo) + lo)
            b.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # softplus^-1(dt)
            b.dt_proj.bias[list(saturated_dt)] = 100.0
            b.D.copy_(0.5 + torch.rand(d_inner, generator=g))
    return model


def random_model(seed=0, calibrated=True, saturated_dt=(), **kw) -> TinyMambaTorch:
    """A TinyMamba with mamba_simple's init (calibrated by `trained_like` unless told not to)."""
    torch.manual_seed(seed)
    model = TinyMambaTorch(**kw).eval()
    return trained_like(model, seed, saturated_dt=saturated_dt) if calibrated else model
