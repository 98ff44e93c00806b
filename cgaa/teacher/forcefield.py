"""The classical teacher: an OPLS-AA-type OpenMM force field for the species library.

The force field lives in ``forcefields/teacher/opls_electrolyte.xml`` (found through
:func:`cgaa.core.resources.forcefield_path`); :func:`create_system` builds an OpenMM System
with PME electrostatics and OPLS geometric mixing of the Lennard-Jones parameters, and
:class:`Teacher` evaluates energies (eV) and forces (eV/Å) for positions in Å.
"""
from __future__ import annotations


from cgaa.systems.topology import box_density, topology_from_residues

from pathlib import Path
from typing import Optional, Sequence, Tuple, Union

import numpy as np

from cgaa.core.resources import forcefield_path
from cgaa.core.units import angstrom_to_nm, box_vectors_nm, forces_kjmol_nm_to_ev_ang, kjmol_to_ev

#: Shipped teacher force-field file, relative to forcefields/.
TEACHER_XML = "teacher/opls_electrolyte.xml"
#: Name recorded as ``teacher`` in extxyz frames labelled by this force field.
TEACHER_NAME = "opls_electrolyte"
#: Default strain step of :func:`context_stress`. The teacher's Lennard-Jones term is cut off
#: without shifting, so its energy jumps when a pair crosses the cutoff; a barostat's volume
#: moves see those jumps, and a strain of 1e-3 averages over hundreds of crossings (1e-5
#: resolves single ones: noise). Truncation error at 1e-3 is ~1e-6 relative.
STRESS_STRAIN = 1e-3


def load_forcefield(xml: Optional[Union[str, Path]] = None):
    """The OpenMM ForceField of the teacher (default: the shipped XML; or a path)."""
    from openmm.app import ForceField

    path = Path(xml) if xml is not None else forcefield_path(TEACHER_XML)
    if not path.is_file():
        raise FileNotFoundError(f"teacher force field file {path} does not exist")
    return ForceField(str(path))


def get_platform(name: Optional[str] = None):
    """OpenMM Platform by name ('Reference', 'CPU', 'CUDA', 'OpenCL'); default: the
    fastest available. ValueError naming the platform if it is not available."""
    import openmm

    names = [openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())]
    if name is None:
        for pref in ("CUDA", "OpenCL", "CPU", "Reference"):
            if pref in names:
                return openmm.Platform.getPlatformByName(pref)
    match = [n for n in names if n.lower() == str(name).lower()]
    if not match:
        raise ValueError(f"OpenMM platform '{name}' is not available here (available: {', '.join(names)})")
    return openmm.Platform.getPlatformByName(match[0])


def opls_sigma(sig_i: float, sig_j: float) -> float:
    """OPLS geometric mixing of Lennard-Jones sigma (any length unit): sqrt(s_i s_j). Epsilon
    mixes as sqrt(e_i e_j) in both OPLS and OpenMM's Lorentz-Berthelot rule, so a force
    field's 1-4 exceptions (lj14scale · sqrt(e_i e_j)) keep their epsilon."""
    return (sig_i * sig_j) ** 0.5


def _opls_mixing(system, cutoff_nm: float) -> None:
    """Replace Lorentz-Berthelot LJ of the NonbondedForce by OPLS geometric mixing.

    The LJ part moves to a CustomNonbondedForce (same cutoff, long-range dispersion
    correction on); 1-4 exceptions get sigma = :func:`opls_sigma` and keep the force field's
    epsilon (lj14scale · sqrt(e_i e_j); 0.5 for the shipped teacher).
    """
    import openmm

    nb = next(f for f in system.getForces() if isinstance(f, openmm.NonbondedForce))
    lj = openmm.CustomNonbondedForce(
        "4*eps*((sig/r)^12-(sig/r)^6); sig=sqrt(sig1*sig2); eps=sqrt(eps1*eps2)")
    lj.addPerParticleParameter("sig")
    lj.addPerParticleParameter("eps")
    lj.setNonbondedMethod(openmm.CustomNonbondedForce.CutoffPeriodic)
    lj.setCutoffDistance(cutoff_nm)
    lj.setUseLongRangeCorrection(True)
    lj.setName("LennardJonesOPLS")
    params = []
    for i in range(nb.getNumParticles()):
        q, sig, eps = nb.getParticleParameters(i)
        params.append((sig, eps))
        lj.addParticle([sig, eps])
        nb.setParticleParameters(i, q, sig, eps * 0.0)
    for k in range(nb.getNumExceptions()):
        i, j, qq, sig, eps = nb.getExceptionParameters(k)
        lj.addExclusion(i, j)
        if eps._value != 0.0:
            (si, _), (sj, _) = params[i], params[j]
            nb.setExceptionParameters(k, i, j, qq, opls_sigma(si, sj), eps)
    nb.setUseDispersionCorrection(False)
    system.addForce(lj)


