"""Speed and memory: CGAA vs the all-atom baseline vs the classical teacher (vs SevenNet-0).

For each box size (atoms) of a recipe, and each *engine*:

* ``cgaa`` — the CGAA model (a deployed TorchScript file, the shipped model, or an
  untrained model of the shipped architecture: timings do not depend on the weights);
* ``allatom`` — the same network with every atom its own grain
  (:func:`cgaa.core.grains.atomic_grains`), same channels, layers, lmax and radial sizes, and a
  typical MLIP atom cutoff (default 5 Å), untrained;
* ``teacher`` — the classical OPLS-AA-type teacher (PME) in OpenMM's CPU platform;
* ``sevenn`` — the quantum-level teacher as ``cgaa label -c sevenn`` runs it: SevenNet-0 plus
  D3(BJ) through ASE (:func:`cgaa.teacher.quantum.sevennet_d3`; the D3 part also timed alone),
  only when the ``cgaa[sevenn]`` extra is installed (otherwise reported as skipped with the reason);

and each *task*:

* ``eval`` — one energy+force evaluation (TorchScript model called on the box; for the
  teacher ``Context.getState(energy, forces)``): warm-up calls, then the median of up to
  ``repeats`` timed calls (s); for the ML models also what one call launches
  (:func:`launch_profile`: ATen ops; on a GPU CUDA kernels, GPU busy time, host syncs);
* ``md`` — OpenMM MD steps (``LangevinMiddleIntegrator``, 1 fs, 298.15 K, CPU platform,
  ``create_system(topology, model)`` for the ML models): median ms/step and ns/day. With
  ``fast_substeps`` n > 1 the CGAA engine runs r-RESPA instead (:mod:`cgaa.openmm.mts`:
  ``MTSLangevinIntegrator``, the network and the forces between grains every n fs, the
  prior's intra-grain terms every 1 fs); its times are then reported per fs of MD, which is
  what the ratios compare.

Every (engine, task, size) runs in a fresh Python subprocess, so peak memory is its own:
the report gives the peak resident set size (``ru_maxrss``) of that process, the
baseline just before the model/system was built (after imports and reading the box),
and their difference (and the CUDA max allocated memory on GPU). That difference is a
high-water mark over a baseline whose own peak (imports, reading the box) can hide part of
a small model's memory; for the ML evaluations on the CPU the report therefore also gives
the peak of live tensor memory during one evaluation (``tensor_peak_MiB``,
:func:`tensor_peak_mib`), the CPU analogue of CUDA max allocated. A process whose RSS
passes ``mem_limit_gib`` or that runs past ``timeout_s`` is stopped and reported as such.
Threads: ``torch.set_num_threads(threads)`` and the OpenMM CPU platform's ``Threads``.

The cost scaling exponent is a least-squares fit of log(time) against log(atoms).

The code is split by job: this module runs the benchmark (:func:`run_speed`: boxes, which
measurement runs or is skipped and why) and keeps every name of the benchmark importable
as ``cgaa.bench.speed.X``; :mod:`cgaa.bench.speed_workers` measures (the subprocess worker
and its per-engine ``eval``/``md`` measurements, the timing and memory tools);
:mod:`cgaa.bench.speed_report` reports (ratios, scaling exponents, Markdown, plot, files).
"""
from __future__ import annotations

import importlib.util
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple

from cgaa.bench.report import available_cores, header
from cgaa.bench.speed_report import (describe_result, finish_speed_report, fit_exponent, speed_markdown, speed_plot,
                                     write_speed_outputs)
from cgaa.bench.speed_workers import (_VOCAB_KEYS, ENGINES, SHIPPED_CONFIG, TASKS, WORKER_MODULE, PathLike,
                                      _main_worker, box_tensors_nm, cpu_summary_ms, graph_stats,
                                      interleaved_cpu_times, launch_profile, ns_per_day, peak_rss_mib, run_worker,
                                      shipped_hyper, shipped_model_path, tensor_peak_mib, timed_calls, worker)
