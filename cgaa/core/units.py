"""The one place where units are converted.

Inside cgaa models and datasets: Å, eV, eV/Å (the ASE / extxyz convention).
At the OpenMM boundary: nm, kJ/mol, kJ/mol/nm. Every conversion between the two goes
through the constants and functions of this module; nothing else multiplies by 10 or
96.485.

Constants are CODATA 2018 (as used by ASE and OpenMM).
"""
from __future__ import annotations


import numpy as np

#: Å per nm.
ANGSTROM_PER_NM: float = 10.0
#: nm per Å.
NM_PER_ANGSTROM: float = 0.1
#: kJ/mol per eV (e · N_A / 1000, CODATA 2018).
KJMOL_PER_EV: float = 96.48533212331002
#: eV per kJ/mol.
EV_PER_KJMOL: float = 1.0 / KJMOL_PER_EV
#: (kJ/mol/nm) per (eV/Å).
KJMOLNM_PER_EVANG: float = KJMOL_PER_EV * ANGSTROM_PER_NM
#: (eV/Å) per (kJ/mol/nm).
EVANG_PER_KJMOLNM: float = 1.0 / KJMOLNM_PER_EVANG
#: Boltzmann constant in eV/K (CODATA 2018).
KB_EV_PER_K: float = 8.617333262e-5
#: Boltzmann constant in kJ/mol/K.
KB_KJMOL_PER_K: float = KB_EV_PER_K * KJMOL_PER_EV
#: m per nm (SI lengths, for transport coefficients).
M_PER_NM: float = 1e-9
#: s per ps.
S_PER_PS: float = 1e-12
#: m²/s per nm²/ps (= 1e-6): diffusion coefficients from MSD slopes.
M2_PER_S_PER_NM2_PER_PS: float = M_PER_NM ** 2 / S_PER_PS
#: ns per ps.
NS_PER_PS: float = 1e-3
#: ps per fs.
PS_PER_FS: float = 1e-3
#: cm³ per nm³ (densities in g/cm³).
CM3_PER_NM3: float = 1e-21
#: s per day (ns/day speeds).
SECONDS_PER_DAY: float = 86400.0
#: Avogadro constant, 1/mol.
AVOGADRO: float = 6.02214076e23
#: Elementary charge, C.
ELEMENTARY_CHARGE_C: float = 1.602176634e-19
#: Boltzmann constant, J/K.
KB_J_PER_K: float = 1.380649e-23
#: bar per (eV/Å³): 1 eV/Å³ = 1.602176634e-19 J / 1e-30 m³ = 1.602e11 Pa; 1 bar = 1e5 Pa.
BAR_PER_EV_PER_A3: float = ELEMENTARY_CHARGE_C * 1e30 / 1e5


def nm_to_angstrom(x):
    """Length nm → Å (works on floats, numpy arrays and torch tensors)."""
    return x * ANGSTROM_PER_NM


def angstrom_to_nm(x):
    """Length Å → nm."""
    return x * NM_PER_ANGSTROM


def ev_to_kjmol(x):
    """Energy eV → kJ/mol."""
    return x * KJMOL_PER_EV


def ev_per_a3_to_bar(x):
    """Pressure or stress eV/Å³ → bar."""
    return x * BAR_PER_EV_PER_A3


def bar_to_ev_per_a3(x):
    """Pressure or stress bar → eV/Å³."""
    return x / BAR_PER_EV_PER_A3


def kjmol_to_ev(x):
    """Energy kJ/mol → eV."""
    return x * EV_PER_KJMOL


def forces_ev_ang_to_kjmol_nm(x):
    """Force eV/Å → kJ/mol/nm."""
    return x * KJMOLNM_PER_EVANG


def forces_kjmol_nm_to_ev_ang(x):
    """Force kJ/mol/nm → eV/Å."""
    return x * EVANG_PER_KJMOLNM


def openmm_lengths_A(quantity):
    """An OpenMM length ``Quantity`` (positions, a box's vectors) → float64 numpy array in Å.

    ``openmm_lengths_A(pdb.getPositions(asNumpy=True))`` is (N, 3);
    ``openmm_lengths_A(topology.getPeriodicBoxVectors())`` is the (3, 3) cell, rows a, b, c."""
    import numpy as np
    from openmm import unit

    return nm_to_angstrom(np.asarray(quantity.value_in_unit(unit.nanometer), dtype=float))


def box_vectors_nm(cell_A):
    """A (3, 3) cell in Å (rows a, b, c) → three ``openmm.Vec3`` box vectors in nm (bare
    numbers: ``context.setPeriodicBoxVectors(*box_vectors_nm(cell))``; multiply the list by
    ``unit.nanometer`` for ``Topology.setPeriodicBoxVectors``). The inverse of
    :func:`openmm_lengths_A` for a box."""
    import numpy as np
    from openmm import Vec3

    c = angstrom_to_nm(np.asarray(cell_A, dtype=float))
    if c.shape != (3, 3):
        raise ValueError(f"a cell must be 3x3 (rows a, b, c; Å), not of shape {c.shape}")
    return [Vec3(*(float(x) for x in row)) for row in c]


def box_matrix_nm(box_vectors) -> np.ndarray:
    """3x3 array (nm, rows = box vectors) from a Quantity, a list of (Quantity) Vec3 or numbers in nm."""
    from openmm.unit import is_quantity, nanometer

    if is_quantity(box_vectors):
        box_vectors = box_vectors.value_in_unit(nanometer)
    rows = [v.value_in_unit(nanometer) if is_quantity(v) else v for v in box_vectors]
    return np.array([[float(x) for x in r] for r in rows], dtype=float).reshape(3, 3)


def box_heights_nm(box_vectors) -> np.ndarray:
    """Perpendicular heights (nm) of a box given as three vectors (see :func:`box_matrix_nm`)."""
    cell = box_matrix_nm(box_vectors)
    vol = abs(np.linalg.det(cell))
    return np.array([vol / np.linalg.norm(np.cross(cell[(i + 1) % 3], cell[(i + 2) % 3]))
                     for i in range(3)])
