"""Equivariant blocks: MLP on scalars, a gate nonlinearity, a NequIP-style convolution.

Features use e3nn irreps of "natural" parity (0e, 1o, 2e, ...): the parity of spherical
harmonics of a polar vector, so energies are true scalars, invariant under reflections.
"""
from __future__ import annotations

from typing import List

import torch
from e3nn import o3
from torch import Tensor, nn


def hidden_irreps(channels: int, lmax: int) -> o3.Irreps:
    """``channels`` copies of each natural-parity irrep up to ``lmax``: e.g. 32x0e+32x1o+32x2e."""
    return o3.Irreps([(channels, (l, (-1) ** l)) for l in range(lmax + 1)])


class NormalizedSiLU(nn.Module):
    """SiLU scaled so that its output has unit second moment for unit-normal input."""

    def __init__(self):
        super().__init__()
        z = torch.randn(1_000_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        self.scale = float(1.0 / nn.functional.silu(z).pow(2).mean().sqrt())

    def forward(self, x: Tensor) -> Tensor:
        return nn.functional.silu(x) * self.scale


class MLP(nn.Module):
    """MLP with normalised SiLU between layers (for invariant inputs only).

    Weights start N(0, 1/fan_in) and biases at 0, so signals keep unit scale through the
    layers and an untrained model already has forces of the order of the energy scale.
    """

    def __init__(self, sizes: List[int], bias_last: bool = True):
        super().__init__()
        layers: List[nn.Module] = []
        for k in range(len(sizes) - 1):
            last = k == len(sizes) - 2
            lin = nn.Linear(sizes[k], sizes[k + 1], bias=bias_last or not last)
            with torch.no_grad():
                lin.weight.normal_(0.0, sizes[k] ** -0.5)
                if lin.bias is not None:
                    lin.bias.zero_()
            layers.append(lin)
            if not last:
                layers.append(NormalizedSiLU())
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class Gate(nn.Module):
    """Gate nonlinearity (Weiler et al. 2018): SiLU on scalars, sigmoid(gate)·feature otherwise.

    Input layout: [C scalars][G gate scalars][gated irreps ...] with one gate per gated
    irrep copy; output: [C scalars][gated irreps ...]. Written here (not e3nn.nn.Gate)
    so that it compiles with TorchScript.
    """

    def __init__(self, irreps_out: o3.Irreps):
        super().__init__()
        irreps_out = o3.Irreps(irreps_out)
        self.n_scalars = sum(mul for mul, ir in irreps_out if ir.l == 0)
        gated = [(mul, ir) for mul, ir in irreps_out if ir.l > 0]
        self.n_gates = sum(mul for mul, _ in gated)
        self.irreps_out = irreps_out
        self.irreps_in = o3.Irreps(f"{self.n_scalars + self.n_gates}x0e") + o3.Irreps(gated)
        # index that expands one gate per irrep copy to its 2l+1 components
        expand: List[int] = []
        g = 0
        for mul, ir in gated:
            for _ in range(mul):
                expand += [g] * ir.dim
                g += 1
        self.register_buffer("expand", torch.tensor(expand, dtype=torch.long))

    def forward(self, x: Tensor) -> Tensor:
        s = x[:, : self.n_scalars]
        gates = torch.sigmoid(x[:, self.n_scalars : self.n_scalars + self.n_gates])
        rest = x[:, self.n_scalars + self.n_gates :]
        return torch.cat([nn.functional.silu(s), rest * gates[:, self.expand]], dim=1)


class Convolution(nn.Module):
    """Equivariant point convolution (NequIP-style) from senders to receivers.

    out_r = Linear( Σ_{edges s→r} TP(x_s, Y(v_sr); w = MLP(basis(|v_sr|)) · envelope) / √norm )

    Parameters
    ----------
    irreps_in: sender features.
    irreps_sh: spherical harmonics of the edge vectors.
    irreps_out: output features.
    num_basis: size of the radial basis fed to the weight MLP.
    hidden: width of the weight MLP.
    norm: the sum over edges is divided by √norm (typical number of edges per receiver).
    """

    def __init__(self, irreps_in: o3.Irreps, irreps_sh: o3.Irreps, irreps_out: o3.Irreps,
                 num_basis: int, hidden: int, norm: float):
        super().__init__()
        irreps_in, irreps_sh, irreps_out = o3.Irreps(irreps_in), o3.Irreps(irreps_sh), o3.Irreps(irreps_out)
        wanted = {ir for _, ir in irreps_out}
        mid = []
        instr = []
        for i1, (mul, ir1) in enumerate(irreps_in):
            for i2, (_, ir2) in enumerate(irreps_sh):
                for ir3 in ir1 * ir2:
                    if ir3 in wanted:
                        instr.append((i1, i2, len(mid), "uvu", True))
                        mid.append((mul, ir3))
        irreps_mid = o3.Irreps(mid)
        self.tp = o3.TensorProduct(irreps_in, irreps_sh, irreps_mid, instr,
                                   shared_weights=False, internal_weights=False)
        self.radial = MLP([num_basis, hidden, hidden, self.tp.weight_numel])
        self.linear = o3.Linear(irreps_mid, irreps_out)
        self.inv_sqrt_norm = float(norm) ** -0.5
        self.irreps_in, self.irreps_out = irreps_in, irreps_out

    def forward(self, x: Tensor, sh: Tensor, basis: Tensor, envelope: Tensor,
                sender: Tensor, receiver: Tensor, n_receivers: int, mirrored: bool = False) -> Tensor:
        """``mirrored``: the second half of the edges are the first half reversed (same
        distances) and ``basis``/``envelope`` cover the first half only, so the radial MLP
        runs once per pair."""
        w = self.radial(basis) * envelope.unsqueeze(-1)
        if mirrored:
            w = torch.cat([w, w], dim=0)
        msg = self.tp(x[sender], sh, w)
        out = torch.zeros((n_receivers, msg.shape[1]), dtype=msg.dtype, device=msg.device)
        out = out.index_add(0, receiver, msg) * self.inv_sqrt_norm
        return self.linear(out)
