"""Replica sets: ``replicas`` independent ``cgaa simulate`` runs of one system (seed + k, one run
directory each), on Dask or one after another, then one ``cgaa analyze`` over all of them.

:func:`run_replicas` writes ``OUT/rep0``, ``OUT/rep1``, ... (each an ordinary run directory),
``OUT/replicas.json`` (the set: settings, seeds, each replica's status) and, unless told not
to, ``OUT/analysis/`` (:func:`cgaa.analysis.analyze` over the replicas' trajectories: the
errors come from the spread between replicas; its report.json is what ``cgaa bench pool
cgaa=OUT/analysis/report.json`` pools further). Every replica is resumable by itself: a
rerun skips finished replicas and continues interrupted ones from their last checkpoint, and
so does a task that lost its worker. Each run is :func:`cgaa.md.run.run_simulation` with the
same settings whichever way it is run, so the Dask set and the serial set give the same
trajectories (bit for bit on a deterministic platform: Reference, or CPU with fixed threads).

:func:`map_runs` is the same care for the replica runs of ``cgaa bench observables``
(``run_observables(runner=...)``): a task that lost its worker continues the run it had started
from that run's checkpoint.
"""
from __future__ import annotations

import inspect
import json
import math
import shutil
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

from cgaa.analysis import analyze_run_dir, find_run_files, write_report
from cgaa.analysis.io import read_state_temperature
from cgaa.core.fileio import file_sha256, write_text_atomic
from cgaa.distributed.tasks import run_tasks, set_task_threads
from cgaa.md.rundir import RUN_FILE, has_checkpoint, read_json
from cgaa.md.run import SimulationError, run_simulation
from cgaa.md.settings import resolve_settings

PathLike = Union[str, Path]
SET_FILE = "replicas.json"
ANALYSIS_DIR = "analysis"
#: run_simulation keywords a replica set decides itself (not in ``simulate``).
OWN_KEYWORDS = ("system_input", "model", "out_dir", "seed", "restart", "continue_from", "new_velocities",
                "overwrite", "progress", "callback")
#: run_simulation keywords that are objects, passed on but not compared between reruns of a set.
OBJECT_KEYWORDS = ("system", "customize_system")


def replica_dir(out_dir: PathLike, k: int) -> Path:
    """Run directory of replica ``k`` of the set in ``out_dir``."""
    return Path(out_dir) / f"rep{k}"


def _history(run_dir: Path) -> List[Dict[str, Any]]:
    try:
        return list(read_json(run_dir / RUN_FILE).get("history") or [])
    except (OSError, ValueError):
        return []


def replica_state(run_dir: PathLike, steps: int) -> str:
    """``finished`` (its last entry finished at ``steps`` or later), ``failed`` (stopped as
    unphysical: rerunning repeats it), ``resumable`` (a checkpoint to continue from) or ``new``."""
    run_dir = Path(run_dir)
    hist = _history(run_dir)
    last = hist[-1] if hist else {}
    if last.get("status") == "finished" and int(last.get("to_step", -1)) >= int(steps):
        return "finished"
    if last.get("status") == "failed" and last.get("at_step") is not None:
        return "failed"
    if has_checkpoint(run_dir):
        return "resumable"
    return "new"


def _summary(run_dir: Path, k: int, seed: int, state: str, wall_s: float, error: Optional[str] = None
             ) -> Dict[str, Any]:
    hist = _history(run_dir)
    last = hist[-1] if hist else {}
    return {"k": k, "seed": seed, "run_dir": str(run_dir), "status": "failed" if error or state == "failed" else
            "finished", "error": error or (last.get("error") if state == "failed" else None),
            "to_step": last.get("to_step", last.get("at_step")), "wall_s": wall_s}


def run_replica(task: Dict[str, Any]) -> Dict[str, Any]:
    """One replica (run on a worker, or here): nothing when finished, a restart from the last
    checkpoint when there is one, else a new run (replacing a run directory with nothing to
    continue, e.g. one killed during minimisation). An unphysical stop (SimulationError) is a
    result (``status`` failed), not an exception. Returns the replica's summary."""
    set_task_threads(task.get("threads"))
    run_dir, k, seed, steps = Path(task["run_dir"]), int(task["k"]), int(task["seed"]), int(task["steps"])
    t0 = time.perf_counter()
    state = replica_state(run_dir, steps)
    if state in ("finished", "failed"):
        return _summary(run_dir, k, seed, state, 0.0)
    simulate = dict(task["simulate"])
    objects = {key: simulate[key] for key in OBJECT_KEYWORDS if simulate.get(key) is not None}
    try:
        if state == "resumable":
            run_simulation(None, None, run_dir, restart=True, steps=steps, progress=False, **objects)
        else:
            run_simulation(task["system_input"], task["model"], run_dir, seed=seed, overwrite=True, progress=False,
                           **simulate)
    except SimulationError as err:
        return _summary(run_dir, k, seed, "failed", time.perf_counter() - t0, error=str(err).split(" -- ")[0])
    return _summary(run_dir, k, seed, "finished", time.perf_counter() - t0)


