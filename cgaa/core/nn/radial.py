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



#: Gaussians are cut to exactly 0 where exp(−x²) < exp(−GAUSSIAN_CUT_X2) ≈ 9.4e-14: far below
#: float32 resolution next to the O(1) basis values, and it keeps subnormal floats out of every
#: product downstream. x86 CPUs handle subnormals ~100x slower: the Gaussian tails (and their
#: products with envelopes and weights) made a training step 9 % slower (docs/benchmarks.md).
GAUSSIAN_CUT_X2 = 30.0


class GaussianBasis(nn.Module):
    """``n`` Gaussians exp(−((r − μ_k)/σ)²) with μ_k evenly spaced on [0, r_max], σ = spacing,
    set to exactly 0 below exp(−:data:`GAUSSIAN_CUT_X2`) (no subnormal floats)."""

    def __init__(self, r_max: float, n: int):
        super().__init__()
        if n < 1 or r_max <= 0:
            raise ValueError(f"GaussianBasis needs n ≥ 1 and r_max > 0 (got n={n}, r_max={r_max})")
        self.register_buffer("centers", torch.linspace(0.0, r_max, n))
        self.width = r_max / max(n - 1, 1)
        self.n = n
        self.cut_x2 = float(GAUSSIAN_CUT_X2)

    def forward(self, r: Tensor) -> Tensor:
        x = (r.unsqueeze(-1) - self.centers) / self.width
        x2 = x * x
        keep = x2 < self.cut_x2
        zero = torch.zeros_like(x2)
        # exp of the clamped argument only: the far tail never reaches exp (nor its gradient)
        return torch.where(keep, torch.exp(-torch.where(keep, x2, zero)), zero)


class PolynomialEnvelope(nn.Module):
    """Smooth cutoff: 1 at r=0, and value, first and second derivative 0 at r = r_max.

    f(x) = 1 − (p+1)(p+2)/2 xᵖ + p(p+2) xᵖ⁺¹ − p(p+1)/2 xᵖ⁺², x = r/r_max (Klicpera et al.,
    DimeNet, ICLR 2020), and 0 beyond r_max; evaluated as 1 + xᵖ(−a + x(b − c x)) with xᵖ
    from integer multiplications (no float ``pow``).
    """

    def __init__(self, r_max: float, p: int = 6):
        super().__init__()
        if int(p) != p or p < 1:
            raise ValueError(f"PolynomialEnvelope needs an integer p ≥ 1 (got {p})")
        self.r_max = float(r_max)
        self.p = int(p)
        self.a = (p + 1.0) * (p + 2.0) / 2.0
        self.b = p * (p + 2.0)
        self.c = p * (p + 1.0) / 2.0

    def forward(self, r: Tensor) -> Tensor:
        x = r / self.r_max
        xp = x
        for _ in range(self.p - 1):
            xp = xp * x
        f = 1.0 + xp * (-self.a + x * (self.b - self.c * x))
        return torch.where(x < 1.0, f, torch.zeros_like(f))
