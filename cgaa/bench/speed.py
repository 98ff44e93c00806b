"""Speed and memory: CGAA vs the all-atom baseline vs the classical teacher (vs SevenNet-0).

For each box size (atoms) of a recipe, and each *engine*:

* ``cgaa`` — the CGAA model (a deployed TorchScript file, the shipped model, or an
  untrained model of the shipped architecture: timings do not depend on the weights);
* ``allatom`` — the same network with every atom its own grain
  (:func:`cgaa.core.grains.atomic_grains`), same channels, layers, lmax and radial sizes, and a
  typical MLIP atom cutoff (default 5 Å), untrained;
* ``teacher`` — the classical OPLS-AA-type teacher (PME) in OpenMM's CPU platform;
* ``sevenn`` — SevenNet-0 through its ASE calculator, only when ``import sevenn``
  works (otherwise reported as skipped with the reason);

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
"""
from __future__ import annotations

import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from cgaa.bench.report import (available_cores, fmt, header, header_markdown, markdown_table, save_figure,
                               write_outputs)
from cgaa.core.grains import atomic_grains, grains_from_topology
from cgaa.core.inputs import make_inputs, vocabulary
from cgaa.core.model import CGAAModel, ModelConfig
from cgaa.core.modelfile import DeployedModel, inference_only, load_model, model_metadata, read_metadata
from cgaa.core.neighbors import neighbor_pairs
from cgaa.core.resources import forcefields_dir
from cgaa.core.units import angstrom_to_nm, openmm_lengths_A
from cgaa.openmm.mts import check_substeps, mts_integrator, split_force_groups
from cgaa.openmm.torchforce import ensure_torch_plugins
from cgaa.systems.boxfile import read_box
from cgaa.systems.build import box_suffix_for, build_box
from cgaa.openmm.system import create_system as cgaa_system
from cgaa.teacher.forcefield import create_system as teacher_system


ENGINES = ("cgaa", "allatom", "teacher", "sevenn")
TASKS = ("eval", "md")
#: Training config of the shipped model (the last stage of its recipe,
#: forcefields/models/lipf6-ec-emc-1m.stage4.train.yaml): its architecture is used when no trained
#: model exists yet (timings do not depend on the weights) and by the accuracy benchmark.
SHIPPED_CONFIG = "models/lipf6-ec-emc-1m.stage4.train.yaml"
#: ModelConfig keys that describe the vocabulary (taken from the box, not copied).
_VOCAB_KEYS = ("elements", "grain_types", "grain_type_names", "masses")
_RESULT_TAG = "CGAA_BENCH_RESULT "

PathLike = Union[str, Path]


# ============================================================================ helpers
def peak_rss_mib() -> float:
    """Peak resident set size of this process so far, MiB (Linux ru_maxrss is in KiB)."""
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 1024.0 if sys.platform != "darwin" else r / 2 ** 20


def ns_per_day(ms_per_step: float, timestep_fs: float = 1.0) -> float:
    """Simulated ns per day at ``ms_per_step`` wall milliseconds per step of ``timestep_fs`` fs."""
    if not ms_per_step > 0:
        return float("nan")
    return 86400.0 / (ms_per_step * 1e-3) * timestep_fs * 1e-6


def fit_exponent(n_atoms: Sequence[float], times: Sequence[float]) -> Tuple[float, float]:
    """Least-squares slope of log(time) vs log(atoms) and its standard error (NaN if < 2 points)."""
    x = np.log(np.asarray(n_atoms, dtype=float))
    y = np.log(np.asarray(times, dtype=float))
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if len(x) < 2 or np.ptp(x) == 0:
        return float("nan"), float("nan")
    A = np.vstack([x, np.ones_like(x)]).T
    coef, *_ = np.linalg.lstsq(A, y, rcond=None)
    if len(x) > 2:
        resid = y - A @ coef
        s2 = float(resid @ resid) / (len(x) - 2)
        err = math.sqrt(s2 / float(((x - x.mean()) ** 2).sum()))
    else:
        err = float("nan")
    return float(coef[0]), err


def timed_calls(fn, warmup: int, repeats: int, budget_s: float, min_repeats: int = 3
                ) -> Tuple[List[float], List[float]]:
    """Call ``fn`` ``warmup`` times untimed, then time up to ``repeats`` calls, stopping
    early once ``budget_s`` wall seconds are spent and at least ``min_repeats`` done.

    Returns (wall seconds, CPU seconds of the whole process) per call. On a machine shared
    with other work the CPU time is the robust measure: it does not count the time the
    process waited for a core (with one thread, CPU time ≈ wall time on an idle machine)."""
    for _ in range(max(0, warmup)):
        fn()
    times: List[float] = []
    cpu: List[float] = []
    spent = 0.0
    while len(times) < max(1, repeats):
        c0 = time.process_time()
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        cpu.append(time.process_time() - c0)
        times.append(dt)
        spent += dt
        if spent >= budget_s and len(times) >= min(min_repeats, repeats):
            break
    return times, cpu


