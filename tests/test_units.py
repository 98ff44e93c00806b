"""Unit conversions round-trip and agree with OpenMM's own unit system."""
import numpy as np
import openmm.unit as u

from cgaa import units


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
