"""The graph that `cgaa bench speed` reports (grains, inter-grain edges) is the model's own:
:func:`cgaa.bench.speed_workers.graph_stats` on a small periodic box whose molecules are
split across the box faces gives the counts of the model's ``grain_geometry`` + ``edges``
and of a brute-force count over whole molecules."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from cgaa.bench.speed import box_for, shipped_hyper
from cgaa.bench.speed_workers import _build_model, graph_stats
from cgaa.core.grains import grains_from_topology
from cgaa.core.inputs import make_inputs
from cgaa.core.model import CGAAModel
from cgaa.core.units import openmm_lengths_A
from cgaa.systems.boxfile import read_box


@pytest.fixture(scope="module")
def box(tmp_path_factory):
    """(topology, atomic numbers, whole-molecule positions Å, the same wrapped after a shift, cell Å)."""
    path, _, _ = box_for("lipf6-ec-emc-1m", 1000, tmp_path_factory.mktemp("graph"))
    pdb = read_box(path)
    numbers = np.array([a.element.atomic_number for a in pdb.topology.atoms()], dtype=np.int64)
    pos = openmm_lengths_A(pdb.getPositions(asNumpy=True))
    cell = openmm_lengths_A(pdb.topology.getPeriodicBoxVectors())
    # a rigid shift, then every atom wrapped into the box: the molecules on the faces are split
    frac = (pos + np.array([0.37, 0.61, 0.23]) @ cell) @ np.linalg.inv(cell)
    wrapped = (frac - np.floor(frac)) @ cell
    gi = grains_from_topology(pdb.topology).grain_index
    split = [g for g in np.unique(gi) if np.ptp(wrapped[gi == g], axis=0).max() > 0.5 * np.diag(cell).min()]
    assert split, "no grain was split by the wrapping: the test would not test it"
    return pdb.topology, numbers, pos, wrapped, cell


def _brute_force_edges(centres: np.ndarray, cell: np.ndarray, cutoff: float, tol: float = 1e-4):
    """(fewest, most) ordered pairs (both orders) of centres closer than ``cutoff`` over the 27
    nearest images: pairs within ``tol`` of the cutoff may fall either way in float32."""
    lo = hi = 0
    for shift in np.array(np.meshgrid(*[[-1, 0, 1]] * 3, indexing="ij")).reshape(3, -1).T:
        d = np.linalg.norm(centres[None, :, :] + shift @ cell - centres[:, None, :], axis=-1)
        if not shift.any():
            np.fill_diagonal(d, np.inf)
        lo += int((d < cutoff - tol).sum())
        hi += int((d < cutoff + tol).sum())
    assert hi - lo <= 4, "many pairs at the cutoff: choose another one"
    return lo, hi


@pytest.mark.parametrize("engine, cutoff", [("cgaa", 8.0), ("allatom", 4.0)])
def test_graph_stats_is_the_models_graph_on_wrapped_molecules(box, engine, cutoff):
    top, numbers, pos, wrapped, cell = box
    spec = {"engine": engine, "hyper": {**shipped_hyper(), "cutoff": cutoff}, "seed": 0}
    deployed, gm = _build_model(spec, top, numbers)
    cfg = deployed.config
    assert cfg.cutoff == cutoff
    kw = make_inputs(wrapped, numbers, gm, cfg, cell, dtype=torch.float32)
    stats = graph_stats(deployed, kw)

    # the model's own graph on the same (wrapped) input
    model = CGAAModel(cfg).eval()
    n_grains = int(kw["grain_type"].shape[0])
    with torch.no_grad():
        r, u, _m, _mg = model.grain_geometry(kw["pos"], kw["species"], kw["grain_index"], n_grains, kw["cell"])
        _intra, inter, _shifts, _contact, _cs = model.edges(r, u, kw["grain_index"], n_grains, kw["cell"])
    assert stats["n_grains"] == n_grains == gm.n_grains
    assert stats["n_edges"] == int(inter.shape[1]) > 0
    assert stats["cutoff_A"] == cutoff
    assert stats["edges_per_grain"] == pytest.approx(stats["n_edges"] / stats["n_grains"])

    # independent count: mass-weighted centres of the whole (unwrapped) molecules' grains
    m = np.asarray(cfg.masses)[[cfg.elements.index(int(z)) for z in numbers]]
    gi = np.asarray(gm.grain_index)
    centres = np.stack([(m[gi == g, None] * pos[gi == g]).sum(0) / m[gi == g].sum() for g in range(gm.n_grains)])
    lo, hi = _brute_force_edges(centres, cell, cutoff)
    assert lo <= stats["n_edges"] <= hi
    if engine == "allatom":
        assert stats["n_grains"] == len(numbers)
    else:
        assert stats["n_grains"] < len(numbers)
    # and the same numbers from the whole molecules as from the split ones
    assert graph_stats(deployed, make_inputs(pos, numbers, gm, cfg, cell, dtype=torch.float32)) == stats