def tensor_peak_mib(events) -> float:
    """Peak of the CPU tensor memory allocated over profiled events (MiB), above what was
    allocated when profiling began: the running sum, in time order, of every op's own
    allocations minus its frees (torch.profiler ``profile_memory``; ``self_cpu_memory_usage``,
    bytes). It counts tensors, not the allocator's or the process's overheads: the CPU
    analogue of ``torch.cuda.max_memory_allocated``, independent of what the process held or
    freed before, which the RSS high-water mark is not."""
    mem = sorted((e for e in events if e.self_cpu_memory_usage), key=lambda e: e.time_range.start)
    run, peak = 0, 0
    for e in mem:
        run += e.self_cpu_memory_usage
        peak = max(peak, run)
    return peak / 2 ** 20


def launch_profile(fn, calls: int = 1, cuda: bool = False) -> Tuple[Dict[str, float], Any]:
    """Count what ``calls`` calls of ``fn`` launch (torch.profiler): ATen ops (host side,
    outermost only),
    and on a GPU the CUDA kernels, the time the GPU spends in them (ms) and the host's
    synchronisations, each per call. Where time is per-op overhead rather than arithmetic
    (small graphs, GPUs), these say why. On the CPU also ``tensor_peak_MiB``, the peak of live
    tensor memory over the calls (:func:`tensor_peak_mib`). Returns (numbers, the profiler's
    key averages)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    if cuda:
        torch.cuda.synchronize()
    with profile(activities=acts, profile_memory=not cuda) as prof:
        for _ in range(calls):
            fn()
    if cuda:
        torch.cuda.synchronize()
    events = prof.events()
    avg = prof.key_averages()
    # ATen ops called by the model or autograd, not those nested inside other ATen ops
    top = [e for e in events if e.name.startswith("aten::")
           and not (e.cpu_parent is not None and e.cpu_parent.name.startswith("aten::"))]
    out = {"aten_ops_per_call": len(top) / calls}
    if not cuda:
        out["tensor_peak_MiB"] = tensor_peak_mib(events)
    if cuda:
        kernels = [e for e in events if e.device_type == torch.autograd.DeviceType.CUDA]
        out["cuda_kernels_per_call"] = len(kernels) / calls
        out["cuda_busy_ms_per_call"] = sum(e.device_time for e in kernels) / 1e3 / calls
        out["cuda_syncs_per_call"] = sum(e.count for e in avg if "Synchronize" in e.key) / calls
    return out, avg


def interleaved_cpu_times(calls: Dict[str, Callable[..., Any]], rounds: int, per_round: int,
                          warmup: int = 2, make_args: Optional[Callable[[], tuple]] = None
                          ) -> Dict[str, List[float]]:
    """A/B timing in one process: CPU seconds per call of each of ``calls``, interleaved.

    Each callable is called ``warmup`` times untimed; then, ``rounds`` times over, each in
    turn gets ``per_round`` timed calls, so that a drift in the machine's load falls on all
    alike. With ``make_args`` each call is ``fn(*make_args())``, the arguments built outside
    the timer (e.g. jittered positions, so no cache sees the same input twice); else ``fn()``.
    Returns {name: [CPU s per timed call]} (``rounds * per_round`` each)."""
    def args() -> tuple:
        return make_args() if make_args is not None else ()

    for fn in calls.values():
        for _ in range(max(0, warmup)):
            fn(*args())
    times: Dict[str, List[float]] = {k: [] for k in calls}
    for _ in range(rounds):
        for name, fn in calls.items():
            for _ in range(per_round):
                a = args()
                c0 = time.process_time()
                fn(*a)
                times[name].append(time.process_time() - c0)
    return times


def cpu_summary_ms(times_s: Sequence[float]) -> str:
    """'median M ms CPU (quartiles Q1-Q3)' of CPU seconds per call."""
    q1, med, q3 = (1000.0 * float(np.percentile(times_s, q)) for q in (25, 50, 75))
    return f"median {med:.1f} ms CPU (quartiles {q1:.1f}-{q3:.1f})"


def box_tensors_nm(pdb) -> Tuple[Any, Any]:
    """(positions (N, 3), box vectors (3, 3)) of an OpenMM ``PDBFile``/``PDBxFile`` as float32 torch tensors
    in nm: the inputs of the OpenMM-facing module (:mod:`cgaa.openmm.wrapper`)."""
    import torch


    pos = angstrom_to_nm(openmm_lengths_A(pdb.getPositions(asNumpy=True)))
    box = angstrom_to_nm(openmm_lengths_A(pdb.topology.getPeriodicBoxVectors()))
    return torch.tensor(pos, dtype=torch.float32), torch.tensor(box, dtype=torch.float32)


def shipped_hyper() -> Dict[str, Any]:
    """Model hyper-parameters of the shipped model's training config (no vocabulary)."""
    import yaml


    path = forcefields_dir() / SHIPPED_CONFIG
    if not path.is_file():
        raise FileNotFoundError(f"shipped training config {path} not found")
    return dict(yaml.safe_load(path.read_text())["model"])


def shipped_model_path() -> Optional[Path]:
    """The shipped default model file, or None if it does not exist (yet)."""

    p = forcefields_dir() / "models" / "lipf6-ec-emc-1m.pt"
    return p if p.is_file() else None


