"""OpenMM MD speed on one CUDA GPU: CGAA (shipped model), the all-atom baseline and the classical
teacher, CUDA graphs on and off (cgaa.openmm.create_system(cuda_graphs=...)), r-RESPA 2 fs for CGAA;
one JSON report. Driven by docs/benchmarks/gpu-md.sh, which documents the device command.

Each case runs in its own subprocess with a wall-clock limit (a failing or hanging case is recorded
and skipped); the whole run stops starting cases after --budget seconds. Per case: build and
Context set-up time, first-step time (CUDA-graph capture included), the median wall time per step
over a short window (steps timed in blocks of 10 with a synchronising getState at each end), and
whether the final energy is finite.

    python docs/benchmarks/gpu_md.py --boxes DIR --out report.json [--sizes 1000,10000,100000]
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path


def case_main(spec: dict) -> dict:
    """One measurement (runs in a subprocess)."""
    import numpy as np
    import openmm
    import torch
    from openmm import unit

    from cgaa.bench.speed_workers import _build_model
    from cgaa.openmm.mts import mts_integrator, split_force_groups
    from cgaa.openmm.system import create_system
    from cgaa.openmm.torchforce import ensure_torch_plugins
    from cgaa.systems.boxfile import read_box
    from cgaa.teacher.forcefield import create_system as teacher_system

    ensure_torch_plugins()
    t0 = time.perf_counter()
    pdb = read_box(spec["box"])
    numbers = np.array([a.element.atomic_number for a in pdb.topology.atoms()])
    if spec["engine"] == "teacher":
        system = teacher_system(pdb.topology, cutoff=1.0)
    else:
        from cgaa.bench.speed_workers import shipped_hyper, shipped_model_path

        model = shipped_model_path()
        s = {"engine": spec["engine"], "model": str(model) if model else None, "device": "cpu",
             "hyper": None if model else shipped_hyper()}
        deployed, _ = _build_model(s, pdb.topology, numbers)
        system = create_system(pdb.topology, deployed, cuda_graphs=spec["graphs"])
    substeps = int(spec.get("substeps", 1))
    if substeps > 1:
        split_force_groups(system)
        integ = mts_integrator(float(substeps), substeps, temperature=298.15, friction_per_ps=1.0, seed=1)
    else:
        integ = openmm.LangevinMiddleIntegrator(298.15 * unit.kelvin, 1.0 / unit.picosecond, 1.0 * unit.femtosecond)
    ctx = openmm.Context(system, integ, openmm.Platform.getPlatformByName("CUDA"), {"Precision": "mixed"})
    ctx.setPositions(pdb.positions)
    if spec["engine"] == "teacher":
        openmm.LocalEnergyMinimizer.minimize(ctx, 10.0, 100)
    ctx.setVelocitiesToTemperature(298.15 * unit.kelvin, 1)
    setup_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    integ.step(1)
    ctx.getState(getEnergy=True)
    first_s = time.perf_counter() - t1
    integ.step(int(spec["warmup"]))
    ctx.getState(getEnergy=True)
    blocks, deadline = [], time.perf_counter() + float(spec["seconds"])
    while time.perf_counter() < deadline or len(blocks) < 3:
        t = time.perf_counter()
        integ.step(10)
        ctx.getState(getEnergy=True)
        blocks.append((time.perf_counter() - t) / 10)
        if len(blocks) >= 200:
            break
    e = ctx.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    ms = 1e3 * float(np.median(blocks))
    fs = float(substeps)
    return {"setup_s": setup_s, "first_step_s": first_s, "median_ms_per_step": ms, "timestep_fs": fs,
            "ns_per_day": 86400e3 / ms * fs * 1e-6, "steps_timed": 10 * len(blocks),
            "energy_finite": bool(math.isfinite(e)), "atoms": int(len(numbers)),
            "gpu_peak_mib": torch.cuda.max_memory_allocated() / 2 ** 20 if torch.cuda.is_available() else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--boxes", required=True, help="folder of packed boxes (box_for naming)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--allatom-max", type=int, default=10000)
    ap.add_argument("--budget", type=float, default=330.0, help="seconds; no case starts after this")
    ap.add_argument("--case-timeout", type=float, default=90.0)
    ap.add_argument("--seconds", type=float, default=4.0, help="timed window per case")
    ap.add_argument("--case", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.case:
        print("RESULT " + json.dumps(case_main(json.loads(a.case))), flush=True)
        return
    from cgaa.bench.speed import box_for

    sizes = [int(s) for s in a.sizes.split(",") if s]
    cases = []
    for n in sizes:
        for g in (True, False):
            cases.append({"engine": "cgaa", "n": n, "graphs": g, "substeps": 1})
        cases.append({"engine": "cgaa", "n": n, "graphs": True, "substeps": 2})
        if n <= a.allatom_max:
            for g in (True, False):
                cases.append({"engine": "allatom", "n": n, "graphs": g, "substeps": 1})
            cases.append({"engine": "teacher", "n": n, "graphs": False, "substeps": 1})
    report = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "cases": []}
    start = time.perf_counter()
    for c in cases:
        row = dict(c)
        if time.perf_counter() - start > a.budget:
            row["skipped"] = "time budget spent"
            report["cases"].append(row)
            continue
        try:
            path, atoms, _ = box_for("lipf6-ec-emc-1m", c["n"], a.boxes, 0)
            spec = dict(c, box=str(path), warmup=10 if c["graphs"] else 5, seconds=a.seconds)
            left = max(10.0, a.budget + a.case_timeout - (time.perf_counter() - start))
            p = subprocess.run([sys.executable, __file__, "--boxes", a.boxes, "--out", a.out, "--case", json.dumps(spec)],
                               capture_output=True, text=True, timeout=min(a.case_timeout, left))
            lines = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
            if p.returncode == 0 and lines:
                row.update(json.loads(lines[-1][7:]))
            else:
                row["error"] = (p.stderr or p.stdout)[-1500:]
        except subprocess.TimeoutExpired:
            row["error"] = f"timed out after {a.case_timeout:.0f} s"
        except Exception as err:  # a box that cannot be packed, ...
            row["error"] = f"{type(err).__name__}: {err}"[-1500:]
        row["wall_s"] = round(time.perf_counter() - start, 1)
        print(json.dumps(row)[:400], flush=True)
        report["cases"].append(row)
        Path(a.out).write_text(json.dumps(report, indent=1))  # after every case: a kill keeps the rest
    report["total_s"] = time.perf_counter() - start
    Path(a.out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