from cgaa.core.model import ModelConfig
from cgaa.core.modelfile import read_metadata
from cgaa.core.units import angstrom_to_nm, box_heights_nm, nm_to_angstrom
from cgaa.openmm.mts import check_substeps
from cgaa.systems.boxfile import read_box
from cgaa.systems.build import box_suffix_for, build_box

__all__ = [
    # running the benchmark (this module)
    "run_speed", "box_for", "allatom_above_limit",
    # measuring (cgaa.bench.speed_workers)
    "ENGINES", "TASKS", "SHIPPED_CONFIG", "WORKER_MODULE", "PathLike", "peak_rss_mib", "ns_per_day", "timed_calls",
    "tensor_peak_mib", "launch_profile", "interleaved_cpu_times", "cpu_summary_ms", "box_tensors_nm",
    "shipped_hyper", "shipped_model_path", "graph_stats", "worker", "run_worker",
    # reporting (cgaa.bench.speed_report)
    "fit_exponent", "describe_result", "finish_speed_report", "speed_markdown", "speed_plot", "write_speed_outputs",
]


def box_for(recipe: str, n_atoms: int, box_dir: PathLike, seed: int = 0) -> Tuple[Path, int, float]:
    """(box file path, actual atoms, shortest box height Å) of a packed box, built once and
    reused: PDB, or PDBx/mmCIF above 99,999 atoms."""

    box_dir = Path(box_dir)
    path = box_dir / f"{Path(str(recipe)).stem}-{n_atoms}-s{seed}{box_suffix_for(recipe, n_atoms)}"
    if not path.is_file():
        build_box(recipe, n_atoms, path, seed=seed)
    pdb = read_box(path)
    heights_A = nm_to_angstrom(box_heights_nm(pdb.topology.getPeriodicBoxVectors()))
    return path, pdb.topology.getNumAtoms(), float(heights_A.min())


def _sevenn_available() -> Tuple[bool, str]:
    """Whether the quantum-level teacher (SevenNet-0 + D3, the ``cgaa[sevenn]`` extra) can be imported."""
    try:
        for mod in ("sevenn", "dftd3"):
            if importlib.util.find_spec(mod) is None:
                return False, f"the optional package '{mod}' is not installed (pip install \"cgaa[sevenn]\")"
        return True, ""
    except Exception as err:  # pragma: no cover
        return False, f"sevenn cannot be found: {err}"


def allatom_above_limit(target_atoms: int, allatom_max_atoms: int) -> bool:
    """Whether the all-atom baseline is skipped for a box requested with ``target_atoms``
    atoms (the ``sizes`` value; the packed box may hold a few more): true when
    ``allatom_max_atoms`` is set (> 0) and ``target_atoms`` exceeds it."""
    return bool(allatom_max_atoms) and int(target_atoms) > int(allatom_max_atoms)