def _jsonable(simulate: Dict[str, Any]) -> Dict[str, Any]:
    out = {}
    for key, value in sorted(simulate.items()):
        if key in OBJECT_KEYWORDS:
            out[key] = None if value is None else "given"
        else:
            out[key] = value if isinstance(value, (type(None), bool, int, float, str)) else str(value)
    return out


def _check_set(out: Path, want: Dict[str, Any]) -> None:
    path = out / SET_FILE
    if not path.is_file():
        return
    try:
        have = json.loads(path.read_text())
    except ValueError:
        return
    for key in ("input", "model", "model_sha256", "seed", "simulate"):
        if have.get(key) != want[key]:
            raise ValueError(f"{out} holds a replica set with other settings ({key}: {have.get(key)!r}, this run: "
                             f"{want[key]!r}); continue it with the same settings, or give overwrite=True "
                             "(--overwrite) to start it again")


def run_replicas(system_input: Any, model: Optional[PathLike] = None, out_dir: PathLike = "replicas", *,
                 replicas: int = 2, seed: int = 0, client: Any = None, simulate: Optional[Dict[str, Any]] = None,
                 analyze: Union[bool, Dict[str, Any]] = True, overwrite: bool = False, retries: int = 2,
                 threads: Optional[int] = None, progress: bool = True) -> Dict[str, Any]:
    """Run a replica set and analyse it (see the module docstring).

    system_input: what ``cgaa simulate`` takes (a box file, a recipe, or a ``(topology,
        positions nm)`` pair); model: deployed model path (None: the shipped one) or a model
        object (pickled to the workers).
    replicas: runs, replica k with seed ``seed + k`` in ``out_dir/rep{k}``. A rerun with more
        replicas adds them; with other settings it is refused unless ``overwrite``.
    client: a ``dask.distributed.Client`` (None: the runs one after another, here).
    simulate: further :func:`cgaa.md.run.run_simulation` keywords (steps or time_ps, ensemble,
        temperature K, timestep_fs, report_interval, platform, ...; ``system`` and
        ``customize_system`` objects are passed to every run and its restarts).
    analyze: False: no analysis; True or a dict of :func:`cgaa.analysis.analyze` keywords: one
        analysis of every finished replica (temperature: the replicas' mean state.csv temperature
        unless given) written to ``out_dir/analysis``.
    overwrite: remove the set's run directories first. retries: a replica task that raises is
    run again this often. threads: torch/OpenMM CPU threads per run.
    Returns the set's record (also ``out_dir/replicas.json``): ``replicas`` (per-replica
    summaries: status, steps, wall seconds, error), ``analysis`` (report directory or None).
    """
    if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 1:
        raise ValueError(f"replicas must be an integer >= 1, got {replicas!r}")
    simulate = dict(simulate or {})
    own = [k for k in OWN_KEYWORDS if k in simulate]
    if own:
        raise ValueError(f"simulate: {', '.join(own)} are set by the replica set itself (its arguments)")
    known = inspect.signature(run_simulation).parameters
    unknown = sorted(k for k in simulate if k not in known)
    if unknown:
        raise ValueError(f"simulate: unknown run_simulation keyword(s) {', '.join(unknown)}")
    given_system = simulate.get("system") is not None
    settings = resolve_settings({k: v for k, v in simulate.items() if k not in OBJECT_KEYWORDS + ("customize_system",)},
                                given_system=given_system)
    steps = int(settings["steps"])
    out = Path(out_dir)
    if overwrite:
        for k in range(replicas):
            if replica_dir(out, k).is_dir():
                shutil.rmtree(replica_dir(out, k))
        (out / SET_FILE).unlink(missing_ok=True)
    model_path = Path(model) if isinstance(model, (str, Path)) else None  # else None or a model object
    record: Dict[str, Any] = {
        "format": "cgaa-replica-set 1", "input": system_input if isinstance(system_input, (str, type(None)))
        else (str(system_input) if isinstance(system_input, Path) else "given (topology, positions)"),
        "model": str(model_path) if model_path is not None else (None if model is None else type(model).__name__),
        "model_sha256": file_sha256(model_path) if model_path is not None and model_path.is_file() else None,
        "seed": int(seed), "simulate": _jsonable(simulate), "replicas": int(replicas), "steps": steps}
    _check_set(out, record)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / SET_FILE, json.dumps(record, indent=1) + "\n")
    tasks = [{"k": k, "seed": int(seed) + k, "run_dir": str(replica_dir(out, k)), "steps": steps,
              "system_input": system_input, "model": str(model_path) if model_path is not None else model,
              "simulate": simulate, "threads": threads} for k in range(replicas)]
    summaries: List[Optional[Dict[str, Any]]] = [None] * replicas
    todo = []
    for t in tasks:
        state = replica_state(t["run_dir"], steps)
        if state in ("finished", "failed"):
            summaries[t["k"]] = _summary(Path(t["run_dir"]), t["k"], t["seed"], state, 0.0)
        else:
            todo.append(t)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=replicas, initial=replicas - len(todo), unit="replica", dynamic_ncols=True,
                   desc=f"cgaa replicas ({'dask' if client is not None else 'here'}, {steps} steps each)")

    def commit(i: int, summary: Dict[str, Any]) -> None:
        summaries[todo[i]["k"]] = summary
        record["replicas_done"] = [s for s in summaries if s is not None]
        write_text_atomic(out / SET_FILE, json.dumps(record, indent=1) + "\n")
        if bar is not None:
            bar.update(1)
            if summary["status"] == "failed":
                bar.write(f"cgaa replicas: replica {summary['k']} failed: {summary['error']}")

    try:
        run_tasks(run_replica, todo, client=client, retries=retries, name="cgaa-replica", on_result=commit)
    finally:
        if bar is not None:
            bar.close()
    record.pop("replicas_done", None)
    record["replicas"] = summaries
    record["analysis"] = None
    good = [Path(s["run_dir"]) for s in summaries if s and s["status"] == "finished"]
    if analyze is not False and good:
        record["analysis"] = str(analyse_set(good, out / ANALYSIS_DIR, **({} if analyze is True else dict(analyze))))
    write_text_atomic(out / SET_FILE, json.dumps(record, indent=1) + "\n")
    return record


