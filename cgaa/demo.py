"""``make demo`` / ``cgaa demo``: build a small 1 M LiPF6 EC/EMC box, run a short CGAA
simulation with the shipped model and write a Li diffusivity report.

It is a tour of the pipeline, not a converged measurement: a few picoseconds are far too
short for a diffusive MSD, and the report says so. For real numbers run
``cgaa simulate`` for nanoseconds (see docs/simulate.md) and ``cgaa analyze``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Optional, Union
from cgaa.analysis import analyze_run_dir, write_report
from cgaa.core.fileio import write_text_atomic
from cgaa.md.run import run_simulation
from cgaa.systems.build import build_box

RECIPE = "lipf6-ec-emc-1m"


def run_demo(out_dir: Union[str, Path] = "demo-run", n_atoms: int = 1000, steps: int = 2000,
             model: Optional[Union[str, Path]] = None, platform: str = "CPU", seed: int = 0,
             progress: bool = True) -> Dict[str, object]:
    """Build → simulate (NVT, 298.15 K, 1 fs, after minimisation and cgaa simulate's default
    1 ps thermalisation) → analyze, in ``out_dir``.

    Returns a summary dict (also written to ``out_dir/demo_summary.json``) with the box,
    the simulation speed (ns/day) and the Li diffusion coefficient (m²/s) with its fit
    window and whether the MSD was diffusive.
    """

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    say = print if progress else (lambda *a, **k: None)
    say(f"[1/3] building a {RECIPE} box of ~{n_atoms} atoms")
    box = build_box(RECIPE, n_atoms, out / "box.pdb", seed=seed)
    say(box.summary())
    say(f"[2/3] CGAA molecular dynamics: minimisation, 1 ps thermalisation, then {steps} steps of 1 fs, "
        f"NVT 298.15 K, platform {platform}")
    sim = run_simulation(out / "box.pdb", model=model, out_dir=out / "run", ensemble="nvt", temperature=298.15,
                         timestep_fs=1.0, steps=steps, report_interval=max(steps // 200, 1),
                         checkpoint_interval=max(steps // 4, 1), platform=platform, seed=seed,
                         minimize_iterations=200, constraints="hbonds", overwrite=True, progress=progress)
    say(f"      {sim.steps} steps, {sim.time_ps:.2f} ps at {sim.ns_per_day:.3f} ns/day (MD steps alone), "
        f"mean T {sim.mean_temperature_K:.1f} K")
    say("[3/3] analysis: MSD, diffusion coefficients, RDFs, Li solvation")
    res = analyze_run_dir(out / "run")
    write_report(res, out / "analysis")
    li = next((s for s in res.species if s.kind == "cation"), None)
    d = res.diffusion.get(li.name) if li is not None else None
    summary: Dict[str, object] = {
        "recipe": RECIPE,
        "box": str(out / "box.pdb"), "counts": box.counts, "run": str(out / "run"),
        "simulated_ps": sim.time_ps, "ns_per_day": sim.ns_per_day,
        "analysis": str(out / "analysis"),
    }
    if d is not None:
        # cgaa.analysis flags runs too short for diffusion (min_run_ps) and non-linear MSDs itself
        diffusive = bool(d.window.diffusive)
        summary["li"] = {"species": li.name, "D_m2_s": d.D_m2_s, "D_err_m2_s": d.D_err_m2_s,
                         "fit_window_ps": [d.window.start_ps, d.window.end_ps], "diffusive": diffusive}
        say(f"Li diffusion coefficient: D = {d.D_m2_s:.3e} ± {d.D_err_m2_s:.1e} m²/s "
            f"(fit {d.window.start_ps:.2f}–{d.window.end_ps:.2f} ps)")
        if not diffusive:
            say(f"  note: NOT a measurement — {d.window.reason}. Run `cgaa simulate` for nanoseconds and "
                "`cgaa analyze` for real numbers.")
    for w in res.warnings:
        say(f"  warning: {w}")
    write_text_atomic(out / "demo_summary.json", json.dumps(summary, indent=2, default=str))
    say(f"report: {out / 'analysis' / 'report.json'} (plots in {out / 'analysis'})")
    return summary