def image_invariant(system) -> None:
    """Make every term of a periodic ``system`` independent of which lattice image each atom is
    given in: bonded forces (bonds, angles, torsions, custom bonded terms) by minimum image, and a
    ``NonbondedForce``'s exceptions (1-4 pairs, the exclusions PME corrects) too. OpenMM computes
    both without periodic boundaries by default, so a molecule whose atoms a file wraps into the
    cell one by one (GROMACS, LAMMPS and many converters write them so) would get wrong energies
    (hundreds of kJ/mol in PME's exclusion correction). Exact for molecules narrower than half the
    shortest box height, which every box the teacher accepts holds."""
    import openmm

    if not system.usesPeriodicBoundaryConditions():
        return
    bonded = (openmm.HarmonicBondForce, openmm.HarmonicAngleForce, openmm.PeriodicTorsionForce,
              openmm.RBTorsionForce, openmm.CustomBondForce, openmm.CustomAngleForce, openmm.CustomTorsionForce,
              openmm.CMAPTorsionForce)
    for f in system.getForces():
        if isinstance(f, bonded):
            f.setUsesPeriodicBoundaryConditions(True)
        elif isinstance(f, openmm.NonbondedForce) and f.getNonbondedMethod() in (
                openmm.NonbondedForce.PME, openmm.NonbondedForce.Ewald, openmm.NonbondedForce.LJPME,
                openmm.NonbondedForce.CutoffPeriodic):
            f.setExceptionsUsePeriodicBoundaryConditions(True)


def check_topology(topology, cutoff: float, forcefield=None) -> None:
    """ValueError unless the teacher can build a System for ``topology`` with ``cutoff`` (nm):
    a periodic box whose heights exceed twice the cutoff, and residue names all among the
    force field's templates (the message names what is wrong)."""
    from openmm import unit

    ff = forcefield if forcefield is not None else load_forcefield()
    box = topology.getPeriodicBoxVectors()
    if box is None:
        raise ValueError("the topology has no periodic box (CRYST1); the teacher needs one")
    height = min(box[0][0], box[1][1], box[2][2]).value_in_unit(unit.nanometer)
    if cutoff >= 0.5 * height:
        raise ValueError(f"cutoff {cutoff} nm is not below half the box height ({height:.3f} nm); "
                         "use a bigger box or a smaller cutoff")
    known = {t for t in ff._templates}
    missing = sorted({r.name for r in topology.residues()} - known)
    if missing:
        raise ValueError(f"residue(s) {', '.join(missing)} not in the teacher force field "
                         f"(known: {', '.join(sorted(known))})")


def create_system(topology, *, forcefield=None, cutoff: float = 1.0, constraints: Optional[str] = None,
                  ewald_tolerance: float = 5e-4, opls_mixing: bool = True):
    """OpenMM System of the teacher for ``topology`` (periodic box required).

    cutoff: real-space/LJ cutoff in nm (must be < half the shortest box height);
    constraints: None or 'hbonds'; PME electrostatics. Residues unknown to the force field
    raise ValueError naming them.
    """
    from openmm import app, unit

    ff = forcefield if forcefield is not None else load_forcefield()
    check_topology(topology, cutoff, ff)
    choices = {None: None, "none": None, "hbonds": app.HBonds}
    ckey = constraints.lower() if constraints else None
    if ckey not in choices:
        raise ValueError(f"constraints must be None, 'none' or 'hbonds', got '{constraints}'")
    cons = choices[ckey]
    try:
        system = ff.createSystem(topology, nonbondedMethod=app.PME, nonbondedCutoff=cutoff * unit.nanometer,
                                 constraints=cons, rigidWater=False, ewaldErrorTolerance=ewald_tolerance)
    except ValueError as err:
        raise ValueError(f"teacher force field cannot parametrise the topology: {err}") from None
    if opls_mixing:
        _opls_mixing(system, cutoff)
    image_invariant(system)
    for i, f in enumerate(system.getForces()):
        f.setForceGroup(min(i, 31))
    return system