# ============================================================================ worker side
def _build_model(spec: Dict[str, Any], topology, numbers: np.ndarray):
    """(DeployedModel, grain map) for the spec's engine (cgaa or allatom)."""
    import torch


    all_atom = spec["engine"] == "allatom"
    gm = atomic_grains(numbers) if all_atom else grains_from_topology(topology)
    if spec.get("model") and not all_atom:
        return load_model(spec["model"], spec.get("device", "cpu")), gm
    if spec.get("model"):

        hyper = {k: v for k, v in read_metadata(spec["model"])["config"].items() if k not in _VOCAB_KEYS}
    else:
        hyper = dict(spec["hyper"])
    hyper.update(spec.get("override") or {})
    if all_atom:
        # an ordinary all-atom MLIP: every atom a grain, no extra contact term (it would double its edges)
        hyper["all_atom"] = True
        hyper["pair_cutoff"] = 0.0
    el, keys, names = vocabulary([gm], [numbers])
    cfg = ModelConfig.from_dict({**hyper, "elements": el, "grain_types": keys, "grain_type_names": names})
    torch.manual_seed(int(spec.get("seed", 0)))
    model = CGAAModel(cfg).to(spec.get("device", "cpu")).eval()
    scripted = inference_only(torch.jit.script(model))
    return DeployedModel(module=scripted, metadata=model_metadata(model), path=None), gm


def _graph_stats(deployed, gm, numbers: np.ndarray, pos_A: np.ndarray, cell_A: np.ndarray) -> Dict[str, Any]:
    """Grains and inter-grain edges of the box under the model's cutoff."""
    import torch


    cfg = deployed.config
    m = np.asarray(cfg.masses)[[cfg.elements.index(int(z)) for z in numbers]]
    gi = np.asarray(gm.grain_index)
    ng = int(gi.max()) + 1
    # grain centres by minimum image about each grain's first atom (as the model does)
    first = np.full(ng, -1)
    for a in range(len(gi) - 1, -1, -1):
        first[gi[a]] = a
    inv = np.linalg.inv(cell_A)
    d = pos_A - pos_A[first[gi]]
    d = d - np.round(d @ inv) @ cell_A
    w = m
    c = np.zeros((ng, 3))
    np.add.at(c, gi, w[:, None] * d)
    mw = np.zeros(ng)
    np.add.at(mw, gi, w)
    r = pos_A[first] + c / mw[:, None]
    pairs, _ = neighbor_pairs(torch.tensor(r), torch.tensor(cell_A), float(cfg.cutoff))
    return {"n_grains": ng, "n_edges": int(pairs.shape[1]), "cutoff_A": float(cfg.cutoff),
            "edges_per_grain": float(pairs.shape[1]) / ng}


def _worker_ml_eval(spec: Dict[str, Any], pdb, numbers, rss0: float) -> Dict[str, Any]:
    import torch


    dev = spec.get("device", "cpu")
    if dev.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    deployed, gm = _build_model(spec, pdb.topology, numbers)
    pos = openmm_lengths_A(pdb.getPositions(asNumpy=True))
    cell = openmm_lengths_A(pdb.topology.getPeriodicBoxVectors())
    kw = make_inputs(pos, numbers, gm, deployed.config, cell, dtype=torch.float32, device=dev)
    build_s = time.perf_counter() - t0
    module = deployed.module

    def call():
        out = module(kw["pos"], kw["species"], kw["grain_index"], kw["grain_type"], kw["cell"], True, False)
        float(out["energy"])  # synchronise (CUDA) and make sure the result exists
        return out

    times, cpu = timed_calls(call, spec["warmup"], spec["repeats"], spec["budget_s"])
    out = call()
    res = {"times_s": times, "median_s": float(np.median(times)), "min_s": float(np.min(times)),
           "cpu_times_s": cpu, "median_cpu_s": float(np.median(cpu)),
           "build_s": build_s, "energy_finite": bool(torch.isfinite(out["energy"]).item()),
           "forces_finite": bool(torch.isfinite(out["forces"]).all().item())}
    res.update(_memory(rss0, dev))  # before the profiler's own allocations
    res["profile"] = launch_profile(call, 1, cuda=dev.startswith("cuda"))[0]
    if "tensor_peak_MiB" in res["profile"]:  # the CPU's measure of what one evaluation needs
        res["tensor_peak_MiB"] = res["profile"].pop("tensor_peak_MiB")
    res.update(_graph_stats(deployed, gm, numbers, pos, cell))
    return res


def _memory(rss0: float, dev: str) -> Dict[str, Any]:
    peak = peak_rss_mib()
    out = {"peak_rss_MiB": peak, "baseline_rss_MiB": rss0, "delta_rss_MiB": peak - rss0}
    if dev.startswith("cuda"):
        import torch

        out["cuda_max_allocated_MiB"] = torch.cuda.max_memory_allocated() / 2 ** 20
    return out


