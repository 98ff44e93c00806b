"""The fixed-shape MD path (cgaa.core.padded): padded neighbour lists with a skin give the exact
path's energies, forces and virials (float64, to 1e-10), across rebuilds and on capacity overflow
(grown with host rebuilds, NaN and a flag when sync-free), for grain and all-atom models in
orthorhombic and triclinic boxes; in OpenMM too, and an NVE run across many rebuilds conserves
energy."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cgaa.core.model import ModelConfig
from cgaa.core.neighbors import neighbor_pairs
from cgaa.core.padded import PaddedModel, _offsets, fixed_cell_pairs, grid_for
from core_utils import build, rel_err
from molecules import molecule_box, triclinic_box

TOL = 1e-10
PAIR = dict(pair_cutoff=4.5, pair_num_basis=6, pair_rank=3)
KEYS = ("energy", "grain_energies", "forces", "forces_inter", "forces_intra", "virial", "virial_mol")


def boxes():
    counts = {"Li": 3, "PF6": 3, "EC": 6, "EMC": 5}
    return {"ortho": molecule_box(counts, np.diag([20.0, 20.0, 20.0]), seed=3),
            "triclinic": molecule_box(counts, triclinic_box(), seed=4)}


def model_for(atoms, kind, mode="conservative"):
    if kind == "allatom":
        return build(atoms, mode, all_atom=True, channels=4)
    return build(atoms, mode, channels=6, **PAIR)


def compare(padded, model, kw, tol=TOL):
    ref = model(**kw, compute_virial=True)
    out = padded(**kw, compute_virial=True)
    for k in KEYS:
        err = rel_err(out[k], ref[k])
        assert err <= tol, (k, err)


def scripted(module, script=True):
    """TorchScript ``module`` (what OpenMM runs), or leave it eager: compiling and the profiling
    executor's first calls cost seconds per case, so each test scripts one case and checks the
    rest eagerly (the same code)."""
    return torch.jit.script(module) if script else module


def moved(kw, amount, seed=0):
    """Inputs with every atom displaced by ``amount`` Å in a random direction."""
    g = torch.Generator().manual_seed(seed)
    d = torch.randn(kw["pos"].shape, generator=g, dtype=kw["pos"].dtype)
    d = amount * d / d.norm(dim=1, keepdim=True)
    return dict(kw, pos=kw["pos"] + d)


@pytest.mark.parametrize("box", ["ortho", "triclinic"])
@pytest.mark.parametrize("kind", ["grain", "allatom"])
@pytest.mark.parametrize("sync_free", [False, True])
def test_padded_matches_exact_across_rebuilds(box, kind, sync_free):
    atoms, _ = boxes()[box]
    model, _, kw = model_for(atoms, kind)
    skin = 0.6
    padded = scripted(PaddedModel(model, skin=skin, sync_free=sync_free), box == "triclinic" and kind == "grain")
    compare(padded, model, kw)
    assert int(padded.n_rebuilds) == 1
    small = moved(kw, 0.4 * skin, seed=1)           # below skin/2: same lists
    compare(padded, model, small)
    assert int(padded.n_rebuilds) == 1
    far = moved(kw, 0.6 * skin, seed=2)             # beyond skin/2: rebuilt
    compare(padded, model, far)
    assert int(padded.n_rebuilds) == 2
    # the lists really held pairs beyond the cutoff (the skin), masked or not
    assert int(padded.inter_mask.sum()) > 0
    # positions wrapped by a lattice vector (as an MD engine may do) change nothing, no rebuild
    wrapped = dict(far, pos=far["pos"] + torch.as_tensor(atoms.cell[:])[1] * torch.tensor(
        [1.0 if i % 3 == 0 else 0.0 for i in range(len(atoms))], dtype=torch.float64).unsqueeze(1))
    compare(padded, model, wrapped)
    assert int(padded.n_rebuilds) == 2
    # a changed box always rebuilds
    scaled = dict(far, pos=far["pos"] * 1.01, cell=far["cell"] * 1.01)
    compare(padded, model, scaled)
    assert int(padded.n_rebuilds) == 3


def test_padded_direct_mode():
    atoms, _ = boxes()["triclinic"]
    model, _, kw = model_for(atoms, "grain", "direct")
    for sync_free in (False, True):
        padded = scripted(PaddedModel(model, skin=0.5, sync_free=sync_free), sync_free)
        compare(padded, model, kw)
        compare(padded, model, moved(kw, 0.5))
        assert int(padded.n_rebuilds) == 2


@pytest.mark.parametrize("kind", ["grain", "allatom"])
def test_host_rebuild_grows_capacity_instead_of_truncating(kind):
    atoms, _ = boxes()["triclinic"]
    model, _, kw = model_for(atoms, kind)
    padded = scripted(PaddedModel(model, skin=0.5, capacity_factor=1.0), kind == "grain")
    compare(padded, model, kw)
    padded.inter_capacity = 4                        # far too small for the next rebuild
    if kind == "grain":
        padded.contact_capacity = 3
    compare(padded, model, moved(kw, 0.5))
    assert padded.inter_capacity > 4 and padded.n_grows >= 1
    assert int(padded.inter_mask.sum()) > 4


def test_sync_free_overflow_is_nan_never_truncated():
    atoms, _ = boxes()["ortho"]
    model, _, kw = model_for(atoms, "grain")
    for what in ("pairs", "cell"):
        padded = scripted(PaddedModel(model, skin=0.3, sync_free=True), what == "pairs")
        compare(padded, model, kw)
        assert int(padded.contact_mask.sum()) > 2
        if what == "pairs":
            # shrink the (contact) pair capacity, fixed in this mode: the fixed-shape search must
            # flag the overflow, not truncate
            padded.contact_pairs = padded.contact_pairs[:, :2].contiguous()
            padded.contact_mask = padded.contact_mask[:2].contiguous()
            padded.contact_capacity = 2
        else:
            padded.contact_cell_cap = 1                 # a cell holding one atom at most
        out = padded(**moved(kw, 0.3), compute_virial=True)
        assert int(padded.overflow) == 1
        assert math.isnan(float(out["energy"])) and torch.isnan(out["forces"]).all()
        out = padded(**kw)                           # sticky: stays NaN until rebuilt larger
        assert math.isnan(float(out["energy"]))


@pytest.mark.parametrize("box", ["ortho", "triclinic"])
@pytest.mark.parametrize("half", [False, True])
def test_fixed_cell_pairs_equal_vesin(box, half):
    atoms, _ = boxes()[box]
    pos = torch.as_tensor(atoms.positions) + 30.0 * torch.randn(len(atoms), 3, dtype=torch.float64).round()
    cell = torch.as_tensor(atoms.cell[:])
    for radius in (4.0, 6.5):
        grid = grid_for(cell, radius, 0.0)
        ref, _ = neighbor_pairs(pos, cell, radius, full=not half)
        cap = ref.shape[1] + 5
        pairs, mask, count, bad = fixed_cell_pairs(pos, cell, radius, grid, _offsets(grid), 64, cap, half)
        assert not bool(bad) and int(count) == ref.shape[1]
        got = {tuple(p) for p in pairs[:, mask].t().tolist()}
        assert got == {tuple(p) for p in ref.t().tolist()}
        assert len(got) == int(count)  # no pair twice
        _, _, _, bad = fixed_cell_pairs(pos, cell, radius, grid, _offsets(grid), 64, ref.shape[1] - 1, half)
        assert bool(bad)


def test_shipped_model_file_padded_equals_exact():
    """A model file written by older code (no padded path in its TorchScript) runs on the padded
    lists through an eager twin, with the file's own numbers."""
    from cgaa.core.grains import grains_from_atoms
    from cgaa.core.inputs import make_inputs
    from cgaa.openmm.torchforce import default_model_path, padded_model, resolve_model

    try:
        deployed = resolve_model(default_model_path())
    except FileNotFoundError:
        pytest.skip("no shipped model")
    atoms, _ = boxes()["ortho"]
    gm = grains_from_atoms(atoms)
    kw = make_inputs(atoms.positions, atoms.numbers, gm, deployed.config, atoms.cell[:], dtype=torch.float32)
    ref = deployed.module(**kw)
    for sync_free in (False, True):
        padded = torch.jit.script(padded_model(deployed, sync_free, skin=0.5))
        out = padded(**kw)
        assert rel_err(out["energy"], ref["energy"]) < 1e-5
        assert rel_err(out["forces"], ref["forces"]) < 1e-4


