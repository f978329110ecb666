"""RealNVP's log-density as a torch module (Dinh et al., "Density estimation using Real NVP", 2017), in the form
Ultralytics' Pose26 holds as `flow_model` (ultralytics/nn/modules/block.py, RealNVP, after mmpose's): 2-D,
couplings with alternating masks, each with a scale and a translation MLP of `hidden` units.

Written for cnndsl from that documented computation (cnndsl does not import ultralytics); its submodules and
buffers carry Ultralytics' names, so that a state_dict loads key for key. `--to python` writes this class into
its file (torch_functions.CLASSES), which so needs only torch: each constructor argument is kept under its name."""

from __future__ import annotations

import torch
from torch import nn


class RealNVP(nn.Module):
    """forward(x) is log p(x) of each row of x (N × 2), N × 1; log_prob(x) the same
    as N values, as Ultralytics'. `loc` and `cov` are held as Ultralytics holds them,
    for its older checkpoints, and not read."""

    def __init__(self, couplings: int = 6, hidden: int = 64):
        super().__init__()
        self.couplings, self.hidden = couplings, hidden
        self.register_buffer("loc", torch.zeros(2))
        self.register_buffer("cov", torch.eye(2))
        masks = torch.tensor([[0.0, 1.0], [1.0, 0.0]] * couplings)
        self.register_buffer("mask", masks[:couplings])
        self.s = nn.ModuleList(self.mlp(hidden, nn.Tanh()) for _ in range(couplings))
        self.t = nn.ModuleList(self.mlp(hidden) for _ in range(couplings))
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight, gain=0.01)

    @staticmethod
    def mlp(hidden: int, *last: nn.Module) -> nn.Sequential:
        """2 -> hidden -> hidden -> 2 with SiLU between; the scale's ends in Tanh."""
        inner = (nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, 2))
        return nn.Sequential(nn.Linear(2, hidden), nn.SiLU(), *inner, *last)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Each coupling undone from the last (z = (x - t) · exp(-s) where the mask
        is 0), the log-determinant summed, and z's log-density under the standard
        normal: -|z|²/2 - log 2π."""
        z, log_det = x, x.new_zeros(x.shape[0])
        for i in reversed(range(self.couplings)):
            kept = self.mask[i] * z
            s = self.s[i](kept) * (1 - self.mask[i])
            t = self.t[i](kept) * (1 - self.mask[i])
            z = (1 - self.mask[i]) * (z - t) * torch.exp(-s) + kept
            log_det = log_det - s.sum(dim=1)
        return -0.5 * (z**2).sum(-1) - 1.8378770664093453 + log_det  # log 2π

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.log_prob(x)[:, None]
