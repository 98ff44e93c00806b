"""Unit conversions round-trip and agree with OpenMM's own unit system."""
import numpy as np
import openmm.unit as u

from cgaa.core import units


def test_round_trips():
    x = np.array([0.3, -1.7, 12.5])
    assert np.allclose(units.angstrom_to_nm(units.nm_to_angstrom(x)), x, rtol=0, atol=1e-15)
    assert np.allclose(units.kjmol_to_ev(units.ev_to_kjmol(x)), x, rtol=1e-15)
    assert np.allclose(units.forces_kjmol_nm_to_ev_ang(units.forces_ev_ang_to_kjmol_nm(x)), x, rtol=1e-15)


def test_agree_with_openmm_units():
    ev = (1.0 * u.elementary_charge * u.volt * u.AVOGADRO_CONSTANT_NA).value_in_unit(u.kilojoule_per_mole)
    assert abs(ev - units.KJMOL_PER_EV) < 1e-6 * ev
    assert (1.0 * u.nanometer).value_in_unit(u.angstrom) == units.ANGSTROM_PER_NM
    kb = (u.BOLTZMANN_CONSTANT_kB * u.AVOGADRO_CONSTANT_NA).value_in_unit(u.kilojoule_per_mole / u.kelvin)
    assert abs(kb - units.KB_KJMOL_PER_K) < 1e-5 * kb


def test_openmm_lengths_in_angstrom_whatever_unit_they_carry():
    import openmm
    from openmm.app import Topology

    pos_nm = np.array([[0.1, 0.2, 0.3], [1.5, -0.25, 2.0]])
    as_vec3 = [openmm.Vec3(*p) for p in pos_nm] * u.nanometer
    as_array_A = u.Quantity(pos_nm * 10.0, u.angstrom)
    for q in (as_vec3, as_array_A):
        a = units.openmm_lengths_A(q)
        assert a.shape == (2, 3) and a.dtype == np.float64
        assert np.allclose(a, 10.0 * pos_nm, rtol=1e-15, atol=0)
    # a topology's box vectors (a tuple of Vec3) become the (3, 3) cell, rows a, b, c
    top = Topology()
    top.setPeriodicBoxVectors([openmm.Vec3(2.0, 0, 0), openmm.Vec3(0.5, 2.5, 0), openmm.Vec3(0, 0, 3.0)])
    cell = units.openmm_lengths_A(top.getPeriodicBoxVectors())
    assert np.array_equal(cell, [[20.0, 0, 0], [5.0, 25.0, 0], [0, 0, 30.0]])


def test_box_vectors_round_trip_through_openmm():
    import openmm
    import pytest
    from openmm.app import Topology

    cell = np.array([[20.0, 0, 0], [5.0, 25.0, 0], [-3.0, 4.0, 30.0]])  # Å, triclinic (reduced form)
    vecs = units.box_vectors_nm(cell)
    assert all(isinstance(v, openmm.Vec3) for v in vecs) and vecs[1] == openmm.Vec3(0.5, 2.5, 0.0)
    top = Topology()
    top.setPeriodicBoxVectors(vecs * u.nanometer)
    assert np.allclose(units.openmm_lengths_A(top.getPeriodicBoxVectors()), cell, rtol=1e-15, atol=0)
    ctx = openmm.Context(_one_particle_system(), openmm.VerletIntegrator(1.0), openmm.Platform.getPlatformByName("Reference"))
    ctx.setPeriodicBoxVectors(*vecs)
    got = ctx.getState().getPeriodicBoxVectors(asNumpy=True)
    assert np.allclose(units.openmm_lengths_A(got), cell, rtol=1e-15, atol=0)
    with pytest.raises(ValueError, match="3x3"):
        units.box_vectors_nm(cell[:2])


def _one_particle_system():
    import openmm

    s = openmm.System()
    s.addParticle(1.0)
    return s
