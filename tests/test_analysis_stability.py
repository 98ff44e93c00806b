"""stability_check: broken bonds and closest approaches between molecules, under periodic images."""
from __future__ import annotations

import mdtraj as md
import numpy as np
import pytest

from cgaa.analysis.stability import BROKEN_FACTOR, stability_check
from cgaa.analysis.species import COVALENT_RADIUS_NM

BOX_NM = 2.0


def _topology():
    top = md.Topology()
    chain = top.add_chain()
    w = top.add_residue("HOH", chain)
    o = top.add_atom("O", md.element.oxygen, w)
    h1 = top.add_atom("H1", md.element.hydrogen, w)
    h2 = top.add_atom("H2", md.element.hydrogen, w)
    top.add_bond(o, h1)
    top.add_bond(o, h2)
    top.add_atom("LI", md.element.lithium, top.add_residue("LI", chain))
    return top


def _traj(frames):
    xyz = np.array(frames, dtype=np.float32)
    n = len(frames)
    return md.Trajectory(xyz, _topology(), unitcell_lengths=np.full((n, 3), BOX_NM),
                         unitcell_angles=np.full((n, 3), 90.0))


# water at the origin's side of the box; Li 0.5 nm away; then an O-H bond at 0.2 nm (broken:
# 1.6 x (0.066 + 0.031) = 0.155 nm); then Li 0.15 nm from O across the periodic boundary, its
# coordinates one box length away (unwrapped)
FRAMES = [
    [[0.05, 1.0, 1.0], [0.15, 1.0, 1.0], [0.05, 1.1, 1.0], [0.55, 1.0, 1.0]],
    [[0.05, 1.0, 1.0], [0.25, 1.0, 1.0], [0.05, 1.1, 1.0], [0.55, 1.0, 1.0]],
    [[0.05, 1.0, 1.0], [0.15, 1.0, 1.0], [0.05, 1.1, 1.0], [-0.10 + 2 * BOX_NM, 1.0, 1.0]],
]


def test_broken_bond_and_closest_approach_across_the_boundary():
    res = stability_check(_traj(FRAMES), contact_floor=[[3, 8, 1.9], [1, 3, 1.0]])
    assert res.n_frames == 3 and res.n_bonds == 2
    assert res.broken_frames == 1
    frame, i, j, length = res.first_broken
    assert (frame, i, j) == (1, 0, 1) and length == pytest.approx(2.0, abs=1e-5)
    assert res.max_bond_stretch == pytest.approx(2.0, rel=1e-5)
    d, f, a, b = res.closest["Li-O"]
    assert d == pytest.approx(1.5, abs=1e-4) and f == 2 and {a, b} == {0, 3}  # 0.15 nm through the boundary
    # the floor 1.9 A puts the guard's wall at 1.71 A: 1.5 A is inside both
    assert res.below_wall == ["Li-O"] and res.below_floor == ["Li-O"]
    assert res.frames_below_wall == {"Li-O": 1} and res.frames_below_floor == {"Li-O": 1}  # frame 2 only
    assert not res.intact
    # H-Li stays farther than its 1.0 A floor in every frame
    assert res.closest["H-Li"][0] > 1.0 and "H-Li" not in res.below_wall
    out = res.to_dict()
    assert out["closest_approach_A"]["Li-O"]["floor_A"] == 1.9 and out["intact"] is False


def test_floor_between_wall_and_floor_and_intact_run():
    res = stability_check(_traj(FRAMES[2:]), contact_floor=[[3, 8, 1.6]])
    # 1.5 A: below the floor (outside the data) but outside the wall at 1.44 A
    assert res.below_floor == ["Li-O"] and res.below_wall == []
    assert res.broken_frames == 0 and res.intact
    ok = stability_check(_traj(FRAMES[:1]), search_A=6.0)
    assert ok.intact and ok.closest["Li-O"][0] == pytest.approx(5.0, abs=1e-4) and "Li-O" not in stability_check(_traj(FRAMES[:1])).closest and not ok.floor