class Teacher:
    """Energies (eV) and forces (eV/Å) of the teacher for one topology.

    >>> t = Teacher(topology)                               # doctest: +SKIP
    >>> e_ev, f_ev_per_A = t.compute(positions_A, cell_A)   # doctest: +SKIP
    """

    def __init__(self, topology, *, platform: Optional[str] = "Reference", cutoff: float = 1.0,
                 forcefield=None, precision: str = "double"):
        import openmm

        self.topology = topology
        self.system = create_system(topology, forcefield=forcefield, cutoff=cutoff)
        self.cutoff = cutoff
        plat = get_platform(platform)
        props = {}
        if plat.getName() in ("CUDA", "OpenCL"):
            props["Precision"] = precision
        integ = openmm.VerletIntegrator(0.001)
        self.context = openmm.Context(self.system, integ, plat, props)
        self.n_atoms = topology.getNumAtoms()

    def compute(self, positions: np.ndarray, cell: Optional[np.ndarray] = None) -> Tuple[float, np.ndarray]:
        """Potential energy (eV) and forces (N×3, eV/Å) at ``positions`` (Å) in ``cell``
        (3×3 rows = box vectors, Å; default: the topology's box)."""
        return context_energy_forces(self.context, positions, cell, what="the topology")

    def stress(self, positions: np.ndarray, cell: np.ndarray, strain: float = STRESS_STRAIN) -> np.ndarray:
        """Stress (3×3, eV/Å³, ASE sign: σ = (1/V) ∂E/∂ε) at ``positions`` (Å) in ``cell``
        (3×3 rows, Å) by central differences of the energy under homogeneous strain
        (see :func:`context_stress`)."""
        return context_stress(self.context, positions, cell, strain, what="the topology")


def context_energy_forces(context, positions: np.ndarray, cell: Optional[np.ndarray] = None,
                          what: str = "the system", forces: bool = True) -> Tuple[float, Optional[np.ndarray]]:
    """Energy (eV) and forces (N×3, eV/Å; None with ``forces=False``, which skips computing
    them) of an OpenMM ``context`` at ``positions`` (Å) in ``cell`` (3×3 rows = box vectors,
    Å; None: keep the context's box). ValueError naming ``what`` when the number of
    positions is wrong."""
    from openmm import unit

    pos = np.asarray(positions, dtype=float)
    n = context.getSystem().getNumParticles()
    if pos.shape != (n, 3):
        raise ValueError(f"positions have shape {pos.shape}, {what} has {n} atoms")
    if cell is not None:
        context.setPeriodicBoxVectors(*box_vectors_nm(cell))
    context.setPositions(angstrom_to_nm(pos) * unit.nanometer)
    st = context.getState(getEnergy=True, getForces=forces)
    e = float(kjmol_to_ev(st.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)))
    if not forces:
        return e, None
    f = st.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)
    return e, forces_kjmol_nm_to_ev_ang(np.asarray(f))


def _reduced(pos: np.ndarray, cell: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Rotate positions and box together so that the box is lower triangular with a positive
    diagonal (OpenMM's form: a along x, b in the xy plane); energies do not change."""
    q, r = np.linalg.qr(cell.T)  # cell = rᵀ qᵀ, so cell @ q = rᵀ is lower triangular
    q = q * np.sign(np.diag(r))
    box = cell @ q
    box[np.triu_indices(3, 1)] = 0.0  # exact zeros (round-off)
    return pos @ q, box


def context_stress(context, positions: np.ndarray, cell: np.ndarray, strain: float = STRESS_STRAIN,
                   what: str = "the system") -> np.ndarray:
    """Stress tensor (3×3, eV/Å³) of an OpenMM ``context`` at ``positions`` (Å) in ``cell``
    (3×3 rows = box vectors, Å), ASE's convention σ_ab = (1/V) ∂E/∂ε_ab (negative
    diagonal = compressed, pressure = −tr σ / 3), from central differences of the energy
    under symmetric homogeneous strains ε of atoms and box (12 energy evaluations). Exact
    for any energy, including ones OpenMM has no virial for (PME, custom forces). The
    context's positions and box are left at the strained ones: set them again before use.
    """
    pos = np.asarray(positions, dtype=float)
    c = np.asarray(cell, dtype=float)
    if c.shape != (3, 3) or not abs(np.linalg.det(c)) > 0:
        raise ValueError(f"stress needs a periodic box (3x3, non-singular), got cell {c.tolist()}")
    if not 0 < strain < 0.05:
        raise ValueError(f"strain step must be in (0, 0.05), got {strain}")
    sigma = np.zeros((3, 3))
    for a in range(3):
        for b in range(a, 3):
            e = []
            for sgn in (1.0, -1.0):
                eps = np.zeros((3, 3))
                eps[a, b] += 0.5 * sgn * strain
                eps[b, a] += 0.5 * sgn * strain
                p, box = _reduced(pos @ (np.eye(3) + eps).T, c @ (np.eye(3) + eps).T)
                e.append(context_energy_forces(context, p, box, what, forces=False)[0])
            d = (e[0] - e[1]) / (2.0 * strain)  # ∂E/∂ε_ab (= ∂E/∂ε_ba) for a symmetric strain
            sigma[a, b] = sigma[b, a] = d
    return sigma / abs(float(np.linalg.det(c)))


__all__ = ["STRESS_STRAIN", "TEACHER_NAME", "TEACHER_XML", "Teacher", "box_density", "context_energy_forces",
           "check_topology", "context_stress", "create_system", "get_platform",
           "image_invariant", "load_forcefield", "topology_from_residues"]