def _openmm_context(system, threads: int, dev: str, fast_substeps: int = 1):
    import openmm
    from openmm import unit

    if fast_substeps > 1:  # r-RESPA: the network every fast_substeps fs, the intra-grain prior every fs

        split_force_groups(system)
        integ = mts_integrator(float(fast_substeps), fast_substeps, temperature=298.15, friction_per_ps=1.0, seed=1)
    else:
        integ = openmm.LangevinMiddleIntegrator(298.15 * unit.kelvin, 1.0 / unit.picosecond, 1.0 * unit.femtosecond)
        integ.setRandomNumberSeed(1)
    if dev.startswith("cuda"):
        plat = openmm.Platform.getPlatformByName("CUDA")
        props = {"Precision": "mixed"}
    else:
        plat = openmm.Platform.getPlatformByName("CPU")
        props = {"Threads": str(threads)}
    return openmm.Context(system, integ, plat, props), integ


def _worker_md(spec: Dict[str, Any], pdb, numbers, rss0: float) -> Dict[str, Any]:
    import openmm
    from openmm import unit

    dev = spec.get("device", "cpu")
    t0 = time.perf_counter()
    if spec["engine"] == "teacher":
        system = teacher_system(pdb.topology, cutoff=float(spec.get("teacher_cutoff_nm", 1.0)))
    else:
        deployed, _ = _build_model(spec, pdb.topology, numbers)
        system = cgaa_system(pdb.topology, deployed)
    substeps = int(spec.get("fast_substeps", 1))
    ctx, integ = _openmm_context(system, spec["threads"], dev, substeps)
    ctx.setPositions(pdb.positions)
    if spec["engine"] == "teacher":
        openmm.LocalEnergyMinimizer.minimize(ctx, 10.0, 200)
    ctx.setVelocitiesToTemperature(298.15 * unit.kelvin, 1)
    build_s = time.perf_counter() - t0

    def step():
        integ.step(1)

    # per-step timing (a step's forces are computed inside it; getState would add a copy)
    times, cpu = timed_calls(step, spec["warmup"], spec["md_steps"], spec["budget_s"])
    st = ctx.getState(getEnergy=True)
    e = st.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    med_ms = float(np.median(times)) * 1e3
    res = {"times_s": times, "median_ms_per_step": med_ms, "mean_ms_per_step": float(np.mean(times)) * 1e3,
           "timestep_fs": float(substeps), "fast_substeps": substeps,
           "ns_per_day": ns_per_day(med_ms, substeps), "steps": len(times), "build_s": build_s,
           "cpu_times_s": cpu, "median_cpu_ms_per_step": float(np.median(cpu)) * 1e3,
           "ns_per_day_cpu": ns_per_day(float(np.median(cpu)) * 1e3, substeps),
           "energy_finite": bool(math.isfinite(e)), "platform": ctx.getPlatform().getName()}
    res.update(_memory(rss0, dev))
    return res


def _worker_teacher_eval(spec: Dict[str, Any], pdb, numbers, rss0: float) -> Dict[str, Any]:
    import openmm
    from openmm import unit


    t0 = time.perf_counter()
    system = teacher_system(pdb.topology, cutoff=float(spec.get("teacher_cutoff_nm", 1.0)))
    ctx, _ = _openmm_context(system, spec["threads"], spec.get("device", "cpu"))
    ctx.setPositions(pdb.positions)
    openmm.LocalEnergyMinimizer.minimize(ctx, 10.0, 50)
    build_s = time.perf_counter() - t0
    box = [ctx.getState().getPeriodicBoxVectors()]

    def call():
        # setPositions invalidates cached forces, so each call really recomputes them
        st = ctx.getState(getPositions=True)
        ctx.setPositions(st.getPositions())
        ctx.setPeriodicBoxVectors(*box[0])
        return ctx.getState(getEnergy=True, getForces=True)

    times, cpu = timed_calls(call, spec["warmup"], spec["repeats"], spec["budget_s"])
    st = call()
    e = st.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    f = st.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)
    res = {"times_s": times, "median_s": float(np.median(times)), "min_s": float(np.min(times)),
           "cpu_times_s": cpu, "median_cpu_s": float(np.median(cpu)),
           "build_s": build_s, "energy_finite": bool(math.isfinite(e)),
           "forces_finite": bool(np.isfinite(np.asarray(f)).all())}
    res.update(_memory(rss0, spec.get("device", "cpu")))
    return res


def _worker_sevenn_eval(spec: Dict[str, Any], pdb, numbers, rss0: float) -> Dict[str, Any]:
    from ase import Atoms
    from sevenn.calculator import SevenNetCalculator  # noqa: F401  (ImportError → skipped)

    t0 = time.perf_counter()
    atoms = Atoms(numbers=numbers, positions=openmm_lengths_A(pdb.getPositions(asNumpy=True)),
                  cell=openmm_lengths_A(pdb.topology.getPeriodicBoxVectors()), pbc=True)
    calc = SevenNetCalculator(spec.get("sevenn_model", "7net-0"), device=spec.get("device", "cpu"))
    build_s = time.perf_counter() - t0

    def call():
        calc.calculate(atoms, properties=["energy", "forces"], system_changes=["positions"])
        return calc.results

    # no TorchScript here: one warm-up call is enough (and each call is expensive)
    times, cpu = timed_calls(call, min(1, spec["warmup"]), spec["repeats"], spec["budget_s"])
    r = call()
    res = {"times_s": times, "median_s": float(np.median(times)), "min_s": float(np.min(times)),
           "cpu_times_s": cpu, "median_cpu_s": float(np.median(cpu)),
           "build_s": build_s, "energy_finite": bool(np.isfinite(r["energy"])),
           "forces_finite": bool(np.isfinite(r["forces"]).all()),
           "cutoff_A": float(getattr(calc, "cutoff", float("nan")))}
    res.update(_memory(rss0, spec.get("device", "cpu")))
    return res