def test_invariant_under_translation_and_images():
    base = stability_check(_traj(FRAMES))
    rng = np.random.default_rng(0)
    moved = np.array(FRAMES) + rng.uniform(-5, 5, size=3)  # the whole system shifted
    moved[:, 3] += np.array([BOX_NM, -BOX_NM, 2 * BOX_NM])  # Li by lattice vectors
    res = stability_check(_traj(moved))
    assert res.broken_frames == base.broken_frames
    for key, v in base.closest.items():
        assert res.closest[key][0] == pytest.approx(v[0], abs=1e-3)
        assert res.closest[key][1] == v[1]


def test_needs_a_box():
    t = _traj(FRAMES[:1])
    t.unitcell_vectors = None
    with pytest.raises(ValueError, match="periodic box"):
        stability_check(t)


def test_broken_threshold_is_the_radii_rule():
    assert BROKEN_FACTOR * (COVALENT_RADIUS_NM["O"] + COVALENT_RADIUS_NM["H"]) == pytest.approx(0.1552)


def test_run_contact_floor_reads_the_runs_model(tmp_path):
    """analyze_run_dir compares with the floor of the model copy a `cgaa simulate` run keeps."""
    pytest.importorskip("openmmtorch")
    from test_openmm import small_system

    from cgaa.analysis.pipeline import run_contact_floor
    from cgaa.core.modelfile import save_model

    assert run_contact_floor(tmp_path) is None  # no model.pt
    model = small_system(rms_force=0.02)[0]
    model.config.contact_floor = [[1, 8, 1.85], [3, 8, 1.72]]
    save_model(model, tmp_path / "model.pt")
    assert run_contact_floor(tmp_path) == [[1.0, 8.0, 1.85], [3.0, 8.0, 1.72]]
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "model.pt").write_text("not a model")
    assert run_contact_floor(tmp_path / "other") is None


def test_all_pairs_and_neighbour_list_paths_agree(monkeypatch):
    """Small boxes take every pair at once, large ones a neighbour list per frame: on the same
    frames (random gas of waters and Li, periodic) both find the same closest approaches and counts."""
    import cgaa.analysis.stability as st

    rng = np.random.default_rng(3)
    top = md.Topology()
    chain = top.add_chain()
    for _ in range(12):
        w = top.add_residue("HOH", chain)
        o = top.add_atom("O", md.element.oxygen, w)
        for name in ("H1", "H2"):
            top.add_bond(o, top.add_atom(name, md.element.hydrogen, w))
        top.add_atom("LI", md.element.lithium, top.add_residue("LI", chain))
    frames = []
    for _ in range(7):
        xyz = []
        for _ in range(12):
            o = rng.uniform(-BOX_NM, 2 * BOX_NM, 3)  # unwrapped: images matter
            xyz += [o, o + [0.096, 0, 0], o + [0, 0.096, 0], rng.uniform(0, BOX_NM, 3)]
        frames.append(xyz)
    traj = md.Trajectory(np.array(frames, dtype=np.float32), top, unitcell_lengths=np.full((7, 3), BOX_NM),
                         unitcell_angles=np.full((7, 3), 90.0))
    floor = [[3, 8, 2.5], [1, 8, 2.0]]
    every = stability_check(traj, contact_floor=floor)
    monkeypatch.setattr(st, "ALL_PAIRS_MAX", 0)
    listed = stability_check(traj, contact_floor=floor)
    assert set(every.closest) == set(listed.closest) and len(every.closest) >= 4
    for key, (d, f, a, b) in every.closest.items():
        d2, f2, a2, b2 = listed.closest[key]
        assert d == pytest.approx(d2, abs=1e-5) and (f, {a, b}) == (f2, {a2, b2})
    assert every.frames_below_floor == listed.frames_below_floor
    assert every.frames_below_wall == listed.frames_below_wall
