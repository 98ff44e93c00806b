"""Equivariant blocks: the mirrored-edge shortcut of Convolution is the same function."""
import torch
from e3nn import o3

from cgaa.core.nn.blocks import Convolution, Gate, hidden_irreps


def test_mirrored_edges_give_the_full_convolution():
    """Edges given as pairs plus their reverses, with the radial inputs of the pairs only
    (mirrored=True), equal the plain call with the radial inputs of every edge, values and
    gradients (float64)."""
    torch.manual_seed(0)
    gate = Gate(hidden_irreps(4, 1))
    conv = Convolution(o3.Irreps("4x0e+4x1o"), o3.Irreps.spherical_harmonics(1), gate.irreps_in, 6, 8, 3.0).double()
    n, e = 7, 12
    x = torch.randn(n, conv.irreps_in.dim, dtype=torch.float64)
    i, j = torch.randint(0, n, (e,)), torch.randint(0, n, (e,))
    vec = torch.randn(e, 3, dtype=torch.float64, requires_grad=True)
    full_vec = torch.cat([vec, -vec])
    sh = o3.spherical_harmonics(conv.tp.irreps_in2, full_vec, normalize=True, normalization="component")
    dist = vec.norm(dim=1)
    basis = torch.exp(-(dist.unsqueeze(1) - torch.linspace(0, 3, 6, dtype=torch.float64)) ** 2)
    env = torch.cos(dist) ** 2
    send, recv = torch.cat([j, i]), torch.cat([i, j])
    a = conv(x, sh, basis, env, send, recv, n, True)
    b = conv(x, sh, torch.cat([basis, basis]), torch.cat([env, env]), send, recv, n)
    assert torch.allclose(a, b, rtol=1e-12, atol=1e-12) and a.abs().max() > 1e-3
    (ga,) = torch.autograd.grad(a.pow(2).sum(), [vec], retain_graph=True)
    (gb,) = torch.autograd.grad(b.pow(2).sum(), [vec])
    assert torch.allclose(ga, gb, rtol=1e-10, atol=1e-12)
    # and it is not the call without the reversed edges' weights
    c = conv(x, sh[:e], basis, env, send[:e], recv[:e], n)
    assert not torch.allclose(a, c)