def worker(spec: Dict[str, Any]) -> Dict[str, Any]:
    """Run one (engine, task, box) measurement in this process and return its result."""
    import torch

    torch.set_num_threads(int(spec["threads"]))
    if spec["engine"] in ("cgaa", "allatom") and spec["task"] == "md":

        ensure_torch_plugins()

    pdb = read_box(spec["pdb"])
    numbers = np.array([a.element.atomic_number for a in pdb.topology.atoms()], dtype=np.int64)
    rss0 = peak_rss_mib()
    eng, task = spec["engine"], spec["task"]
    if eng in ("cgaa", "allatom"):
        res = _worker_ml_eval(spec, pdb, numbers, rss0) if task == "eval" else _worker_md(spec, pdb, numbers, rss0)
    elif eng == "teacher":
        res = _worker_teacher_eval(spec, pdb, numbers, rss0) if task == "eval" else _worker_md(spec, pdb, numbers, rss0)
    elif eng == "sevenn":
        if task != "eval":
            raise ValueError("SevenNet-0 is benchmarked for eval only (it has no OpenMM force here)")
        res = _worker_sevenn_eval(spec, pdb, numbers, rss0)
    else:
        raise ValueError(f"unknown engine {eng!r} (known: {', '.join(ENGINES)})")
    res["n_atoms"] = int(len(numbers))
    res["threads"] = int(torch.get_num_threads())
    return res


def _main_worker(argv: Sequence[str]) -> int:
    spec = json.loads(argv[0])
    res = worker(spec)
    sys.stdout.write(_RESULT_TAG + json.dumps(res) + "\n")
    sys.stdout.flush()
    return 0


# ============================================================================ parent side
def run_worker(spec: Dict[str, Any], timeout_s: float = 600.0, mem_limit_gib: float = 0.0,
               poll_s: float = 0.2) -> Dict[str, Any]:
    """Run :func:`worker` in a fresh subprocess; returns its result, or
    ``{"status": "failed"|"timeout"|"memory", "reason": ...}``. ``mem_limit_gib`` > 0 kills
    the subprocess when its RSS passes that many GiB."""
    import psutil

    cmd = [sys.executable, "-m", "cgaa.bench.speed", "--worker", json.dumps(spec)]
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(spec["threads"]))
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    ps = psutil.Process(proc.pid)
    status, reason, max_seen = "ok", "", 0.0
    import threading

    out_chunks: List[str] = []
    err_chunks: List[str] = []
    t_out = threading.Thread(target=lambda: out_chunks.append(proc.stdout.read()), daemon=True)
    t_err = threading.Thread(target=lambda: err_chunks.append(proc.stderr.read()), daemon=True)
    t_out.start()
    t_err.start()
    while proc.poll() is None:
        time.sleep(poll_s)
        try:
            rss = ps.memory_info().rss / 2 ** 30
        except psutil.Error:
            rss = 0.0
        max_seen = max(max_seen, rss)
        if mem_limit_gib > 0 and rss > mem_limit_gib:
            status, reason = "memory", f"RSS passed the memory limit of {mem_limit_gib:g} GiB (stopped)"
            proc.kill()
            break
        if time.perf_counter() - t0 > timeout_s:
            status, reason = "timeout", f"did not finish within {timeout_s:g} s (stopped)"
            proc.kill()
            break
    proc.wait()
    t_out.join(5)
    t_err.join(5)
    wall = time.perf_counter() - t0
    stdout = "".join(out_chunks)
    stderr = "".join(err_chunks)
    if status == "ok":
        lines = [ln for ln in stdout.splitlines() if ln.startswith(_RESULT_TAG)]
        if proc.returncode != 0 or not lines:
            tail = [ln for ln in stderr.strip().splitlines() if ln.strip()]
            if proc.returncode is not None and proc.returncode < 0:
                status, reason = "failed", f"killed by signal {-proc.returncode} (out of memory?)"
            else:
                last = tail[-1] if tail else f"exit code {proc.returncode}"
                status = "skipped" if "ModuleNotFoundError" in last or "ImportError" in last else "failed"
                reason = last[:400]
        else:
            res = json.loads(lines[-1][len(_RESULT_TAG):])
            res.update(status="ok", wall_s=wall, max_rss_seen_GiB=max_seen)
            return res
    return {"status": status, "reason": reason, "wall_s": wall, "max_rss_seen_GiB": max_seen}