def analyse_set(run_dirs: Sequence[PathLike], out_dir: PathLike, plots: bool = True, **kwargs: Any) -> Path:
    """One :func:`cgaa.analysis.analyze_run_dir` over the trajectories of ``run_dirs`` as replicas
    (time step from the first run's records; temperature: the mean of the runs' state.csv means, K,
    unless ``temperature_K`` is given); report written to ``out_dir``, which is returned."""
    run_dirs = [Path(d) for d in run_dirs]
    trajs = []
    for d in run_dirs:
        found, _ = find_run_files(d, topology=False)
        trajs += found
    _, top = find_run_files(run_dirs[0], trajectory=False)
    if kwargs.get("temperature_K") is None:
        temps = [t for t in (read_state_temperature(d / "state.csv") for d in run_dirs) if t is not None]
        if temps:
            kwargs["temperature_K"] = math.fsum(temps) / len(temps)
    res = analyze_run_dir(run_dirs[0], trajectories=trajs, topology=top, **kwargs)
    write_report(res, out_dir, plots=plots)
    return Path(out_dir)


def _continue_started(task: Dict[str, Any]) -> Any:
    """A task of :func:`map_runs`: ``task['func'](kw)``, where ``kw`` asks to continue from the
    run's checkpoint when this same set (``token``) started the run before (its worker died)."""
    kw = dict(task["kw"])
    set_task_threads(kw.get("threads"))
    run_dir = Path(kw["run_dir"])
    marker = run_dir.with_name(f".{run_dir.name}.started")
    if not kw.get("restart") and marker.is_file() and marker.read_text() == task["token"] and has_checkpoint(run_dir):
        kw["restart"] = True
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(marker, task["token"])
    result = task["func"](kw)
    marker.unlink(missing_ok=True)
    return result


def map_runs(func: Callable[[Dict[str, Any]], Any], kws: Sequence[Dict[str, Any]], *, client: Any = None,
             retries: int = 2) -> List[Any]:
    """``[func(kw) for kw in kws]`` on ``client``, for run functions taking a keyword dict with
    ``run_dir`` and ``restart`` (the replica runs of ``cgaa bench observables``): a run whose task
    lost its worker is continued from its checkpoint (``restart=True``) when run again. Results in
    the order of ``kws``."""
    token = uuid.uuid4().hex
    tasks = [{"func": func, "kw": dict(kw), "token": token} for kw in kws]
    return run_tasks(_continue_started, tasks, client=client, retries=retries, name="cgaa-run")


def observables_runner(client: Any, retries: int = 2) -> Callable[[Callable, Sequence[Dict[str, Any]]], List[Any]]:
    """The ``runner`` of ``cgaa.bench.observables.run_observables``: its replica runs as tasks on
    ``client`` (:func:`map_runs`)."""

    def runner(func: Callable[[Dict[str, Any]], Any], kws: Sequence[Dict[str, Any]]) -> List[Any]:
        return map_runs(func, kws, client=client, retries=retries)

    return runner
