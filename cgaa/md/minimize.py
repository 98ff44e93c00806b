"""Energy minimisation before MD: OpenMM's L-BFGS, falling back to a steepest descent
with a capped step (:func:`capped_minimize`) when the model rejects a trial point or the
System has constraints; :func:`openmm_message` shortens OpenMM's error messages."""
from __future__ import annotations

import math
from typing import Any, Dict

import numpy as np



def capped_minimize(context, max_iterations: int = 1000, tolerance: float = 10.0,
                    max_step_nm: float = 0.01) -> Dict[str, Any]:
    """Steepest descent whose largest atom displacement per iteration is at most
    ``max_step_nm`` (nm); stops when the largest force is below ``tolerance`` (kJ/mol/nm).

    Slower than OpenMM's L-BFGS but never stretches a molecule by a large trial step, which
    the model refuses (a grain wider than half the box). A trial point the model rejects
    (or with a higher energy) halves the step. Returns a summary dict.
    """
    import openmm
    from openmm.unit import kilojoule_per_mole, nanometer

    def evaluate(x):
        context.setPositions(x)
        st = context.getState(getEnergy=True, getForces=True)
        return (st.getPotentialEnergy().value_in_unit(kilojoule_per_mole),
                st.getForces(asNumpy=True).value_in_unit(kilojoule_per_mole / nanometer))

    x = context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(nanometer)
    e, f = evaluate(x)
    e0 = e
    step = max_step_nm
    it = 0
    for it in range(1, int(max_iterations) + 1):
        fmax = float(np.linalg.norm(f, axis=1).max())
        if fmax < tolerance:
            break
        trial = x + f * (step / fmax)
        try:
            e2, f2 = evaluate(trial)
            ok = math.isfinite(e2) and e2 < e
        except openmm.OpenMMException:
            ok = False
        if ok:
            x, e, f = trial, e2, f2
            step = min(step * 1.2, max_step_nm)
        else:
            step *= 0.5
            if step < 1e-7:
                break
    context.setPositions(x)
    return {"method": "capped steepest descent", "iterations": it, "energy_start_kJ_mol": e0,
            "energy_kJ_mol": e, "max_force_kJ_mol_nm": float(np.linalg.norm(f, axis=1).max())}


def minimize_energy(context, max_iterations: int = 1000, tolerance: float = 10.0) -> Dict[str, Any]:
    """OpenMM's L-BFGS minimiser; if the model rejects one of its trial points (large
    first steps can stretch a molecule past what the model accepts), start again from the
    input positions with :func:`capped_minimize`. With constraints in the system,
    :func:`capped_minimize` then a projection onto the constraints. Energies kJ/mol,
    forces kJ/mol/nm."""
    import openmm
    from openmm.unit import kilojoule_per_mole

    start = context.getState(getPositions=True, getEnergy=True)
    e0 = start.getPotentialEnergy().value_in_unit(kilojoule_per_mole)
    if context.getSystem().getNumConstraints() > 0:
        # OpenMM's L-BFGS enforces constraints by repeated passes with ever stiffer
        # penalties, each costing up to max_iterations model evaluations; a bounded steepest
        # descent followed by a projection onto the constraints is far cheaper.
        out = capped_minimize(context, max_iterations, tolerance)
        context.applyConstraints(1e-6)
        out["energy_kJ_mol"] = context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(kilojoule_per_mole)
        out["constraints"] = "applied after the descent"
        return out
    try:
        openmm.LocalEnergyMinimizer.minimize(context, tolerance, int(max_iterations))
        e = context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(kilojoule_per_mole)
        if math.isfinite(e):
            return {"method": "L-BFGS (OpenMM)", "energy_start_kJ_mol": e0, "energy_kJ_mol": e}
        why = f"energy {e}"
    except openmm.OpenMMException as err:
        why = openmm_message(err)
    context.setPositions(start.getPositions())
    out = capped_minimize(context, max_iterations, tolerance)
    out["lbfgs_failed"] = why
    return out


def openmm_message(err: Exception) -> str:
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    msg = next((ln for ln in reversed(lines) if "Error" in ln or "error" in ln), lines[-1] if lines else repr(err))
    return msg[:500]
