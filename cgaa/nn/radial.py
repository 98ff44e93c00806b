"""Radial bases and smooth cutoff envelopes (distances in Å)."""
from __future__ import annotations

from typing import Tuple

import torch
from torch import Tensor, nn


def safe_direction(vec: Tensor, eps: float) -> Tuple[Tensor, Tensor]:
    """``(vec / sqrt(|vec|² + eps²), sqrt(|vec|² + eps²))``: a direction that is smooth at 0.

    Rotation-equivariant and differentiable everywhere (it tends to 0 as ``vec`` → 0
    instead of being undefined), so single-atom grains and atoms sitting on their grain
    centre are harmless.
    """
    r = torch.sqrt((vec * vec).sum(-1, keepdim=True) + eps * eps)
    return vec / r, r.squeeze(-1)



class GaussianBasis(nn.Module):
    """``n`` Gaussians exp(−((r − μ_k)/σ)²) with μ_k evenly spaced on [0, r_max], σ = spacing."""

    def __init__(self, r_max: float, n: int):
        super().__init__()
        if n < 1 or r_max <= 0:
            raise ValueError(f"GaussianBasis needs n ≥ 1 and r_max > 0 (got n={n}, r_max={r_max})")
        self.register_buffer("centers", torch.linspace(0.0, r_max, n))
        self.width = r_max / max(n - 1, 1)
        self.n = n

    def forward(self, r: Tensor) -> Tensor:
        x = (r.unsqueeze(-1) - self.centers) / self.width
        return torch.exp(-x * x)


class PolynomialEnvelope(nn.Module):
    """Smooth cutoff: 1 at r=0, and value, first and second derivative 0 at r = r_max.

    f(x) = 1 − (p+1)(p+2)/2 xᵖ + p(p+2) xᵖ⁺¹ − p(p+1)/2 xᵖ⁺², x = r/r_max (Klicpera et al.,
    DimeNet, ICLR 2020), and 0 beyond r_max.
    """

    def __init__(self, r_max: float, p: int = 6):
        super().__init__()
        self.r_max = float(r_max)
        self.p = float(p)

    def forward(self, r: Tensor) -> Tensor:
        p = self.p
        x = r / self.r_max
        f = (1.0 - (p + 1.0) * (p + 2.0) / 2.0 * x.pow(p) + p * (p + 2.0) * x.pow(p + 1.0)
             - p * (p + 1.0) / 2.0 * x.pow(p + 2.0))
        return torch.where(x < 1.0, f, torch.zeros_like(f))

