"""Observables: teacher MD vs CGAA MD with the same box and protocol.

Each engine runs ``replicas`` independent trajectories (seed + k) of the same packed box
(``start="box"``), or, with ``start="warmup"``, replica k of both engines starts from the final
state of a teacher warm-up run k from that box, so both analyse the same equilibrated states;
every run goes through :func:`cgaa.md.run.run_simulation` (minimisation, velocities at T, Langevin
middle integrator, 1 fs, Monte Carlo barostat in NPT, unwrapped DCD): the CGAA runs with
the deployed model, the teacher runs with the classical force field's System
(:func:`teacher_run_system`: :func:`cgaa.teacher.forcefield.create_system` plus the H-bond
constraints a CGAA run has) given as ``run_simulation(system=...)``, so both share every
other setting and file format. The first ``equil_ps`` of every replica are discarded; the rest is analysed
with :func:`cgaa.analysis.analyze` per replica:

* self-diffusion coefficients of Li, PF6, EC, EMC (m²/s, molecule centres, centre-of-mass
  drift removed; no finite-size correction, which cancels in the ratio: same box);
* the Li–O(carbonyl) RDF first-peak position (nm) and first-shell coordination number;
* the density (g/cm³, mean of state.csv after equilibration; NPT only), and its means in
  six consecutive blocks per replica, which show whether a replica had settled.

Engine values are replica means with standard errors (std/√n); relative differences
CGAA/teacher − 1 carry the propagated uncertainty. Targets of the benchmark (not test
assertions): Li D within 15 %, density within 2 %, RDF peak within 0.005 nm (0.05 Å). Each
is reported met or missed on the mean, and inconclusive when mean ± one standard error
straddles the tolerance.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import openmm

from cgaa.analysis.stats import mean_se
from cgaa.analysis import analyze
from cgaa.analysis.io import find_run_files, load_trajectory
from cgaa.analysis.msd import molecule_centers
from cgaa.bench.report import (available_cores, fmt, header, header_markdown, markdown_table, save_figure,
                               write_json, write_outputs)
from cgaa.core.fileio import file_sha256
from cgaa.core.grains import grains_from_topology
from cgaa.core.inputs import make_inputs
from cgaa.core.modelfile import load_model
from cgaa.md.run import SimulationError, run_simulation
from cgaa.md.rundir import MODEL_FILE, has_checkpoint, load_state_csv, write_final_pdb
from cgaa.openmm.guards import add_hbond_constraints, bond_lengths
from cgaa.openmm.mts import check_substeps
from cgaa.openmm.torchforce import default_model_path
from cgaa.priors import PriorEvaluator
from cgaa.systems.boxfile import find_run_topology, read_box
from cgaa.systems.build import box_suffix_for, build_box
from cgaa.systems.topology import box_density
from cgaa.teacher.forcefield import Teacher, create_system as teacher_system

PathLike = Union[str, Path]
ENGINES = ("teacher", "cgaa")
#: Where the replicas start (``run_observables(start=...)``):
#: ``box``: both engines from the packed box;
#: ``teacher``: the teacher from the box, CGAA replica k from teacher replica k's final state
#: (an older protocol: the teacher's analysed time is then still its equilibration from the box);
#: ``warmup``: teacher warm-up run k from the box, then both engines' replica k from its final state.
STARTS = ("box", "teacher", "warmup")
WARMUP = "warmup"  # directory (under the output) of the teacher warm-up runs
#: The species whose diffusivity is compared (names as cgaa.analysis finds them).
DIFFUSING = ("Li", "PF6", "EC", "EMC")
RDF_PAIR = "Li-O_carbonyl"
#: Benchmark targets: (quantity, kind, tolerance).
DENSITY_BLOCKS = 6  # density block means per replica in the report: drift shows as a trend
TARGETS = {"D_Li": ("relative", 0.15), "density": ("relative", 0.02), "rdf_peak": ("absolute_nm", 0.005)}
ENGINE_FILE = "engine.json"


def teacher_bond_lengths_of(system) -> Tuple[Tuple[int, int, float], ...]:
    """(i, j, r0 nm) of every bond of a teacher System's HarmonicBondForce(s), in order: the
    lengths :func:`cgaa.openmm.guards.teacher_bond_lengths` reads off a teacher System (and a
    teacher prior holds), taken from this one instead of parametrising the topology again."""
    return bond_lengths(f for f in system.getForces() if isinstance(f, openmm.HarmonicBondForce))


def teacher_run_system(topology, cutoff_nm: float = 1.0):
    """The System a teacher replica runs (``run_simulation(system=...)``): the teacher's
    (:func:`cgaa.teacher.forcefield.create_system`: PME, OPLS mixing, its masses, force groups
    and CMMotionRemover) with every bond to hydrogen constrained at the teacher's length, as
    the CGAA System of a default run (``constraints="hbonds"``) has them. It equals what
    :func:`teacher_customizer` makes of a CGAA System, force by force (tests/test_md_run.py)."""

    system = teacher_system(topology, cutoff=float(cutoff_nm))
    add_hbond_constraints(system, topology, bonds=teacher_bond_lengths_of(system))
    return system


def teacher_customizer(cutoff_nm: float = 1.0) -> Callable[[Any, Any], None]:
    """A ``customize_system`` hook that replaces every force of a CGAA System by the
    teacher's (PME, OPLS mixing) and sets the teacher's masses, keeping the CGAA System's
    constraints. Teacher runs now get :func:`teacher_run_system` as ``system=`` instead; this
    stays for runs written before (their run.json names no given System), which restart with
    it: :func:`_run_replica` on ``--resume``, docs/benchmarks/what-if/extend_teacher.py."""

    def customize(system, topology) -> None:
        import openmm

        t = teacher_system(topology, cutoff=float(cutoff_nm))
        while system.getNumForces():
            system.removeForce(system.getNumForces() - 1)
        for f in t.getForces():
            system.addForce(openmm.XmlSerializer.clone(f))
        for i in range(t.getNumParticles()):
            system.setParticleMass(i, t.getParticleMass(i))

    return customize


def teacher_run_kwargs(run_dir: PathLike, cutoff_nm: float, box: Optional[PathLike] = None) -> Dict[str, Any]:
    """The ``run_simulation`` keywords that make a run the teacher's: ``system=`` its
    :func:`teacher_run_system` for the topology of ``box`` (a new run) or of the run in
    ``run_dir`` (a restart); for a restart of a teacher run written before teacher runs were
    given Systems (its run.json names none), ``customize_system=`` :func:`teacher_customizer`,
    as it was run."""
    run_dir = Path(run_dir)
    if box is not None:
        return {"system": teacher_run_system(read_box(box).topology, cutoff_nm)}
    try:
        given = json.loads((run_dir / "run.json").read_text()).get("system")
    except (OSError, ValueError):
        given = None
    top_file = find_run_topology(run_dir)
    if given is None or top_file is None:  # (no topology: run_simulation says so)
        return {"customize_system": teacher_customizer(cutoff_nm)}
    return {"system": teacher_run_system(read_box(top_file).topology, cutoff_nm)}


def relative_difference(c: float, c_err: float, t: float, t_err: float) -> Tuple[float, float]:
    """(c/t − 1, propagated standard error), NaN-safe (a missing error counts as 0)."""
    if not (math.isfinite(c) and math.isfinite(t)) or t == 0:
        return float("nan"), float("nan")
    ce = c_err if math.isfinite(c_err) else 0.0
    te = t_err if math.isfinite(t_err) else 0.0
    return c / t - 1.0, math.sqrt((ce / t) ** 2 + (c * te / t ** 2) ** 2)


def _run(*args, **kwargs):
    return run_simulation(*args, **kwargs)


def exit_with_parent(parent_pid: int, poll_s: float = 2.0) -> None:
    """Make this (worker) process exit when process ``parent_pid`` is gone: a watcher
    thread polls the parent id. Without it, killing ``cgaa bench observables --jobs N``
    left its replica runs computing."""
    import os
    import threading
    import time

    def watch() -> None:
        while True:
            time.sleep(poll_s)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, name="cgaa-exit-with-parent", daemon=True).start()


def _run_replica(kw: Dict[str, Any]) -> Tuple[Optional[str], float]:
    """Run replica ``kw['k']`` of engine ``kw['engine']`` (also in a worker process);
    returns (error message or None, wall seconds). An unstable model is a result, not a
    crash of the benchmark: its failure is recorded in the run's engine.json."""

    if kw.get("threads"):
        import torch

        torch.set_num_threads(int(kw["threads"]))
    eng, k = kw["engine"], int(kw["k"])
    run_dir = Path(kw["run_dir"])
    what = f"{eng} replica {k}" if run_dir.parent.name == eng else f"{eng} {run_dir.parent.name} run {k}"
    report, steps = int(kw["report"]), int(kw["steps"])
    t0 = time.perf_counter()
    if kw["progress"]:
        print(f"cgaa bench observables: {what}: {steps} steps", flush=True)
    teacher = eng == "teacher"
    try:
        if kw.get("restart"):  # continue (or extend) the run from its last checkpoint, its own settings
            _run(None, None, run_dir, steps=steps, restart=True, progress=kw["progress"],
                 **(teacher_run_kwargs(run_dir, kw["teacher_cutoff_nm"]) if teacher else {}))
        else:
            _run(kw["box"], None if teacher else kw["model"], run_dir, ensemble=kw["ensemble"],
                 temperature=kw["temperature"], timestep_fs=kw["timestep_fs"],
                 fast_substeps=kw.get("fast_substeps", 1), steps=steps, report_interval=report,
                 checkpoint_interval=kw["checkpoint"],
                 platform=kw["platform"], seed=int(kw["seed"]) + k, overwrite=True, progress=kw["progress"],
                 minimize=kw["minimize_iterations"] > 0, minimize_iterations=max(1, kw["minimize_iterations"]),
                 # the benchmark's protocol: each replica's equilibration is its analysed window's cut
                 # (equil_ps), the same for both engines; no extra thermalisation before step 0
                 thermalize_ps=0.0,
                 **(teacher_run_kwargs(run_dir, kw["teacher_cutoff_nm"], box=kw["box"]) if teacher else {}))
    except SimulationError as err:
        msg = str(err).split(" -- ")[0]
        write_json(run_dir / ENGINE_FILE, {"engine": eng, "status": "failed", "error": msg})
        print(f"cgaa bench observables: {what} failed: {msg}", flush=True)
        return msg, time.perf_counter() - t0
    write_json(run_dir / ENGINE_FILE, {"engine": eng, "status": "ok", "note": "the teacher's System "
               "(teacher_run_system), run as given: no model" if teacher else "CGAA model"})
    return None, time.perf_counter() - t0