# ---------------------------------------------------------------------------- OpenMM
openmm = pytest.importorskip("openmm")


def _openmm_pieces():
    from test_openmm import small_system

    return small_system(rms_force=0.5)


def test_openmm_padded_matches_model_and_graph_properties():
    from test_openmm import evaluate, reference
    from cgaa.openmm import create_system, make_torch_force

    atoms, gidx = boxes()["triclinic"]
    model, _, kw = build(atoms, channels=6, **PAIR)
    e_ref, f_ref = reference(model, kw)
    from cgaa.openmm import topology_from_atoms

    top, pos = topology_from_atoms(atoms, gidx)
    for nl in ("padded", "sync_free", "auto", "exact"):
        on = nl in ("sync_free", "auto")
        system = create_system(top, model, neighbor_list=nl, cuda_graphs=on)
        xml = openmm.XmlSerializer.serialize(system)
        assert ('<Property name="useCUDAGraphs" value="true"/>' in xml) == on, nl
        for platform in ("Reference", "CPU"):   # both ignore useCUDAGraphs
            e, f = evaluate(system, pos, platform)
            assert abs(e - e_ref) <= TOL * abs(e_ref), (nl, platform)
            assert rel_err(f, f_ref) <= TOL, (nl, platform)
    # create_system's default: graphs on where this process sees a CUDA device; True forces them
    # (exact on the CPU either way); the off switch
    xml_default = openmm.XmlSerializer.serialize(create_system(top, model))
    assert ('<Property name="useCUDAGraphs" value="true"/>' in xml_default) == torch.cuda.is_available()
    xml_on = openmm.XmlSerializer.serialize(create_system(top, model, cuda_graphs=True))
    xml_off = openmm.XmlSerializer.serialize(create_system(top, model, cuda_graphs=False))
    assert '<Property name="useCUDAGraphs" value="true"/>' in xml_on
    assert '<Property name="useCUDAGraphs" value="true"/>' not in xml_off
    with pytest.raises(ValueError, match="cuda_graphs"):
        make_torch_force(top, model, neighbor_list="exact", cuda_graphs=True)


