"""Multiple time stepping (r-RESPA) for CGAA Systems: the learned force every step, the
classical intra-grain forces several times per step.

A CGAA System (:func:`cgaa.openmm.create_system`) holds two kinds of forces:

* **slow**: the CGAA TorchForce (the network, which carries the interactions between grains
  and the residual of the teacher over its prior), the prior's forces between molecules
  (``teacher_coulomb``'s PME Coulomb, ``teacher_dispersion``'s r⁻⁶ tail), the contact guard
  (a wall between grains) and the zero-strength molecule bonds. They change on the time
  scale on which molecules move against each other, and they are ~98 % of the force time of
  a step (the shipped model's 1000-atom box on one CPU thread: ~79 of ~81 ms);
* **fast**: the prior's terms inside a grain (bond stretches, angles, torsions,
  intramolecular non-bonded pairs) and the bond guard: bond vibrations, cheap to evaluate.

:func:`split_force_groups` puts the two in separate OpenMM force groups and
:func:`mts_integrator` builds OpenMM's r-RESPA integrators over them
(``openmm.mtsintegrator``: ``MTSLangevinIntegrator``, BAOAB-RESPA, for nvt/npt, and
``MTSIntegrator``, velocity Verlet, for nve): one step of ``timestep_fs`` evaluates the slow
forces once and the fast ones ``substeps`` times (Tuckerman, Berne and Martyna, J. Chem.
Phys. 97, 1990 (1992); Lagardère et al., J. Phys. Chem. Lett. 10, 2593 (2019)). With
``timestep_fs=2, substeps=2`` bonds are integrated at 1 fs and the network is evaluated
every 2 fs, half the network calls per simulated ns.

The fast forces act inside grains only, so their net force on every grain is zero
(tests/test_mts.py): the split never moves a molecule's centre on the fast time scale.
How large a step the slow forces tolerate is the user's check (energy drift in nve, and the
property of interest against a smaller step; docs/simulate.md). For the shipped model
(docs/benchmarks.md, *Multiple time stepping*) a 2 fs step keeps density, Li⁺ shell and ion
diffusion of 1 fs runs; a 4 fs step conserves energy and keeps the density and the shell, but
Li⁺ and PF6⁻ diffuse 2–3× faster.
"""
from __future__ import annotations

import numbers
from typing import Any, List, Optional, Tuple
from cgaa.openmm.guards import CONTACT_GUARD_NAME, MOLECULE_BONDS_NAME
from cgaa.openmm.torchforce import FORCE_NAME
from cgaa.priors import COULOMB, DISPERSION, PRIOR_FORCE_PREFIX

#: Force group of the fast (intra-grain, classical) forces.
FAST_GROUP = 0
#: Force group of the slow forces (the network and everything between grains).
SLOW_GROUP = 1


def check_substeps(value: Any, name: str = "fast_substeps") -> int:
    """``value`` as an int >= 1; ValueError naming ``name`` otherwise (bools, 2.5, "3", 0)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def slow_force_names() -> Tuple[str, ...]:
    """Names (``force.getName()``) of the forces a CGAA System evaluates on the slow step."""

    return (FORCE_NAME, PRIOR_FORCE_PREFIX + COULOMB, PRIOR_FORCE_PREFIX + DISPERSION,
            CONTACT_GUARD_NAME, MOLECULE_BONDS_NAME)


def split_force_groups(system, slow_group: int = SLOW_GROUP, fast_group: int = FAST_GROUP
                       ) -> Tuple[List[str], List[str]]:
    """Put the slow forces of ``system`` (:func:`slow_force_names`) in ``slow_group`` and
    every other force in ``fast_group``; returns (slow names, fast names).

    Forces a user added (restraints, ``customize_system``) go to the fast group: they are
    then integrated exactly as without multiple time stepping. ValueError if the System has
    no CGAA TorchForce (nothing to evaluate less often) or the groups are equal or outside
    0-31.
    """

    for g in (slow_group, fast_group):
        if not 0 <= int(g) <= 31:
            raise ValueError(f"force groups must be 0-31, got {g}")
    if int(slow_group) == int(fast_group):
        raise ValueError(f"slow and fast force groups must differ, both are {slow_group}")
    names = set(slow_force_names())
    slow, fast = [], []
    for f in system.getForces():
        name = f.getName() or type(f).__name__
        if f.getName() in names:
            f.setForceGroup(int(slow_group))
            slow.append(name)
        else:
            f.setForceGroup(int(fast_group))
            fast.append(name)
    if FORCE_NAME not in slow:
        raise ValueError(f"the System has no CGAA TorchForce (a force named {FORCE_NAME!r}): multiple time "
                         "stepping evaluates it less often than the classical forces; build the System with "
                         "cgaa.openmm.create_system")
    return slow, fast


def mts_integrator(timestep_fs: float, substeps: int, temperature: Optional[float] = None,
                   friction_per_ps: float = 1.0, seed: int = 0, slow_group: int = SLOW_GROUP,
                   fast_group: int = FAST_GROUP):
    """An r-RESPA integrator over the groups of :func:`split_force_groups`.

    timestep_fs: the step of the slow forces (fs); the fast ones step at
        ``timestep_fs / substeps``.
    substeps: fast steps per step (>= 1; 1 evaluates both groups once per step).
    temperature: K; None gives ``MTSIntegrator`` (velocity Verlet, constant energy), a
        value ``MTSLangevinIntegrator`` (BAOAB-RESPA with friction ``friction_per_ps`` in 1/ps
        and random seed ``seed``).
    """
    from openmm.mtsintegrator import MTSIntegrator, MTSLangevinIntegrator
    from openmm.unit import femtosecond, kelvin, picosecond

    n = check_substeps(substeps, "substeps")
    if not float(timestep_fs) > 0:
        raise ValueError(f"timestep_fs must be > 0, got {timestep_fs}")
    groups = [(int(slow_group), 1), (int(fast_group), n)]
    dt = float(timestep_fs) * femtosecond
    if temperature is None:
        return MTSIntegrator(dt, groups)
    integ = MTSLangevinIntegrator(float(temperature) * kelvin, float(friction_per_ps) / picosecond, dt, groups)
    integ.setRandomNumberSeed(int(seed))
    return integ


__all__ = ["FAST_GROUP", "SLOW_GROUP", "check_substeps", "slow_force_names", "split_force_groups", "mts_integrator"]