def _run_replicas(kws: List[Dict[str, Any]], jobs: int, progress: bool, runner: Optional[Callable] = None
                  ) -> Dict[str, Tuple[Optional[str], Optional[float]]]:
    """Run replicas (:func:`_run_replica` keyword dicts), ``jobs`` at a time in worker
    processes, or as ``runner(_run_replica, kws)`` (results in order; e.g. on Dask:
    :func:`cgaa.distributed.replicas.observables_runner`); {run directory: (error or None, wall seconds)}."""
    if not kws:
        return {}
    if runner is not None:
        return dict(zip([kw["run_dir"] for kw in kws], (tuple(r) for r in runner(_run_replica, kws))))
    if jobs > 1 and len(kws) > 1:
        import multiprocessing
        import os
        from concurrent.futures import ProcessPoolExecutor

        if progress:
            print(f"cgaa bench observables: {len(kws)} replica runs, {jobs} at a time", flush=True)
        with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=exit_with_parent, initargs=(os.getpid(),)) as ex:
            return dict(zip([kw["run_dir"] for kw in kws], ex.map(_run_replica, kws)))
    return {kw["run_dir"]: _run_replica(kw) for kw in kws}


def _failure(run_dir: Path) -> Optional[str]:
    """The error of a replica that failed before (engine.json), or None."""
    try:
        info = json.loads((run_dir / ENGINE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return info.get("error") if info.get("status") == "failed" else None


def checkpoint_interval(steps: int, report: int, timestep_fs: float, every_ps: float = 2.0) -> int:
    """Steps between a replica's checkpoints: about ``every_ps`` ps, a whole number of report
    intervals (``report`` steps), at most the run (``steps``) rounded up to a report."""
    per = max(1, int(round(every_ps * 1000.0 / timestep_fs / report))) * report
    return max(report, min(per, -(-steps // report) * report))


def _same_dynamics(run_dir: Path, protocol: Dict[str, Any]) -> bool:
    """Whether the run in ``run_dir`` (its run.json) has the settings ``protocol``; says so when not."""
    try:
        saved = json.loads((run_dir / "run.json").read_text())["settings"]
    except (OSError, KeyError, ValueError):
        return False
    same = all(saved.get(k) == v for k, v in protocol.items())
    if not same:
        print(f"cgaa bench observables: {run_dir} was run with other settings; it is run again from the start",
              flush=True)
    return same


def _same_model(run_dir: Path, model_sha256: str) -> bool:
    """Whether the CGAA run in ``run_dir`` used the model whose file has SHA-256 ``model_sha256``
    (its copy, model.pt, has the same bytes); says so when not. A run without a copy (it never
    started) counts as the same."""

    copy = run_dir / MODEL_FILE
    if not copy.is_file() or file_sha256(copy) == model_sha256:
        return True
    print(f"cgaa bench observables: {run_dir} was run with another model; it is run again from the start",
          flush=True)
    return False


def _finished(run_dir: Path, steps: int) -> bool:
    try:
        info = json.loads((run_dir / "run.json").read_text())
        last = info["history"][-1]
        return last.get("status") == "finished" and int(last.get("to_step", -1)) >= steps
    except (OSError, KeyError, ValueError, IndexError):
        return False


def analyse_replica(run_dir: PathLike, equil_ps: float, report_ps: float, temperature_K: float,
                    blocks: int = 3, fit_window_ps: Optional[Tuple[float, float]] = None) -> Dict[str, Any]:
    """Diffusivities, Li–O(carbonyl) RDF and density of one run directory (after ``equil_ps``).

    fit_window_ps: fixed MSD fit window (ps of lag) for every species, so replicas and engines
    are compared over the same lags (default: the analysis picks a window per species)."""

    run_dir = Path(run_dir)
    trajs, top = find_run_files(run_dir)
    traj, _ = load_trajectory(trajs[0], top, dt_ps=report_ps)  # (quiet: no dcdplugin chatter)
    skip = int(round(equil_ps / report_ps))
    if traj.n_frames - skip < 4:
        raise ValueError(f"{run_dir}: only {traj.n_frames - skip} frames after {equil_ps} ps of equilibration; "
                         "run longer or report more often")
    res = analyze([traj[skip:]], None, dt_ps=report_ps, temperature_K=temperature_K, n_blocks=blocks,
                  fit_window_ps=fit_window_ps)
    out: Dict[str, Any] = {"frames": traj.n_frames - skip, "D_m2_s": {}, "D_err_m2_s": {}, "diffusive": {},
                           "warnings": list(res.warnings)}
    for name, d in res.diffusion.items():
        out["D_m2_s"][name] = d.D_m2_s
        out["D_err_m2_s"][name] = d.D_err_m2_s
        out["diffusive"][name] = bool(d.window.diffusive)
    r = res.rdfs.get(RDF_PAIR)
    if r is None:
        cand = [k for k in res.rdfs if "carbonyl" in k]
        r = res.rdfs[cand[0]] if cand else None
    out["rdf"] = None if r is None else {"first_peak_nm": r.first_peak_nm, "peak_height": r.peak_height,
                                         "first_min_nm": r.first_min_nm, "cn_first_shell": r.cn_first_shell,
                                         "r_nm": r.r_nm.tolist(), "g": r.g.tolist()}
    st = load_state_csv(run_dir / "state.csv")
    keep = st["time_ps"] >= equil_ps - 1e-9
    out["density_g_cm3"] = float(np.mean(st["density_g_cm3"][keep])) if keep.any() else float("nan")
    out["density_blocks_g_cm3"] = block_means(st["density_g_cm3"][keep], DENSITY_BLOCKS)
    out["temperature_K"] = float(np.mean(st["temperature_K"][keep])) if keep.any() else float("nan")
    out["ns_per_day"] = float(np.nanmean(st["speed_ns_day"][1:])) if len(st["speed_ns_day"]) > 1 else float("nan")
    return out


def block_means(values: np.ndarray, n_blocks: int) -> List[float]:
    """Means of ``n_blocks`` consecutive, equal blocks of ``values`` (a trailing remainder
    shorter than a block is dropped; fewer blocks if there are fewer values)."""
    values = np.asarray(values, dtype=float)
    n = min(int(n_blocks), len(values))
    if n == 0:
        return []
    size = len(values) // n
    return [float(values[k * size:(k + 1) * size].mean()) for k in range(n)]


def summarise(replicas: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Replica means and standard errors of the compared quantities."""
    s: Dict[str, Any] = {"n_replicas": len(replicas), "D_m2_s": {}, "D_se_m2_s": {}}
    names = sorted({k for r in replicas for k in r["D_m2_s"]})
    for n in names:
        s["D_m2_s"][n], s["D_se_m2_s"][n] = mean_se([r["D_m2_s"].get(n) for r in replicas])
    for key in ("first_peak_nm", "cn_first_shell", "peak_height"):
        s[f"rdf_{key}"], s[f"rdf_{key}_se"] = mean_se([r["rdf"][key] for r in replicas if r.get("rdf")])
    # (.get: replicas pooled from a `cgaa analyze` report carry diffusivities only)
    s["density_g_cm3"], s["density_se_g_cm3"] = mean_se([r.get("density_g_cm3") for r in replicas])
    s["temperature_K"], _ = mean_se([r.get("temperature_K") for r in replicas])
    s["ns_per_day"], _ = mean_se([r.get("ns_per_day") for r in replicas])
    return s


def compare(teacher: Dict[str, Any], cgaa: Dict[str, Any], ensemble: str) -> Dict[str, Any]:
    """Relative differences (CGAA/teacher − 1) and target checks."""
    cmp: Dict[str, Any] = {"D": {}}
    for n in DIFFUSING:
        found = [k for k in teacher["D_m2_s"] if k.lower() == n.lower()]
        if not found or found[0] not in cgaa["D_m2_s"]:
            continue
        k = found[0]
        rel, err = relative_difference(cgaa["D_m2_s"][k], cgaa["D_se_m2_s"][k],
                                       teacher["D_m2_s"][k], teacher["D_se_m2_s"][k])
        cmp["D"][k] = {"relative": rel, "relative_se": err}
    rel, err = relative_difference(cgaa["density_g_cm3"], cgaa["density_se_g_cm3"],
                                   teacher["density_g_cm3"], teacher["density_se_g_cm3"])
    cmp["density"] = {"relative": rel, "relative_se": err, "npt": ensemble == "npt"}
    dp = cgaa["rdf_first_peak_nm"] - teacher["rdf_first_peak_nm"]
    dpe = math.sqrt(sum(x ** 2 for x in (cgaa["rdf_first_peak_nm_se"], teacher["rdf_first_peak_nm_se"])
                        if math.isfinite(x)))
    cmp["rdf_peak"] = {"difference_nm": dp, "difference_se_nm": dpe}
    rel, err = relative_difference(cgaa["rdf_cn_first_shell"], cgaa["rdf_cn_first_shell_se"],
                                   teacher["rdf_cn_first_shell"], teacher["rdf_cn_first_shell_se"])
    cmp["rdf_cn"] = {"relative": rel, "relative_se": err}
    li = next((v for k, v in cmp["D"].items() if k.lower() == "li"), None)
    checks, conclusive = {}, {}

    def check(name: str, value: float, se: float, tol: float) -> None:
        # met/missed on the mean; conclusive when mean ± one standard error lies wholly
        # inside or wholly outside the tolerance
        checks[name] = abs(value) <= tol
        conclusive[name] = bool(math.isfinite(se) and (abs(value) + se <= tol or abs(value) - se > tol))

    if li is not None and math.isfinite(li["relative"]):
        check("D_Li_within_15pct", li["relative"], li["relative_se"], TARGETS["D_Li"][1])
    if ensemble == "npt" and math.isfinite(cmp["density"]["relative"]):
        check("density_within_2pct", cmp["density"]["relative"], cmp["density"]["relative_se"], TARGETS["density"][1])
    if math.isfinite(dp):
        check("rdf_peak_within_0.05A", dp, dpe, TARGETS["rdf_peak"][1])
    cmp["targets_conclusive"] = conclusive
    cmp["targets_met"] = checks
    return cmp


def run_observables(
    out_dir: PathLike,
    *,
    model: Optional[PathLike] = None,
    box: Optional[PathLike] = None,
    recipe: str = "lipf6-ec-emc-1m",
    n_atoms: int = 1000,
    replicas: int = 2,
    time_ps: float = 200.0,
    equil_ps: float = 20.0,
    timestep_fs: float = 1.0,
    report_ps: float = 1.0,
    ensemble: str = "npt",
    temperature_K: float = 298.15,
    engines: Sequence[str] = ENGINES,
    teacher_cutoff_nm: float = 1.0,
    threads: Optional[int] = None,
    seed: int = 0,
    resume: bool = False,
    platform: str = "CPU",
    minimize_iterations: int = 500,
    fit_window_ps: Optional[Tuple[float, float]] = None,
    jobs: int = 1,
    start: str = "box",
    warmup_ps: Optional[float] = None,
    fast_substeps: int = 1,
    command: Optional[str] = None,
    progress: bool = True,
    runner: Optional[Callable] = None,
) -> Tuple[Dict[str, Any], Dict[str, Path]]:
    """Teacher MD vs CGAA MD, ``replicas`` each, ``equil_ps`` + ``time_ps`` per replica.

    model: deployed CGAA model of the CGAA runs (default: the shipped one; the teacher runs
        do not use it: they run :func:`teacher_run_system`). box: PDB (default: built from ``recipe``
        with ``n_atoms``). report_ps: frame spacing (ps). resume: keep finished replica
        runs found in ``out_dir`` and continue unfinished ones from their last checkpoint (every
        ~2 ps; a larger ``time_ps`` extends finished runs the same way; a run with other dynamics
        settings starts again). minimize_iterations: energy minimisation of each replica (0: none).
        fit_window_ps: common MSD fit window (lags in ps) for both engines (default: automatic).
        jobs: replica runs at a time, in separate processes (each with ``threads`` threads).
        start: where replica k of each engine starts (:data:`STARTS`). ``"box"``: the packed
            ``box``, both engines. ``"warmup"``: a teacher warm-up run k (``warmup_ps``, default
            ``equil_ps + time_ps``; in ``out_dir/warmup``) from the box first, then both engines
            from its final state (positions and box): the analysed times of both engines then
            follow the same equilibrated states, so neither measures its recovery from the packed
            box. ``"teacher"`` (older): CGAA replica k from teacher replica k's final state, the
            teacher from the box — the teacher's analysed time is then its own equilibration
            (Li's carbonyl-O coordination still drifts over 140 ps from the 1000-atom box), which
            biased its transport; kept to reproduce earlier reports.
        fast_substeps: > 1: the CGAA runs use r-RESPA (:mod:`cgaa.openmm.mts`), a step of
            ``fast_substeps × timestep_fs`` for the network and the forces between grains and
            ``timestep_fs`` for the prior's intra-grain terms; the teacher keeps ``timestep_fs``.
            ``equil_ps``, ``time_ps`` and ``report_ps`` must then be whole numbers of CGAA steps.
        runner: runs the replica runs instead of ``jobs`` local processes: ``runner(func, kws)``
            returns ``[func(kw) for kw in kws]``, e.g. on Dask
            (:func:`cgaa.distributed.replicas.observables_runner`, ``cgaa bench observables --dask``).
        Writes observables.json/.md/.png; returns (report, files).
    """
    import torch

    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    for e in engines:
        if e not in ENGINES:
            raise ValueError(f"unknown engine {e!r} (known: {', '.join(ENGINES)})")
    if replicas < 1:
        raise ValueError("replicas must be >= 1")
    if ensemble not in ("npt", "nvt"):
        raise ValueError(f"ensemble must be npt or nvt, not {ensemble!r}")
    if start not in STARTS:
        raise ValueError(f"start must be one of {', '.join(STARTS)}, not {start!r}")
    if start == "teacher" and "cgaa" in engines and "teacher" not in engines:
        raise ValueError("start='teacher' needs the teacher engine (its runs give the start states)")
    if warmup_ps is not None and start != "warmup":
        raise ValueError(f"warmup_ps is for start='warmup', not start={start!r}")
    warmup_ps = float(equil_ps + time_ps if warmup_ps is None else warmup_ps)
    if start == "warmup" and warmup_ps <= 0:
        raise ValueError(f"warmup_ps must be > 0, not {warmup_ps}")
    threads = int(threads or available_cores())
    torch.set_num_threads(threads)
    if model is None:

        model = default_model_path()
    model = Path(model).resolve()
    if box is None:
        box = out / f"box-{Path(str(recipe)).stem}-{n_atoms}{box_suffix_for(recipe, n_atoms)}"
        if not Path(box).is_file():
            build_box(recipe, n_atoms, box, seed=seed)
    box = Path(box).resolve()
    steps_eq = int(round(equil_ps * 1000.0 / timestep_fs))
    steps = steps_eq + int(round(time_ps * 1000.0 / timestep_fs))
    report = max(1, int(round(report_ps * 1000.0 / timestep_fs)))
    report_ps = report * timestep_fs / 1000.0

    n_sub = check_substeps(fast_substeps)
    if n_sub > 1 and any(x % n_sub for x in (steps_eq, steps, report)):
        raise ValueError(f"with fast_substeps {n_sub} the CGAA step is {n_sub * timestep_fs:g} fs: equil_ps "
                         f"({equil_ps}), time_ps ({time_ps}) and report_ps ({report_ps}) must be multiples of it")

    def per_engine(e: str, n: int) -> Dict[str, Any]:
        """Step settings of a run of ``n`` teacher-sized steps for engine ``e``."""
        sub = n_sub if e == "cgaa" else 1
        return {"timestep_fs": timestep_fs * sub, "fast_substeps": sub, "steps": n // sub, "report": report // sub}

    warmup_desc = f"the final state (positions, box) of teacher warm-up run k ({warmup_ps:g} ps from the box)"
    rep = header("observables", command)

    model_sha = file_sha256(model)
    rep.update({"model": str(model), "model_sha256": model_sha, "box": str(box), "protocol": {
        "ensemble": ensemble, "temperature_K": temperature_K, "pressure_bar": 1.0, "timestep_fs": timestep_fs,
        "equilibration_ps": equil_ps, "production_ps": time_ps, "frame_interval_ps": report_ps,
        "replicas": replicas, "integrator": "LangevinMiddle, friction 1/ps" if n_sub == 1 else
        f"teacher: LangevinMiddle, friction 1/ps; CGAA: MTSLangevin (r-RESPA), friction 1/ps, network "
        f"every {n_sub * timestep_fs:g} fs, intra-grain prior every {timestep_fs:g} fs", "cgaa_fast_substeps": n_sub,
        "barostat": "MonteCarlo every 25 steps"
        if ensemble == "npt" else None, "platform": platform, "threads": threads, "jobs": jobs,
        "teacher_cutoff_nm": teacher_cutoff_nm,
        "minimisation": f"each replica, at most {minimize_iterations} iterations",
        "fit_window_ps": None if fit_window_ps is None else [float(x) for x in fit_window_ps],
        "cgaa_start": {"box": "the box", "teacher": "teacher replica k's final state (positions, box)",
                       "warmup": warmup_desc}[start],
        "teacher_start": warmup_desc if start == "warmup" else "the box",
        "warmup_ps": warmup_ps if start == "warmup" else None},
        "engines": {}})
    props_env = None
    if platform == "CPU":
        import os

        props_env = os.environ.get("OPENMM_CPU_THREADS")
        os.environ["OPENMM_CPU_THREADS"] = str(threads)
    try:
        run_kw = dict(model=str(model), ensemble=ensemble, temperature=temperature_K,
                      platform=platform, seed=seed, minimize_iterations=minimize_iterations,
                      teacher_cutoff_nm=teacher_cutoff_nm, threads=threads, progress=progress and jobs <= 1)
        # every run: (engine, k, run directory, steps, the run whose final state starts it or None: the box)
        runs = [(e, k, out / e / f"rep{k}", steps, None) for e in engines for k in range(replicas)]
        if start == "warmup":
            n_warm = int(round(warmup_ps * 1000.0 / timestep_fs))
            runs = [("teacher", k, out / WARMUP / f"rep{k}", n_warm, None) for k in range(replicas)] + [
                (e, k, d, n, out / WARMUP / f"rep{k}") for e, k, d, n, _ in runs]
        elif start == "teacher":
            runs = [(e, k, d, n, out / "teacher" / f"rep{k}" if e == "cgaa" else None) for e, k, d, n, _ in runs]
        results: Dict[str, Tuple[Optional[str], Optional[float]]] = {}
        first, then = [], []
        for e, k, run_dir, n, src in runs:
            eng_kw = per_engine(e, n)
            same_dynamics = {"ensemble": ensemble, "temperature": temperature_K, "timestep_fs": eng_kw["timestep_fs"],
                             "report_interval": eng_kw["report"]}
            if eng_kw["fast_substeps"] > 1:  # (runs from before the setting existed had none: 1)
                same_dynamics["fast_substeps"] = eng_kw["fast_substeps"]
            failed = _failure(run_dir) if resume else None
            same = resume and _same_dynamics(run_dir, same_dynamics) and (e != "cgaa" or _same_model(run_dir, model_sha))
            if failed and same:
                results[str(run_dir)] = (failed, None)
            elif not (same and _finished(run_dir, eng_kw["steps"])):
                restart = same and has_checkpoint(run_dir)  # interrupted, or shorter than asked
                kw = dict(run_kw, **eng_kw, engine=e, k=k, run_dir=str(run_dir), restart=restart, box=str(box),
                          checkpoint=checkpoint_interval(eng_kw["steps"], eng_kw["report"], eng_kw["timestep_fs"]))
                (first if src is None or restart else then).append((kw, src))
        results.update(_run_replicas([kw for kw, _ in first], jobs, progress, runner))
        starts, length = [], {d: per_engine(e, n)["steps"] for e, _, d, n, _ in runs}
        for kw, src in then:  # runs from another run's final state: after those runs
            if _failure(src) or not _finished(src, length[src]):
                results[kw["run_dir"]] = (f"no start state: {src} did not finish", None)
                continue
            kw["box"] = str(write_final_pdb(src, Path(kw["run_dir"]).parent / f"start-rep{kw['k']}{box.suffix}"))
            starts.append(kw)
        results.update(_run_replicas(starts, jobs, progress, runner))
        for eng in engines:
            reps: List[Dict[str, Any]] = []
            for k in range(replicas):
                run_dir = out / eng / f"rep{k}"
                error, wall = results.get(str(run_dir), (None, None))
                if error:
                    reps.append({"run_dir": str(run_dir), "seed": seed + k, "status": "failed", "error": error,
                                 "wall_s": wall})
                    continue
                a = analyse_replica(run_dir, equil_ps, report_ps, temperature_K, fit_window_ps=fit_window_ps)
                a.update(run_dir=str(run_dir), seed=seed + k, wall_s=wall, status="ok")
                reps.append(a)
            good = [r for r in reps if r.get("status") == "ok"]
            rep["engines"][eng] = {"replicas": reps, "summary": summarise(good) if good else None,
                                   "failed_replicas": len(reps) - len(good)}
    finally:
        if platform == "CPU":
            import os

            if props_env is None:
                os.environ.pop("OPENMM_CPU_THREADS", None)
            else:
                os.environ["OPENMM_CPU_THREADS"] = props_env
    if all(e in rep["engines"] and rep["engines"][e]["summary"] for e in ("teacher", "cgaa")):
        rep["comparison"] = compare(rep["engines"]["teacher"]["summary"], rep["engines"]["cgaa"]["summary"],
                                    ensemble)
    files = write_observables_outputs(rep, out)
    return rep, files


def start_sentence(protocol: Dict[str, Any]) -> str:
    """Where the replicas of an observables report started, as a sentence ('' for the box)."""
    c, t = protocol.get("cgaa_start", "the box"), protocol.get("teacher_start", "the box")
    if c == t:
        return "" if c == "the box" else f" Replica k of both engines starts from {c}."
    return f" CGAA replica k starts from {c}; the teacher's from {t}."


def cgaa_step_phrase(protocol: Dict[str, Any]) -> str:
    """' (CGAA: r-RESPA, network every N fs)' for a report whose CGAA runs used fast substeps, else ''."""
    n = protocol.get("cgaa_fast_substeps", 1)
    return f" (CGAA: r-RESPA, network every {n * protocol['timestep_fs']:g} fs)" if n > 1 else ""


def observables_markdown(rep: Dict[str, Any]) -> str:
    """Markdown table of an observables report."""

    p = rep["protocol"]
    lines = ["## Observables: teacher MD vs CGAA MD", "", header_markdown(rep), "",
             f"Box `{Path(rep['box']).name}`, model `{Path(rep['model']).name}`; {p['ensemble'].upper()} "
             f"{p['temperature_K']} K, {p['timestep_fs']} fs" + cgaa_step_phrase(p) + f", {p['replicas']} replicas x "
             f"({p['equilibration_ps']} ps discarded + {p['production_ps']} ps analysed), frames every "
             f"{p['frame_interval_ps']} ps, {p['platform']} platform, {p['threads']} threads. Values: replica "
             "mean ± standard error. D: MSD fit over "
             + (f"lags {p['fit_window_ps'][0]:g}–{p['fit_window_ps'][1]:g} ps for every species and engine."
                if p.get("fit_window_ps") else "a window chosen per species by cgaa.analysis.")
             + start_sentence(p),
             ""]
    return "\n".join(lines) + "\n" + observables_tables(rep)


def observables_tables(rep: Dict[str, Any]) -> str:
    """The tables of an observables report (engine means, per-replica D, density blocks), its
    target checks, failed replicas and diffusive-regime flags, as markdown."""

    lines: List[str] = []
    engs = [e for e in rep["engines"] if rep["engines"][e]["summary"]]
    failed = [(e, r) for e in rep["engines"] for r in rep["engines"][e]["replicas"] if r.get("status") == "failed"]

    def pm(v, e, scale=1.0, digits=3):
        if v is None or not math.isfinite(v):
            return "—"
        s = fmt(v * scale, digits)
        return s + (f" ± {fmt(e * scale, 2)}" if e is not None and math.isfinite(e) else "")

    cmp = rep.get("comparison", {})
    rows = []
    names = sorted({n for e in engs for n in rep["engines"][e]["summary"]["D_m2_s"]})
    for n in names:
        row = [f"D[{n}] (1e-10 m²/s)"]
        for e in engs:
            s = rep["engines"][e]["summary"]
            row.append(pm(s["D_m2_s"].get(n, float("nan")), s["D_se_m2_s"].get(n, float("nan")), 1e10))
        c = cmp.get("D", {}).get(n)
        row.append(pm(c["relative"], c["relative_se"], 100, 2) + " %" if c else "—")
        rows.append(row)
    for key, label, scale, ckey in (("rdf_first_peak_nm", "Li–O(carbonyl) first peak (nm)", 1.0, "rdf_peak"),
                                    ("rdf_cn_first_shell", "Li–O(carbonyl) CN, first shell", 1.0, "rdf_cn"),
                                    ("density_g_cm3", "density (g/cm³)", 1.0, "density"),
                                    ("temperature_K", "mean temperature (K)", 1.0, None),
                                    ("ns_per_day", "speed (ns/day)", 1.0, None)):
        row = [label]
        for e in engs:
            s = rep["engines"][e]["summary"]
            se = s.get({"density_g_cm3": "density_se_g_cm3"}.get(key, key + "_se"), float("nan"))
            row.append(pm(s.get(key, float("nan")), se, scale))
        c = cmp.get(ckey) if ckey else None
        if c and "relative" in c:
            row.append(pm(c["relative"], c["relative_se"], 100, 2) + " %")
        elif c and "difference_nm" in c:
            row.append(pm(c["difference_nm"], c["difference_se_nm"]) + " nm")
        else:
            row.append("—")
        rows.append(row)
    dead = [e for e in rep["engines"] if not rep["engines"][e]["summary"]]
    if dead:
        rows = [r[:1 + len(engs)] + ["failed: no stable replica"] * len(dead) + r[1 + len(engs):] for r in rows]
    lines.append(markdown_table(["quantity"] + engs + dead + ["CGAA vs teacher"], rows))
    # the spread between replicas, which the standard errors summarise, shown directly
    per = [(e, r) for e in engs for r in rep["engines"][e]["replicas"] if r.get("status", "ok") == "ok" and r.get("D_m2_s")]
    if len(per) > len(engs):
        rows = [[f"D[{n}]"] + [fmt(r["D_m2_s"].get(n, float("nan")) * 1e10, 3) for _, r in per] for n in names]
        lines += ["", "D per replica (1e-10 m²/s):", "",
                  markdown_table(["species"] + [f"{e} {_replica_label(r)}" for e, r in per], rows)]
    if rep.get("protocol", {}).get("ensemble") == "npt" and any(r.get("density_blocks_g_cm3") for _, r in per):
        nb = max(len(r.get("density_blocks_g_cm3", [])) for _, r in per)
        rows = []
        for e, r in per:
            blocks = [fmt(v, 4) for v in r.get("density_blocks_g_cm3", [])]
            rows.append([f"{e} {_replica_label(r)}"] + blocks + [""] * (nb - len(blocks)))
        lines += ["", f"Density (g/cm³) in {nb} consecutive blocks of the analysed time, per replica (a trend "
                      "means the replica had not settled; the ± above, from replica means, does not see it):", "",
                  markdown_table(["replica"] + [f"block {k + 1}" for k in range(nb)], rows)]
    if cmp.get("targets_met"):
        sure = cmp.get("targets_conclusive", {})
        lines += ["", "Targets: " + ", ".join(
            f"{k}: {'met' if v else 'missed'}" + ("" if sure.get(k, True) else " (inconclusive: mean ± standard error "
                                                   "straddles the tolerance; run longer or more replicas)")
            for k, v in cmp["targets_met"].items())]
    if failed:
        lines += ["", "Failed replicas (no observables from them):", ""]
        lines += [f"* {e} `{Path(r['run_dir']).name}` (seed {r['seed']}): {r['error']}" for e, r in failed]
    nondiff = [f"{e} {n}" for e in engs for r in rep["engines"][e]["replicas"]
               for n, ok in r.get("diffusive", {}).items() if not ok]
    if nondiff:
        lines += ["", "Not in the diffusive regime (log-log MSD slope not ≈ 1; D approximate) in some "
                      "replicas: " + ", ".join(sorted(set(nondiff))) + "."]
    return "\n".join(lines) + "\n"


def _replica_label(r: Dict[str, Any]) -> str:
    """A replica's name in tables: its pooled label, else its run directory's name."""
    return str(r.get("label") or Path(str(r.get("run_dir", "?"))).name)


def observables_plot(rep: Dict[str, Any], path: PathLike) -> Optional[Path]:
    """Li–O(carbonyl) RDFs of every replica and the diffusivities of both engines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    engs = list(rep["engines"])
    if not engs:
        return None
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    for i, e in enumerate(engs):
        labelled = False  # the legend names the engine at its first replica with an RDF
        for r in rep["engines"][e]["replicas"]:
            if r.get("rdf"):
                a.plot(r["rdf"]["r_nm"], r["rdf"]["g"], color=f"C{i}", alpha=0.8, lw=1,
                       label=None if labelled else e)
                labelled = True
        s = rep["engines"][e]["summary"]
        if not s:
            continue
        names = sorted(s["D_m2_s"])
        x = np.arange(len(names)) + i * 0.4
        b.bar(x, [s["D_m2_s"][n] * 1e10 for n in names], 0.4,
              yerr=[np.nan_to_num(s["D_se_m2_s"][n]) * 1e10 for n in names], label=e, color=f"C{i}")
        b.set_xticks(np.arange(len(names)) + 0.2)
        b.set_xticklabels(names)
    a.set_xlabel("r (nm)")
    a.set_ylabel("g(r) Li–O(carbonyl)")
    a.set_xlim(0, 0.8)
    a.legend()
    b.set_ylabel("D (1e-10 m²/s)")
    b.legend()
    p = rep["protocol"]
    if isinstance(p.get("replicas"), dict):  # a pooled report (cgaa.bench.pool)
        what = "pooled replicas: " + ", ".join(f"{e} {n}" for e, n in p["replicas"].items())
    else:
        what = f"{p['replicas']} x {p['production_ps']} ps {p['ensemble'].upper()}{cgaa_step_phrase(p)}"
    fig.suptitle(f"cgaa bench observables — {what}, {rep['date'][:10]}", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def write_observables_outputs(rep: Dict[str, Any], out_dir: PathLike) -> Dict[str, Path]:
    """observables.json, observables.md, observables.png in ``out_dir``."""

    return write_outputs(rep, out_dir, "observables", observables_markdown, observables_plot)


def _model_energy(model: PathLike, topology) -> Callable[[np.ndarray, np.ndarray], float]:
    """``energy(positions_A, cell_A) -> eV`` of a deployed model on ``topology``, its
    classical prior (:mod:`cgaa.priors`) included."""

    dep = load_model(model)
    gm = grains_from_topology(topology)
    numbers = np.array([x.element.atomic_number for x in topology.atoms()])
    prior = PriorEvaluator(topology, dep.config.prior) if dep.config.prior != "none" else None

    def energy(pos: np.ndarray, cell: np.ndarray) -> float:
        kw = make_inputs(pos, numbers, gm, dep.config, cell)
        out = dep.module(kw["pos"], kw["species"], kw["grain_index"], kw["grain_type"], kw["cell"], False, False)
        return float(out["energy"].detach()) + (prior.compute(pos, cell)[0] if prior is not None else 0.0)

    return energy


def bond_stretch_scan(model: PathLike, topology, positions_A: np.ndarray, cell_A: np.ndarray,
                      resname: str = "EC", element: str = "H",
                      distances_A: Sequence[float] = (0.9, 1.0, 1.09, 1.2, 1.4, 1.6, 1.8, 2.0, 2.3, 2.6, 3.0),
                      teacher_cutoff_nm: float = 1.0) -> Dict[str, Any]:
    """Energy of the CGAA model and of the teacher (eV, relative to the first distance) as
    the first ``element`` atom of the first ``resname`` residue is pulled along its bond
    (the rest of the box fixed): a diagnosis of MD instabilities such as dissociating
    hydrogens. ``positions_A`` (N×3, Å) and ``cell_A`` (3×3, Å) give the configuration.
    The model's energy includes its classical prior, if it has one (:mod:`cgaa.priors`)."""

    atoms = list(topology.atoms())
    try:
        a = next(x for x in atoms if x.residue.name == resname and x.element.symbol == element)
    except StopIteration:
        raise ValueError(f"no {element} atom in a residue named {resname}") from None
    partner = next((b[0] if b[1] == a else b[1]) for b in topology.bonds() if a in b)
    pos = np.asarray(positions_A, dtype=float)
    cell = np.asarray(cell_A, dtype=float)
    d = pos[a.index] - pos[partner.index]
    d -= np.round(d @ np.linalg.inv(cell)) @ cell
    u = d / np.linalg.norm(d)
    model_energy = _model_energy(model, topology)
    teacher = Teacher(topology, platform="CPU", cutoff=teacher_cutoff_nm)
    em, et = [], []
    for r in distances_A:
        p = pos.copy()
        p[a.index] = pos[partner.index] + float(r) * u
        em.append(model_energy(p, cell))
        et.append(teacher.compute(p, cell)[0])
    return {"atom": a.index, "partner": partner.index, "residue": resname, "distances_A": list(distances_A),
            "model_eV": [e - em[0] for e in em], "teacher_eV": [e - et[0] for e in et]}


def density_scan(model: PathLike, topology, positions_A: np.ndarray, cell_A: np.ndarray,
                 densities_g_cm3: Sequence[float] = (0.8, 0.9, 1.0, 1.1, 1.2, 1.3),
                 teacher_cutoff_nm: float = 0.8) -> Dict[str, Any]:
    """Energy of the CGAA model (+ its prior) and of the teacher (eV per molecule, relative
    to the listed density closest to the configuration's own) when the box and the molecules' centres of mass are
    scaled to other densities, molecules kept rigid: how each potential's cohesion depends
    on volume, which decides the NPT density. ``positions_A`` (N×3, Å), ``cell_A`` (3×3, Å)."""

    gm = grains_from_topology(topology)
    masses = np.array([x.element.mass._value for x in topology.atoms()])
    pos = np.asarray(positions_A, dtype=float)
    cell = np.asarray(cell_A, dtype=float)
    gi = gm.grain_index
    com = molecule_centers(pos[None], [np.nonzero(gi == g)[0] for g in range(gm.n_grains)], masses,
                           cell[None])[0]
    rel = pos - com[gi]  # atoms relative to their molecule's centre, by minimum image
    rel -= np.round(rel @ np.linalg.inv(cell)) @ cell
    rho0 = box_density(topology, cell)
    model_energy = _model_energy(model, topology)
    teacher = Teacher(topology, platform="CPU", cutoff=teacher_cutoff_nm)
    em, et = [], []
    for rho in densities_g_cm3:
        s = (rho0 / float(rho)) ** (1.0 / 3.0)
        c = cell * s
        p = com[gi] * s + rel
        em.append(model_energy(p, c))
        et.append(teacher.compute(p, c)[0])
    k0 = int(np.argmin(np.abs(np.asarray(densities_g_cm3, dtype=float) - rho0)))
    n = gm.n_grains
    return {"reference_density_g_cm3": rho0, "densities_g_cm3": [float(x) for x in densities_g_cm3],
            "model_eV_per_molecule": [(e - em[k0]) / n for e in em],
            "teacher_eV_per_molecule": [(e - et[k0]) / n for e in et]}