def box_for(recipe: str, n_atoms: int, box_dir: PathLike, seed: int = 0) -> Tuple[Path, int, float]:
    """(box file path, actual atoms, shortest box height Å) of a packed box, built once and
    reused: PDB, or PDBx/mmCIF above 99,999 atoms."""

    box_dir = Path(box_dir)
    path = box_dir / f"{Path(str(recipe)).stem}-{n_atoms}-s{seed}{box_suffix_for(recipe, n_atoms)}"
    if not path.is_file():
        build_box(recipe, n_atoms, path, seed=seed)
    pdb = read_box(path)
    cell = openmm_lengths_A(pdb.topology.getPeriodicBoxVectors())
    vol = abs(np.linalg.det(cell))
    heights = [vol / np.linalg.norm(np.cross(cell[(i + 1) % 3], cell[(i + 2) % 3])) for i in range(3)]
    return path, pdb.topology.getNumAtoms(), float(min(heights))


def _sevenn_available() -> Tuple[bool, str]:
    try:
        import importlib.util

        if importlib.util.find_spec("sevenn") is None:
            return False, "the optional package 'sevenn' is not installed (pip install sevenn)"
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
        from dataclasses import fields


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
                elif eng == "teacher" and not teacher_cutoff_nm * 10.0 < 0.5 * hmin:
                    why = (f"box too small: teacher cutoff {teacher_cutoff_nm} nm is not below half the box "
                           f"height ({0.05 * hmin:.3f} nm)")
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


def describe_result(e: Dict[str, Any]) -> str:
    """One line describing a result entry."""
    head = f"{e['engine']:8s} {e['task']:4s} {e['n_atoms']:6d} atoms: "
    if e.get("status") != "ok":
        return head + f"{e.get('status')} ({e.get('reason')})"
    if e["task"] == "eval":
        return head + f"{e['median_s'] * 1e3:.1f} ms/eval, +{e['delta_rss_MiB']:.0f} MiB (peak {e['peak_rss_MiB']:.0f} MiB)"
    step = f"{e['median_ms_per_step']:.2f} ms/step"
    if e.get("fast_substeps", 1) > 1:
        step += f" of {e['fast_substeps']} fs (r-RESPA)"
    return head + f"{step} = {e['ns_per_day']:.3g} ns/day, +{e['delta_rss_MiB']:.0f} MiB"


def _get(rep: Dict[str, Any], eng: str, task: str, n: int) -> Optional[Dict[str, Any]]:
    for e in rep["results"]:
        if e["engine"] == eng and e["task"] == task and e["target_atoms"] == n and e.get("status") == "ok":
            return e
    return None


def _time_of(e: Dict[str, Any], cpu: bool = False) -> float:
    """Median wall (or CPU) seconds per evaluation / per fs of MD (per step at 1 fs) of a result entry."""
    if e["task"] == "eval":
        return e.get("median_cpu_s", float("nan")) if cpu else e["median_s"]
    per_step = e.get("median_cpu_ms_per_step", float("nan")) if cpu else e["median_ms_per_step"]
    return per_step * 1e-3 / float(e.get("timestep_fs", 1.0))


def finish_speed_report(rep: Dict[str, Any]) -> Dict[str, Any]:
    """Add ratios (per box size) and fitted scaling exponents to a speed report."""
    sizes = [b["target_atoms"] for b in rep["boxes"]]
    ratios = []
    for n in sizes:
        r: Dict[str, Any] = {"target_atoms": n}
        cg = _get(rep, "cgaa", "eval", n)
        aa = _get(rep, "allatom", "eval", n)
        sv = _get(rep, "sevenn", "eval", n)
        cgm = _get(rep, "cgaa", "md", n)
        aam = _get(rep, "allatom", "md", n)
        te = _get(rep, "teacher", "md", n)
        if cg and aa:
            r["allatom_over_cgaa_time"] = aa["median_s"] / cg["median_s"]
            r["allatom_over_cgaa_peak_rss"] = aa["peak_rss_MiB"] / cg["peak_rss_MiB"]
            if cg["delta_rss_MiB"] > 0:
                r["allatom_over_cgaa_delta_rss"] = aa["delta_rss_MiB"] / cg["delta_rss_MiB"]
            if cg.get("tensor_peak_MiB", 0) > 0 and "tensor_peak_MiB" in aa:
                r["allatom_over_cgaa_tensor_peak"] = aa["tensor_peak_MiB"] / cg["tensor_peak_MiB"]
            if cg.get("cuda_max_allocated_MiB", 0) > 0 and "cuda_max_allocated_MiB" in aa:
                r["allatom_over_cgaa_cuda_max_allocated"] = aa["cuda_max_allocated_MiB"] / cg["cuda_max_allocated_MiB"]
        if cg and sv:
            r["sevenn_over_cgaa_time"] = sv["median_s"] / cg["median_s"]
            r["sevenn_over_cgaa_peak_rss"] = sv["peak_rss_MiB"] / cg["peak_rss_MiB"]
        if cgm and te:
            r["cgaa_md_over_teacher_md_time"] = _time_of(cgm) / _time_of(te)
        if cgm and aam:
            r["allatom_md_over_cgaa_md_time"] = _time_of(aam) / _time_of(cgm)
        for key, a, b in (("allatom_over_cgaa_cpu_time", aa, cg), ("sevenn_over_cgaa_cpu_time", sv, cg),
                          ("cgaa_md_over_teacher_md_cpu_time", cgm, te),
                          ("allatom_md_over_cgaa_md_cpu_time", aam, cgm)):
            if a and b and _time_of(b, True) > 0:
                r[key] = _time_of(a, True) / _time_of(b, True)
        ratios.append(r)
    rep["ratios"] = ratios
    scaling = []
    for eng in ENGINES:
        for task in TASKS:
            pts = [(e["n_atoms"], _time_of(e)) for e in rep["results"]
                   if e["engine"] == eng and e["task"] == task and e.get("status") == "ok"]
            if len(pts) >= 2:
                k, err = fit_exponent([p[0] for p in pts], [p[1] for p in pts])
                cpts = [(e["n_atoms"], _time_of(e, True)) for e in rep["results"]
                        if e["engine"] == eng and e["task"] == task and e.get("status") == "ok"]
                kc, errc = fit_exponent([p[0] for p in cpts], [p[1] for p in cpts])
                scaling.append({"engine": eng, "task": task, "exponent": k, "exponent_err": err,
                                "exponent_cpu": kc, "exponent_cpu_err": errc, "n_atoms": [p[0] for p in pts]})
    rep["scaling"] = scaling
    return rep


