"""Yeh–Hummer, Nernst–Einstein, Einstein–Helfand and Haven ratio against hand-computed numbers."""
from __future__ import annotations

import math

import numpy as np
import pytest

from cgaa.analysis import (FitWindow, box_length_for_correction, einstein_helfand_conductivity, haven_ratio,
                           nernst_einstein_conductivity, transference_numbers, yeh_hummer_correction)

KB = 1.380649e-23  # J/K
E = 1.602176634e-19  # C


def test_yeh_hummer_hand_computed():
    # T = 300 K, eta = 1 mPa s, L = 4 nm:
    # 2.837297 * 1.380649e-23 * 300 / (6 pi * 1e-3 * 4e-9) = 1.5585e-10 m²/s
    expected = 2.837297 * 1.380649e-23 * 300.0 / (6.0 * math.pi * 1.0e-3 * 4.0e-9)
    assert expected == pytest.approx(1.5585e-10, rel=1e-3)
    assert yeh_hummer_correction(300.0, 1.0e-3, 4.0) == pytest.approx(expected, rel=1e-12)
    # it scales as T / (eta L)
    assert yeh_hummer_correction(600.0, 2.0e-3, 2.0) == pytest.approx(2 * expected, rel=1e-12)
    with pytest.raises(ValueError, match="viscosity"):
        yeh_hummer_correction(300.0, 0.0, 4.0)


def test_box_length_cubic_and_not():
    L, cubic = box_length_for_correction(np.eye(3) * 3.0)
    assert cubic and L == pytest.approx(3.0)
    L, cubic = box_length_for_correction(np.diag([2.0, 3.0, 4.0]))
    assert not cubic and L == pytest.approx(24.0 ** (1 / 3))


def test_nernst_einstein_hand_computed():
    # 50 Li (z=+1, D=1e-10) and 50 PF6 (z=-1, D=2e-10) in (5 nm)³ at 300 K:
    # sigma = e² (50·1e-10 + 50·2e-10) / (125e-27 · kB · 300)
    V = 125e-27
    expected = E ** 2 * (50 * 1e-10 + 50 * 2e-10) / (V * KB * 300.0)
    assert expected == pytest.approx(0.7436, rel=1e-3)  # S/m
    sigma, err = nernst_einstein_conductivity([50, 50], [1, -1], [1e-10, 2e-10], 125.0, 300.0,
                                              [1e-11, 2e-11])
    assert sigma == pytest.approx(expected, rel=1e-12)
    expected_err = E ** 2 * math.hypot(50 * 1e-11, 50 * 2e-11) / (V * KB * 300.0)
    assert err == pytest.approx(expected_err, rel=1e-12)
    # z² weighting: a divalent cation counts four times
    s2, _ = nernst_einstein_conductivity([10], [2], [1e-10], 125.0, 300.0)
    s1, _ = nernst_einstein_conductivity([10], [1], [1e-10], 125.0, 300.0)
    assert s2 == pytest.approx(4 * s1)


def test_haven_ratio():
    h, e = haven_ratio(2.0, 1.0, 0.2, 0.1)
    assert h == pytest.approx(2.0)
    assert e == pytest.approx(2.0 * math.sqrt(0.1 ** 2 + 0.1 ** 2))


def test_transference_numbers_hand_computed():
    # 7 Li (D 1e-10) and 7 PF6 (D 3e-10): t+ = 7e-10 / (7e-10 + 21e-10) = 0.25
    (tp, ep), (tm, em) = transference_numbers([7, 7], [1, -1], [1e-10, 3e-10], [1e-11, 3e-11])
    assert tp == pytest.approx(0.25, rel=1e-12) and tm == pytest.approx(0.75, rel=1e-12)
    # t+ = a/(a+b), a = 7 D+, b = 7 D-: dt/dD+ = 7b/S², dt/dD- = -7a/S²
    a, b = 7e-10, 21e-10
    expected = math.hypot(7 * b / (a + b) ** 2 * 1e-11, 7 * a / (a + b) ** 2 * 3e-11)
    assert ep == pytest.approx(expected, rel=1e-12) and em == pytest.approx(expected, rel=1e-12)
    # z² weighting, any number of species, shares summing to 1, and the error against finite differences
    n, z, d, de = [3, 5, 2], [2, -1, -1], [1.0e-10, 2.0e-10, 0.5e-10], [1e-11, 4e-11, 2e-11]
    res = transference_numbers(n, z, d, de)
    assert sum(t for t, _ in res) == pytest.approx(1.0, rel=1e-12)
    assert res[0][0] == pytest.approx(12e-10 / (12e-10 + 10e-10 + 1e-10), rel=1e-12)
    for i in range(3):
        grad = []
        for j in range(3):
            h = 1e-16
            up = list(d); up[j] += h
            dn = list(d); dn[j] -= h
            grad.append((transference_numbers(n, z, up)[i][0] - transference_numbers(n, z, dn)[i][0]) / (2 * h))
        assert res[i][1] == pytest.approx(math.sqrt(sum((g * e) ** 2 for g, e in zip(grad, de))), rel=1e-5)
    # no errors given: NaN errors; no motion at all: NaN shares, not a division by zero
    assert math.isnan(transference_numbers([1, 1], [1, -1], [1e-10, 1e-10])[0][1])
    assert all(math.isnan(t) for t, _ in transference_numbers([1, 1], [1, -1], [0.0, 0.0]))


def _brownian(T, N, d_nm2_ps, rng):
    return np.cumsum(rng.normal(scale=math.sqrt(2 * d_nm2_ps), size=(T, N, 3)), axis=0)


def test_einstein_helfand_matches_nernst_einstein_for_independent_ions():
    # uncorrelated ions: sigma_EH -> sigma_NE (Haven ratio 1)
    rng = np.random.default_rng(0)
    T, N, vol, temp = 4000, 100, 100.0, 300.0
    cat = _brownian(T, N, 1e-3, rng)  # D = 1e-9 m²/s
    an = _brownian(T, N, 5e-4, rng)  # D = 5e-10 m²/s
    ne, _ = nernst_einstein_conductivity([N, N], [1, -1], [1e-9, 5e-10], vol, temp)
    eh = einstein_helfand_conductivity([cat, an], [1, -1], 1.0, vol, temp, window=FitWindow(1.0, 10.0, False))
    assert eh.sigma_S_m == pytest.approx(ne, rel=0.15)
    assert np.isfinite(eh.sigma_err_S_m) and eh.sigma_err_S_m > 0


def test_einstein_helfand_vanishes_for_bound_neutral_pairs():
    # each anion moves rigidly with its cation: no charge transport, although D > 0
    rng = np.random.default_rng(1)
    cat = _brownian(2000, 100, 1e-3, rng)
    an = cat + rng.normal(scale=0.01, size=(1, 100, 3))  # fixed offsets
    ne, _ = nernst_einstein_conductivity([100, 100], [1, -1], [1e-9, 1e-9], 100.0, 300.0)
    eh = einstein_helfand_conductivity([cat, an], [1, -1], 1.0, 100.0, 300.0, window=FitWindow(1.0, 10.0, False))
    assert abs(eh.sigma_S_m) < 1e-6 * ne
    h, _ = haven_ratio(ne, 1e-3 * ne)
    assert h == pytest.approx(1000.0)
