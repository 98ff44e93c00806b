"""Energy minimisation before MD. A System with constraints (the default: bonds to H) gets
a steepest descent with a capped step (:func:`capped_minimize`) and then a projection onto
the constraints; one without constraints OpenMM's L-BFGS, falling back to the capped descent
when the model rejects a trial point. Both report progress (``progress``: a tqdm bar of
iterations) and stop early when ``stop()`` turns true (Ctrl-C); :func:`openmm_message`
shortens OpenMM's error messages."""
from __future__ import annotations

import math
from typing import Any, Callable, Dict, Optional

import numpy as np

Stop = Optional[Callable[[], bool]]


def _bar(total: int, desc: str, progress: bool):
    from tqdm import tqdm

    return tqdm(total=int(total), unit="it", disable=not progress, dynamic_ncols=True, desc=desc, leave=False)



def capped_minimize(context, max_iterations: int = 1000, tolerance: float = 10.0,
                    max_step_nm: float = 0.01, *, stop: Stop = None, progress: bool = False) -> Dict[str, Any]:
    """Steepest descent whose largest atom displacement per iteration is at most
    ``max_step_nm`` (nm); stops when the largest force is below ``tolerance`` (kJ/mol/nm).

    Slower than OpenMM's L-BFGS but never stretches a molecule by a large trial step, which
    the model refuses (a grain wider than half the box). A trial point the model rejects
    (or with a higher energy) halves the step. ``stop()`` true ends it early (the summary
    then has ``"stopped": True``); ``progress`` shows a tqdm bar. Returns a summary dict.
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
    stopped = False
    bar = _bar(max_iterations, "minimising (capped steepest descent)", progress)
    for it in range(1, int(max_iterations) + 1):
        fmax = float(np.linalg.norm(f, axis=1).max())
        if fmax < tolerance:
            break
        if stop is not None and stop():
            stopped = True
            break
        bar.update(1)
        if it % 10 == 1:
            bar.set_postfix_str(f"E {e:.6g} kJ/mol, max force {fmax:.3g} kJ/mol/nm", refresh=False)
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
    bar.close()
    context.setPositions(x)
    out = {"method": "capped steepest descent", "iterations": it, "energy_start_kJ_mol": e0,
           "energy_kJ_mol": e, "max_force_kJ_mol_nm": float(np.linalg.norm(f, axis=1).max())}
    if stopped:
        out["stopped"] = True
    return out


def minimize_energy(context, max_iterations: int = 1000, tolerance: float = 10.0, *, stop: Stop = None,
                    progress: bool = False) -> Dict[str, Any]:
    """With constraints in the System (the default of cgaa simulate: bonds to H),
    :func:`capped_minimize` then a projection onto the constraints. Without, OpenMM's L-BFGS;
    if the model rejects one of its trial points (large first steps can stretch a molecule
    past what the model accepts), start again from the input positions with
    :func:`capped_minimize`. ``stop()`` true ends either early (``"stopped": True`` in the
    summary); ``progress`` shows a bar of iterations. Energies kJ/mol, forces kJ/mol/nm."""
    import openmm
    from openmm.unit import kilojoule_per_mole

    start = context.getState(getPositions=True, getEnergy=True)
    e0 = start.getPotentialEnergy().value_in_unit(kilojoule_per_mole)
    if context.getSystem().getNumConstraints() > 0:
        # OpenMM's L-BFGS enforces constraints by repeated passes with ever stiffer
        # penalties, each costing up to max_iterations model evaluations; a bounded steepest
        # descent followed by a projection onto the constraints is far cheaper.
        out = capped_minimize(context, max_iterations, tolerance, stop=stop, progress=progress)
        context.applyConstraints(1e-6)
        out["energy_kJ_mol"] = context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(kilojoule_per_mole)
        out["constraints"] = "applied after the descent"
        return out
    bar = _bar(max_iterations, "minimising (L-BFGS)", progress)

    class Reporter(openmm.MinimizationReporter):
        stopped = False
        iterations = 0

        def report(self, iteration, x, grad, args):
            self.iterations += 1
            bar.update(1)
            if iteration % 10 == 0:
                bar.set_postfix_str(f"E {args.get('system energy', float('nan')):.6g} kJ/mol", refresh=False)
            if stop is not None and stop():
                Reporter.stopped = True
                return True
            return False

    reporter = Reporter()
    try:
        openmm.LocalEnergyMinimizer.minimize(context, tolerance, int(max_iterations), reporter)
        e = context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(kilojoule_per_mole)
        if math.isfinite(e):
            out = {"method": "L-BFGS (OpenMM)", "iterations": reporter.iterations, "energy_start_kJ_mol": e0,
                   "energy_kJ_mol": e}
            if Reporter.stopped:
                out["stopped"] = True
            return out
        why = f"energy {e}"
    except openmm.OpenMMException as err:
        why = openmm_message(err)
    finally:
        bar.close()
    context.setPositions(start.getPositions())
    if stop is not None and stop():
        return {"method": "L-BFGS (OpenMM)", "energy_start_kJ_mol": e0, "energy_kJ_mol": e0, "stopped": True,
                "lbfgs_failed": why}
    out = capped_minimize(context, max_iterations, tolerance, stop=stop, progress=progress)
    out["lbfgs_failed"] = why
    return out


def openmm_message(err: Exception) -> str:
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    msg = next((ln for ln in reversed(lines) if "Error" in ln or "error" in ln), lines[-1] if lines else repr(err))
    return msg[:500]