# ============================================================================ output
def _on_gpu(rep: Dict[str, Any]) -> bool:
    """Whether a speed report was measured with ``device='cuda'`` (then it has CUDA memory and
    kernel counts, and wall rather than CPU time describes the work)."""
    return str(rep.get("device", "cpu")).startswith("cuda")


def speed_markdown(rep: Dict[str, Any]) -> str:
    """Markdown tables of a speed report."""

    lines = ["## Speed and memory", "", header_markdown(rep), "",
             f"Recipe `{rep['recipe']}`; CGAA model: {rep['model']['source']}; "
             f"CGAA cutoff {rep['cgaa_cutoff_A']} Å between grain centres, all-atom baseline cutoff "
             f"{rep['allatom_cutoff_A']} Å; {rep['threads']} threads; device {rep['device']}.", ""]
    cuda = _on_gpu(rep)
    rows = []
    for e in rep["results"]:
        if e.get("status") != "ok":
            rows.append([e["engine"], e["task"], str(e["n_atoms"])] + ["—"] * 6
                        + [f"{e.get('status')}: {e.get('reason')}"])
            continue
        t, tc = fmt(_time_of(e) * 1e3), fmt(_time_of(e, True) * 1e3)
        md = "—" if e["task"] == "eval" else f"{fmt(e['ns_per_day'])} / {fmt(e.get('ns_per_day_cpu'))}"
        graph = f"{e['n_grains']} nodes, {e['n_edges']} edges" if "n_edges" in e else ""
        if e.get("fast_substeps", 1) > 1:
            graph = f"r-RESPA: network every {e['fast_substeps']} fs, intra-grain prior every 1 fs"
        mem = [fmt(e["peak_rss_MiB"], 4), fmt(e["delta_rss_MiB"], 4)]
        if cuda:
            mem.append(fmt(e.get("cuda_max_allocated_MiB"), 4) if "cuda_max_allocated_MiB" in e else "—")
        else:
            mem.append(fmt(e.get("tensor_peak_MiB"), 4) if "tensor_peak_MiB" in e else "—")
        rows.append([e["engine"], e["task"], str(e["n_atoms"]), t, tc, md] + mem + [graph])
    lines.append(markdown_table(["engine", "task", "atoms", "median wall ms (per eval / per fs of MD)",
                                 "median CPU ms", "ns/day (wall / CPU)", "peak RSS MiB",
                                 "RSS above baseline MiB"]
                                + (["CUDA max allocated MiB"] if cuda else ["tensor peak MiB (one eval)"])
                                + ["graph / note"], rows))
    lines.append("")
    if rep.get("ratios"):
        keys = [("allatom_over_cgaa_time", "all-atom / CGAA time"),
                ("allatom_over_cgaa_peak_rss", "all-atom / CGAA peak RSS"),
                ("allatom_over_cgaa_delta_rss", "all-atom / CGAA RSS above baseline"),
                ("allatom_over_cgaa_cuda_max_allocated", "all-atom / CGAA CUDA max allocated"),
                ("allatom_over_cgaa_tensor_peak", "all-atom / CGAA tensor peak"),
                ("sevenn_over_cgaa_time", "SevenNet-0 / CGAA time"),
                ("cgaa_md_over_teacher_md_time", "CGAA MD / teacher MD time per fs"),
                ("allatom_md_over_cgaa_md_time", "all-atom MD / CGAA MD time per fs"),
                ("allatom_over_cgaa_cpu_time", "all-atom / CGAA CPU time"),
                ("sevenn_over_cgaa_cpu_time", "SevenNet-0 / CGAA CPU time"),
                ("cgaa_md_over_teacher_md_cpu_time", "CGAA MD / teacher MD CPU time"),
                ("allatom_md_over_cgaa_md_cpu_time", "all-atom MD / CGAA MD CPU time")]
        keys = [k for k in keys if any(k[0] in r for r in rep["ratios"])]
        if keys:
            rows = [[str(r["target_atoms"])] + [fmt(r.get(k)) for k, _ in keys] for r in rep["ratios"]]
            lines += ["Ratios (same run):", "", markdown_table(["atoms (target)"] + [lab for _, lab in keys], rows), ""]
    prof = [e for e in rep["results"] if e.get("status") == "ok" and e.get("profile")]
    if prof:
        rows = [[e["engine"], str(e["n_atoms"]), fmt(e["profile"]["aten_ops_per_call"], 4)]
                + ([fmt(e["profile"].get("cuda_kernels_per_call"), 4), fmt(e["profile"].get("cuda_busy_ms_per_call")),
                    fmt(e["profile"].get("cuda_syncs_per_call"))] if cuda else []) for e in prof]
        lines += ["What one evaluation launches (torch.profiler, one call):", "",
                  markdown_table(["engine", "atoms", "ATen ops"]
                                 + (["CUDA kernels", "GPU busy ms", "host syncs"] if cuda else []), rows), ""]
    if rep.get("scaling"):
        rows = [[s["engine"], s["task"], fmt(s["exponent"]), fmt(s["exponent_err"]), fmt(s.get("exponent_cpu")),
                 fmt(s.get("exponent_cpu_err")), ", ".join(str(n) for n in s["n_atoms"])] for s in rep["scaling"]]
        lines += ["Cost scaling, time ∝ atoms^k (least squares on log-log):", "",
                  markdown_table(["engine", "task", "k (wall)", "± (fit)", "k (CPU)", "± (fit)", "atoms"], rows), ""]
    return "\n".join(lines)


