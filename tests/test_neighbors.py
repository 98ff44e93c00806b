"""The O(N) neighbour search (vesin) equals an explicit brute-force search over images."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from cgaa.core.neighbors import box_heights, neighbor_pairs


def brute_force(pos, cell, cutoff):
    """Every (i, j, image) with |r_j + n·cell − r_i| < cutoff, by looping over images."""
    out = set()
    n = len(pos)
    images = [np.zeros(3)] if cell is None else [np.array(s, float) for s in itertools.product(range(-2, 3), repeat=3)]
    for i in range(n):
        for s in images:
            off = 0 if cell is None else s @ cell
            d = pos + off - pos[i]
            r = np.linalg.norm(d, axis=1)
            for j in np.nonzero(r < cutoff)[0]:
                if j == i and not s.any():
                    continue
                out.add((i, int(j), tuple(int(x) for x in s)))
    return out


def search(pos, cell, cutoff):
    pairs, shifts = neighbor_pairs(torch.tensor(pos), None if cell is None else torch.tensor(cell), cutoff)
    return {(int(i), int(j), tuple(int(round(x)) for x in s))
            for (i, j), s in zip(pairs.T.tolist(), shifts.tolist())}


BOXES = {
    "cubic-cells": (np.diag([17.0, 17.0, 17.0]), 5.0),
    "orthorhombic-cells": (np.diag([16.0, 21.0, 18.5]), 5.0),
    "triclinic-cells": (np.array([[18.0, 0, 0], [5.0, 17.0, 0], [-4.0, 6.0, 16.0]]), 4.5),
    "just-above-2-cutoff": (np.diag([10.02, 10.5, 12.0]), 5.0),
    "triclinic-small": (np.array([[11.0, 0, 0], [3.0, 10.5, 0], [-2.5, 2.0, 10.6]]), 4.7),
}


@pytest.mark.parametrize("name", list(BOXES))
def test_periodic_equals_brute_force(name):
    cell, cutoff = BOXES[name]
    assert cutoff < 0.5 * float(box_heights(torch.tensor(cell)).min())
    rng = np.random.default_rng(len(name))
    n = 150
    frac = rng.uniform(-0.5, 1.5, size=(n, 3))  # not wrapped: some atoms outside the box
    pos = frac @ cell
    assert search(pos, cell, cutoff) == brute_force(pos, cell, cutoff)


def test_cell_list_is_used_and_scales():
    """A large box takes the cell-list path (far fewer candidates than N²) and stays exact."""
    cell = np.diag([40.0, 40.0, 40.0])
    rng = np.random.default_rng(0)
    pos = rng.uniform(0, 40, size=(2000, 3))
    got = search(pos, cell, 6.0)
    # compare against the O(N²) minimum-image reference for the same pairs
    d = pos[None] - pos[:, None]
    d -= np.round(d / 40.0) * 40.0
    r = np.linalg.norm(d, axis=-1)
    np.fill_diagonal(r, np.inf)
    assert len(got) == int((r < 6.0).sum())


def test_non_periodic_equals_brute_force():
    rng = np.random.default_rng(1)
    pos = rng.uniform(0, 25, size=(200, 3))
    assert search(pos, None, 5.0) == brute_force(pos, None, 5.0)
    small = rng.uniform(0, 4, size=(20, 3))
    assert search(small, None, 5.0) == brute_force(small, None, 5.0)


def test_half_list_has_each_pair_once():
    cell, cutoff = BOXES["triclinic-cells"]
    rng = np.random.default_rng(3)
    pos = rng.uniform(-0.5, 1.5, size=(120, 3)) @ cell
    pairs, shifts = neighbor_pairs(torch.tensor(pos), torch.tensor(cell), cutoff, full=False)
    half = {(int(i), int(j), tuple(int(round(x)) for x in s)) for (i, j), s in zip(pairs.T.tolist(), shifts.tolist())}
    mirrored = {(j, i, tuple(-x for x in s)) for i, j, s in half}
    assert not half & mirrored
    assert half | mirrored == brute_force(pos, cell, cutoff)