def run_speed(
    sizes: Sequence[int],
    out_dir: PathLike,
    *,
    recipe: str = "lipf6-ec-emc-1m",
    engines: Sequence[str] = ENGINES,
    tasks: Sequence[str] = TASKS,
    model: Optional[PathLike] = None,
    hyper: Optional[Dict[str, Any]] = None,
    cutoff: Optional[float] = None,
    allatom_cutoff: float = 5.0,
    allatom_max_atoms: int = 0,
    teacher_cutoff_nm: float = 1.0,
    threads: Optional[int] = None,
    warmup: int = 5,
    repeats: int = 10,
    md_steps: int = 50,
    budget_s: float = 60.0,
    timeout_s: float = 600.0,
    mem_limit_gib: float = 0.0,
    seed: int = 0,
    device: str = "cpu",
    fast_substeps: int = 1,
    command: Optional[str] = None,
    progress: bool = True,
) -> Dict[str, Any]:
    """Measure speed and memory of the engines on boxes of ``sizes`` atoms; write
    ``speed.json``, ``speed.md`` and ``speed.png`` to ``out_dir`` and return the report.

    model: deployed CGAA model (default: the shipped one if it exists, else an untrained
        model of the shipped architecture); ``"untrained"`` forces the untrained model.
    hyper: hyper-parameters of the untrained model replacing the shipped architecture's
        (:class:`cgaa.core.model.ModelConfig` names, e.g. ``{"intra_lmax": 0}``): what-if timings.
    cutoff: override of the CGAA inter-grain cutoff (untrained model only; Å).
    allatom_cutoff: atom cutoff of the all-atom baseline (Å).
    allatom_max_atoms: do not run the all-atom baseline on boxes requested with more than
        this many atoms (compared with the ``sizes`` value, not the packed box's atom count,
        which can exceed it by a few atoms; 0: no limit).
    teacher_cutoff_nm: real-space/LJ cutoff of the teacher (nm; its default 1.0).
    threads: torch / OpenMM CPU threads (default: the cores available).
    warmup, repeats, budget_s: warm-up calls (TorchScript's profiling executor needs ~3
        before it has optimised the graph), at most ``repeats`` timed calls, stopping
        once ``budget_s`` seconds are spent (at least 3 calls).
    md_steps: at most this many timed MD steps (after ``warmup`` steps).
    fast_substeps: > 1: the CGAA engine's MD is r-RESPA with a step of ``fast_substeps`` fs,
        its intra-grain prior integrated at 1 fs (:mod:`cgaa.openmm.mts`); the other engines
        keep 1 fs steps. MD times are compared per fs.
    timeout_s, mem_limit_gib: per-measurement limits (0 GiB: none).
    """

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for e in engines:
        if e not in ENGINES:
            raise ValueError(f"unknown engine {e!r} (known: {', '.join(ENGINES)})")
    for t in tasks:
        if t not in TASKS:
            raise ValueError(f"unknown task {t!r} (known: {', '.join(TASKS)})")
    if not sizes:
        raise ValueError("give at least one box size")

    fast_substeps = check_substeps(fast_substeps)
    threads = int(threads or available_cores())
    if model is None:
        model = shipped_model_path()
    elif str(model) == "untrained":
        model = None
    base_hyper = None
    override: Dict[str, Any] = {}
    if hyper and model is not None:
        raise ValueError("hyper-parameters can only be set for an untrained model (model='untrained')")
    if model is None:
        known = {f.name for f in fields(ModelConfig)} - set(_VOCAB_KEYS)
        bad = sorted(set(hyper or {}) - known)
        if bad:
            raise ValueError(f"unknown model hyper-parameter(s) {', '.join(bad)} (known: {', '.join(sorted(known))})")
        base_hyper = shipped_hyper()
        base_hyper.update(hyper or {})
        if cutoff is not None:
            base_hyper["cutoff"] = float(cutoff)
        src = "untrained, shipped architecture" + (
            " with " + ", ".join(f"{k}={v}" for k, v in sorted((hyper or {}).items())) if hyper else "")
        model_desc = {"source": src, "hyper": base_hyper}
        cg_cutoff = float(base_hyper.get("cutoff", 8.0))
    else:

        if cutoff is not None:
            raise ValueError("cutoff can only be overridden for an untrained model (no --model)")
        meta = read_metadata(model)
        model = str(Path(model).resolve())
        model_desc = {"source": model, "hyper": {k: v for k, v in meta["config"].items() if k not in _VOCAB_KEYS}}
        cg_cutoff = float(meta["cutoff"])
    override_all = {"cutoff": float(allatom_cutoff)}
    sev_ok, sev_reason = _sevenn_available()

    rep = header("speed", command)
    rep.update({"recipe": recipe, "threads": threads, "device": device, "model": model_desc,
                "allatom_cutoff_A": float(allatom_cutoff), "cgaa_cutoff_A": cg_cutoff,
                "allatom_max_atoms": int(allatom_max_atoms),
                "teacher_cutoff_nm": float(teacher_cutoff_nm),
                "settings": {"warmup": warmup, "repeats": repeats, "md_steps": md_steps, "budget_s": budget_s,
                             "timeout_s": timeout_s, "mem_limit_gib": mem_limit_gib, "seed": seed,
                             "timestep_fs": 1.0, "temperature_K": 298.15, "integrator": "LangevinMiddle",
                             "cgaa_fast_substeps": fast_substeps,
                             "cgaa_integrator": "LangevinMiddle" if fast_substeps == 1 else
                             f"MTSLangevin (r-RESPA): CGAA network every {fast_substeps} fs, intra-grain prior every 1 fs"},
                "boxes": [], "results": []})
    failed_at: Dict[Tuple[str, str], str] = {}
    for n in sorted(int(s) for s in sizes):
        if progress:
            print(f"cgaa bench speed: building/reading the {n}-atom {recipe} box", flush=True)
        path, n_real, hmin = box_for(recipe, n, out / "boxes", seed)
        rep["boxes"].append({"target_atoms": n, "n_atoms": n_real, "pdb": str(path), "min_height_A": hmin})
        for eng in engines:
            for task in tasks:
                entry: Dict[str, Any] = {"engine": eng, "task": task, "target_atoms": n, "n_atoms": n_real}
                why = None
                if eng == "sevenn" and task == "md":
                    continue
                if eng == "sevenn" and not sev_ok:
                    why = sev_reason
                elif (eng, task) in failed_at:
                    why = f"not run: the smaller box already failed ({failed_at[(eng, task)]})"
                elif eng == "allatom" and allatom_above_limit(n, allatom_max_atoms):
                    why = f"not run: above --allatom-max-atoms {allatom_max_atoms} (time budget)"
                elif eng == "cgaa" and not cg_cutoff < 0.5 * hmin:
                    why = f"box too small: cutoff {cg_cutoff} A is not below half the box height ({0.5 * hmin:.2f} A)"
                elif eng == "allatom" and not allatom_cutoff < 0.5 * hmin:
                    why = f"box too small for the {allatom_cutoff} A cutoff"
                elif eng == "teacher" and not nm_to_angstrom(teacher_cutoff_nm) < 0.5 * hmin:
                    why = (f"box too small: teacher cutoff {teacher_cutoff_nm} nm is not below half the box "
                           f"height ({angstrom_to_nm(0.5 * hmin):.3f} nm)")
                if why:
                    entry.update(status="skipped", reason=why)
                    rep["results"].append(entry)
                    if progress:
                        print(f"  {eng:8s} {task:4s} {n_real:6d} atoms: skipped ({why})", flush=True)
                    continue
                spec = {"engine": eng, "task": task, "pdb": str(path), "threads": threads, "warmup": warmup,
                        "repeats": repeats, "md_steps": md_steps, "budget_s": budget_s, "seed": seed,
                        "device": device, "model": model, "hyper": base_hyper,
                        "teacher_cutoff_nm": teacher_cutoff_nm,
                        "fast_substeps": fast_substeps if eng == "cgaa" else 1,
                        "override": override_all if eng == "allatom" else override}
                res = run_worker(spec, timeout_s=timeout_s, mem_limit_gib=mem_limit_gib)
                entry.update(res)
                rep["results"].append(entry)
                if res["status"] != "ok":
                    failed_at[(eng, task)] = f"{n_real} atoms: {res['status']}: {res['reason']}"
                if progress:
                    print("  " + describe_result(entry), flush=True)
        # write after each size so a long run leaves partial results
        finish_speed_report(rep)
        write_speed_outputs(rep, out)
    finish_speed_report(rep)
    write_speed_outputs(rep, out)
    return rep


if __name__ == "__main__":  # the worker's entry point under its older name (run_worker uses WORKER_MODULE)
    if len(sys.argv) >= 3 and sys.argv[1] == "--worker":
        sys.exit(_main_worker(sys.argv[2:]))
    print("usage: python -m cgaa.bench.speed --worker SPEC_JSON (use `cgaa bench speed`)", file=sys.stderr)
    sys.exit(2)