def speed_plot(rep: Dict[str, Any], path: PathLike) -> Optional[Path]:
    """Log-log plot of time per evaluation / per MD step and of memory vs atoms (on the CPU peak
    RSS, and the ML engines' live-tensor peak; on a GPU CUDA max allocated)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt


    ok = [e for e in rep["results"] if e.get("status") == "ok"]
    if not ok:
        return None
    # on a GPU the host's CPU time says little about the device's work: plot wall time, and
    # the CUDA max allocated memory instead of the process's RSS (mostly the CUDA context)
    gpu = _on_gpu(rep)
    clock = "wall" if gpu else "CPU"
    mem_key = "cuda_max_allocated_MiB" if gpu else "peak_rss_MiB"
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.3))
    style = {"cgaa": "o-", "allatom": "s--", "teacher": "^-.", "sevenn": "d:"}
    colour = {e: f"C{i}" for i, e in enumerate(ENGINES)}  # one colour per engine in every panel
    for eng in ENGINES:
        for ax, task in ((axes[0], "eval"), (axes[1], "md")):
            pts = sorted((e["n_atoms"], _time_of(e, not gpu) * 1e3) for e in ok
                         if e["engine"] == eng and e["task"] == task)
            if pts:
                ax.loglog(*zip(*pts), style[eng], color=colour[eng], label=eng)
        pts = sorted((e["n_atoms"], e[mem_key]) for e in ok
                     if e["engine"] == eng and e["task"] == "eval" and mem_key in e)
        if pts:
            axes[2].loglog(*zip(*pts), style[eng], color=colour[eng], label=eng + (" (peak RSS)" if not gpu else ""))
        pts = sorted((e["n_atoms"], e["tensor_peak_MiB"]) for e in ok
                     if e["engine"] == eng and e["task"] == "eval" and "tensor_peak_MiB" in e and not gpu)
        if pts:  # what the model itself needs, free of the process's and the allocator's overheads
            axes[2].loglog(*zip(*pts), style[eng], color=colour[eng], alpha=0.45, label=f"{eng} (live tensors, one eval)")
    for ax, t in zip(axes, (f"energy+forces evaluation, {clock} ms", f"OpenMM MD, {clock} ms per fs",
                            "CUDA max allocated of the eval process (MiB)" if gpu
                            else "memory of the eval process (MiB)")):
        ax.set_xlabel("atoms")
        ax.set_title(t, fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "not measured in this run", ha="center", va="center", transform=ax.transAxes)
    where = rep["machine"].get("gpu") if gpu and rep["machine"].get("gpu") else rep["machine"]["cpu"]
    fig.suptitle(f"cgaa bench speed — {where}, {rep['threads']} threads, {rep['date'][:10]}",
                 fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def write_speed_outputs(rep: Dict[str, Any], out_dir: PathLike) -> Dict[str, Path]:
    """speed.json, speed.md and speed.png in ``out_dir``."""

    return write_outputs(rep, out_dir, "speed", speed_markdown, speed_plot)


if __name__ == "__main__":  # the subprocess entry point of run_worker
    if len(sys.argv) >= 3 and sys.argv[1] == "--worker":
        sys.exit(_main_worker(sys.argv[2:]))
    print("usage: python -m cgaa.bench.speed --worker SPEC_JSON (use `cgaa bench speed`)", file=sys.stderr)
    sys.exit(2)