def test_openmm_nve_across_rebuilds_conserves_energy():
    """Verlet NVE on the padded lists (host rebuilds, skin 0.15 Å: a rebuild every few steps).

    Bound: the same as the exact path's NVE test (tests/test_openmm.py), drift < 0.01 ⟨KE⟩/ps and
    largest deviation < 2 % ⟨KE⟩: a list missing a pair inside the cutoff would make the force
    jump where the pair enters (not the gradient of the energy), a drift of the order of the
    force errors' work, orders of magnitude above these bounds. The rebuilds are counted by
    replaying the recorded positions through a PaddedModel in Python (the one inside OpenMM is a
    separate copy): the same decisions, since they depend on the positions alone."""
    from openmm import unit
    from test_openmm import KJ, stabilizer
    from cgaa.openmm import create_system

    model, top, pos, _ = _openmm_pieces()
    skin, steps = 0.15, 300
    system = create_system(top, model, neighbor_list="padded", skin=skin, cuda_graphs=False)
    stabilizer(pos)(system, top)
    integ = openmm.VerletIntegrator(0.5 * unit.femtosecond)
    ctx = openmm.Context(system, integ, openmm.Platform.getPlatformByName("Reference"))
    ctx.setPositions(pos)
    ctx.setVelocitiesToTemperature(150 * unit.kelvin, 7)
    integ.step(10)
    t, etot, ke, traj = [], [], [], []
    for _ in range(steps):
        st = ctx.getState(getEnergy=True, getPositions=True)
        k = st.getKineticEnergy().value_in_unit(KJ)
        etot.append(st.getPotentialEnergy().value_in_unit(KJ) + k)
        ke.append(k)
        t.append(st.getTime().value_in_unit(unit.picosecond))
        traj.append(st.getPositions(asNumpy=True).value_in_unit(unit.angstrom))
        integ.step(1)
    t, etot, ke = map(np.asarray, (t, etot, ke))
    drift = abs(np.polyfit(t, etot, 1)[0]) / ke.mean()
    spread = np.abs(etot - etot[0]).max() / ke.mean()
    assert drift < 0.01 and spread < 0.02, (drift, spread)
    # count the rebuilds of that trajectory
    from cgaa.core.grains import grains_from_topology
    from cgaa.core.inputs import make_inputs

    gm = grains_from_topology(top)
    numbers = [a.element.atomic_number for a in top.atoms()]
    box = np.array(top.getPeriodicBoxVectors().value_in_unit(unit.angstrom))
    replay = PaddedModel(model, skin=skin)
    for p in traj:
        kw = make_inputs(p, numbers, gm, model.config, box, dtype=torch.float64)
        replay(**kw, compute_forces=False)
    assert int(replay.n_rebuilds) > 5, int(replay.n_rebuilds)


# ---------------------------------------------------------------------------- CUDA (device script)
@pytest.mark.cuda
@pytest.mark.parametrize("kind", ["grain", "allatom"])
def test_sync_free_padded_captured_in_a_cuda_graph(kind):
    """The sync-free path captured as one CUDA graph (as OpenMM-Torch's useCUDAGraphs does, after
    an uncaptured warm-up call) and replayed on new positions, across a rebuild, equals the exact
    path; capture itself fails on any host synchronisation."""
    atoms, _ = boxes()["triclinic"]
    model, _, kw = model_for(atoms, kind)
    model = model.cuda()
    kw = {k: (v.cuda() if torch.is_tensor(v) else v) for k, v in kw.items()}
    padded = torch.jit.script(PaddedModel(model, skin=0.4, sync_free=True)).cuda()
    static = kw["pos"].clone()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(2):                      # warm-up: the first call sizes on the host
            padded(**dict(kw, pos=static))
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = padded(**dict(kw, pos=static))
    for amount, rebuilds in ((0.1, 0), (0.3, 1), (0.05, 1)):   # below, beyond, below skin/2 of the last build
        new = moved({"pos": kw["pos"].cpu()}, amount, seed=int(10 * amount))["pos"].cuda()
        n0 = int(padded.n_rebuilds)
        static.copy_(new)
        graph.replay()
        torch.cuda.synchronize()
        ref = model(**dict(kw, pos=new))
        assert rel_err(out["energy"].cpu(), ref["energy"].cpu()) <= TOL
        assert rel_err(out["forces"].cpu(), ref["forces"].cpu()) <= TOL
        assert int(padded.overflow) == 0
        kw = dict(kw, pos=new) if rebuilds else kw
        assert int(padded.n_rebuilds) - n0 in (0, 1)
