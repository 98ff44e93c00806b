"""Radial basis and envelope: their analytic forms, and no subnormal floats anywhere."""
import numpy as np
import pytest
import torch

from cgaa.core.nn.radial import GAUSSIAN_CUT_X2, GaussianBasis, PolynomialEnvelope


def _subnormal(t: torch.Tensor) -> int:
    """Number of entries of ``t`` that are subnormal floats (nonzero, below the smallest normal)."""
    a = t.abs()
    return int(((a > 0) & (a < torch.finfo(t.dtype).tiny)).sum())


@pytest.mark.parametrize("r_max,n", [(4.0, 16), (8.0, 8), (5.0, 8)])
def test_gaussian_basis_is_exp_minus_x2_cut_below_float_resolution(r_max, n):
    basis = GaussianBasis(r_max, n).double()
    r = torch.linspace(0.0, 1.5 * r_max, 3001, dtype=torch.float64)
    got = basis(r).numpy()
    mu = np.linspace(0.0, r_max, n)
    x2 = ((r.numpy()[:, None] - mu) / (r_max / (n - 1))) ** 2
    want = np.where(x2 < GAUSSIAN_CUT_X2, np.exp(-x2), 0.0)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=0.0)  # the centres are stored in float32
    # what the cut drops is below float32 resolution next to the largest basis value (~1)
    assert np.exp(-x2[x2 >= GAUSSIAN_CUT_X2]).max() < 1e-13
    assert got[r.numpy() <= r_max].max(axis=1).min() > 0.7  # every r in range has an O(1) basis value


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_basis_envelope_products_and_gradients_have_no_subnormals(dtype):
    """The values that reach the radial MLPs, and their gradients, are never subnormal (the
    uncut Gaussian tails produced them, and x86 CPUs are ~100x slower on them)."""
    for r_max, n in [(4.0, 16), (8.0, 8), (5.0, 8)]:
        basis, env = GaussianBasis(r_max, n).to(dtype), PolynomialEnvelope(r_max)
        r = torch.linspace(0.0, 1.2 * r_max, 20001, dtype=dtype).requires_grad_(True)
        phi = basis(r) * env(r).unsqueeze(-1)
        assert _subnormal(basis(r)) == 0 and _subnormal(phi) == 0
        (g,) = torch.autograd.grad(phi.sum(), [r])
        assert _subnormal(g) == 0 and bool(torch.isfinite(g).all())
    # the uncut Gaussian does make them: the test can fail
    r = torch.linspace(0.0, 4.8, 20001, dtype=torch.float32)
    mu, w = torch.linspace(0.0, 4.0, 16), 4.0 / 15
    assert _subnormal(torch.exp(-((r.unsqueeze(-1) - mu) / w) ** 2)) > 0


def test_polynomial_envelope_is_the_dimenet_polynomial_and_smooth_at_the_cutoff():
    p, r_max = 6, 5.0
    env = PolynomialEnvelope(r_max, p)
    x = np.linspace(0.0, 1.3, 1301)
    want = np.where(x < 1.0, 1 - (p + 1) * (p + 2) / 2 * x ** p + p * (p + 2) * x ** (p + 1)
                    - p * (p + 1) / 2 * x ** (p + 2), 0.0)
    got = env(torch.tensor(x * r_max, dtype=torch.float64)).numpy()
    np.testing.assert_allclose(got, want, atol=1e-12)
    assert got[0] == 1.0
    # value, first and second derivative (autograd) vanish as r -> r_max from inside
    for gap, tol in [(1e-2, 1.0), (1e-4, 1e-2)]:
        r = torch.tensor([r_max * (1 - gap)], dtype=torch.float64, requires_grad=True)
        f = env(r)
        (d1,) = torch.autograd.grad(f.sum(), [r], create_graph=True)
        (d2,) = torch.autograd.grad(d1.sum(), [r])
        assert abs(float(f.detach())) < tol * gap ** 2 and abs(float(d1.detach())) < tol * gap and abs(float(d2)) < tol
    with pytest.raises(ValueError, match="integer p"):
        PolynomialEnvelope(r_max, 2.5)
