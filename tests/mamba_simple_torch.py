"""An independent PyTorch TinyMamba written like mamba_simple.Mamba (nn.Linear, a padded
nn.Conv1d, chunk, an explicit scan loop), used to make random checkpoints of any shape and
to check the compiler against code that shares nothing with mamba_tvm's own reference."""
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


def random_model(seed=0, **kw) -> TinyMambaTorch:
    torch.manual_seed(seed)
    return TinyMambaTorch(**kw).eval()
