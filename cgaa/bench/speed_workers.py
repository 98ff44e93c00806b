"""The measuring side of ``cgaa bench speed``: one (engine, task, box) measurement per fresh
subprocess, and the timing and memory tools it uses.

:func:`run_worker` (parent side) starts ``python -m cgaa.bench.speed_workers --worker SPEC_JSON``
and watches its memory and time; :func:`worker` (child side) reads the box, builds the engine
and measures one energy+force evaluation (``eval``) or OpenMM MD steps (``md``), then prints
its result as one tagged JSON line. ``python -m cgaa.bench.speed --worker SPEC_JSON`` is the
same entry point under its older name. What is measured and how is described in
:mod:`cgaa.bench.speed`; the report is :mod:`cgaa.bench.speed_report`.

The timing tools (:func:`timed_calls`, :func:`interleaved_cpu_times`, :func:`launch_profile`,
:func:`tensor_peak_mib`) also serve the A/B scripts under docs/benchmarks/.
"""
from __future__ import annotations

import json
import math
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from ase import Atoms
from ase.calculators.mixing import SumCalculator

from cgaa.core.grains import atomic_grains, grains_from_topology
from cgaa.core.inputs import make_inputs, vocabulary
from cgaa.core.model import CGAAModel, ModelConfig, grain_centers
from cgaa.core.modelfile import DeployedModel, inference_only, load_model, model_metadata, read_metadata
from cgaa.core.neighbors import neighbor_pairs
from cgaa.core.resources import forcefields_dir
from cgaa.core.units import angstrom_to_nm, openmm_lengths_A
from cgaa.openmm.mts import mts_integrator, split_force_groups
from cgaa.openmm.system import create_system as cgaa_system
from cgaa.openmm.torchforce import ensure_torch_plugins
from cgaa.systems.boxfile import read_box
from cgaa.teacher.forcefield import create_system as teacher_system
from cgaa.teacher.quantum import sevennet_d3


ENGINES = ("cgaa", "allatom", "teacher", "sevenn")
TASKS = ("eval", "md")
#: Training config of the shipped model (the last stage of its recipe,
#: forcefields/models/lipf6-ec-emc-1m.stage4.train.yaml): its architecture is used when no trained
#: model exists yet (timings do not depend on the weights) and by the accuracy benchmark.
SHIPPED_CONFIG = "models/lipf6-ec-emc-1m.stage4.train.yaml"
#: ModelConfig keys that describe the vocabulary (taken from the box, not copied).
_VOCAB_KEYS = ("elements", "grain_types", "grain_type_names", "masses")
_RESULT_TAG = "CGAA_BENCH_RESULT "
#: The module :func:`run_worker` runs with ``python -m`` (this one).
WORKER_MODULE = "cgaa.bench.speed_workers"

PathLike = Union[str, Path]


# ============================================================================ timing and memory tools
def peak_rss_mib() -> float:
    """Peak resident set size of this process so far, MiB (Linux ru_maxrss is in KiB)."""
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 1024.0 if sys.platform != "darwin" else r / 2 ** 20


def ns_per_day(ms_per_step: float, timestep_fs: float = 1.0) -> float:
    """Simulated ns per day at ``ms_per_step`` wall milliseconds per step of ``timestep_fs`` fs."""
    if not ms_per_step > 0:
        return float("nan")
    return 86400.0 / (ms_per_step * 1e-3) * timestep_fs * 1e-6


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


def graph_stats(deployed: DeployedModel, inputs: Dict[str, Any]) -> Dict[str, Any]:
    """Grains and inter-grain edges of a box under the model's cutoff, as the model finds them.

    ``inputs`` are the model's inputs (:func:`cgaa.core.inputs.make_inputs`: positions and
    cell in Å). The grain centres are the model's own (:func:`cgaa.core.model.grain_centers`
    on the positions in the deployed module's dtype, with its masses: minimum-image
    unwrapping of each grain about its first atom, mass-weighted), the edges the grain-centre
    pairs within ``cutoff``, both orders, found as :meth:`cgaa.core.model.CGAAModel.edges`
    finds them. Works on any deployed file (older ones have no scripted ``edges``)."""
    module = deployed.module
    dtype = module.masses.dtype
    pos = inputs["pos"].to(dtype)
    cell = inputs["cell"].to(dtype) if inputs["cell"] is not None else None
    grain_index = inputs["grain_index"]
    n_grains = int(inputs["grain_type"].shape[0])
    cutoff = float(deployed.config.cutoff)
    with torch.no_grad():
        r, _u, _mg = grain_centers(pos, module.masses[inputs["species"]], grain_index, n_grains, cell)
        pairs, _shifts = neighbor_pairs(r, cell, cutoff)
    n_edges = int(pairs.shape[1])
    return {"n_grains": n_grains, "n_edges": n_edges, "cutoff_A": cutoff, "edges_per_grain": n_edges / n_grains}


def _worker_ml_eval(spec: Dict[str, Any], pdb, numbers, rss0: float) -> Dict[str, Any]:
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
    res.update(graph_stats(deployed, kw))
    return res


def _memory(rss0: float, dev: str) -> Dict[str, Any]:
    peak = peak_rss_mib()
    out = {"peak_rss_MiB": peak, "baseline_rss_MiB": rss0, "delta_rss_MiB": peak - rss0}
    if dev.startswith("cuda"):
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
    """The quantum-level teacher exactly as ``cgaa label -c sevenn`` runs it: SevenNet-0 plus D3(BJ)
    (:func:`cgaa.teacher.quantum.sevennet_d3`; ``spec["sevenn_d3"]`` False: SevenNet-0 alone). The D3
    part is also timed on its own (``d3_median_cpu_s``)."""
    t0 = time.perf_counter()
    atoms = Atoms(numbers=numbers, positions=openmm_lengths_A(pdb.getPositions(asNumpy=True)),
                  cell=openmm_lengths_A(pdb.topology.getPeriodicBoxVectors()), pbc=True)
    with_d3 = bool(spec.get("sevenn_d3", True))
    calc = sevennet_d3(spec.get("sevenn_model", "7net-0"), device=spec.get("device", "cpu"), d3=with_d3)
    parts = list(calc.mixer.calcs) if isinstance(calc, SumCalculator) else [calc]
    build_s = time.perf_counter() - t0

    def evaluate(c, subs):
        for sub in subs:  # ASE caches results for unchanged atoms: every timed call computes afresh
            sub.reset()
        c.calculate(atoms, properties=["energy", "forces"], system_changes=["positions"])
        return c.results

    def call():  # calculate() of the sum always asks its parts afresh; only the parts cache
        return evaluate(calc, parts)

    # no TorchScript here: one warm-up call is enough (and each call is expensive)
    times, cpu = timed_calls(call, min(1, spec["warmup"]), spec["repeats"], spec["budget_s"])
    r = call()
    res = {"times_s": times, "median_s": float(np.median(times)), "min_s": float(np.min(times)),
           "cpu_times_s": cpu, "median_cpu_s": float(np.median(cpu)),
           "build_s": build_s, "energy_finite": bool(np.isfinite(r["energy"])),
           "forces_finite": bool(np.isfinite(r["forces"]).all()),
           "cutoff_A": float(getattr(parts[0], "cutoff", float("nan"))),
           "calculator": "SevenNet-0 + D3(BJ) (cgaa.teacher.quantum.sevennet_d3)" if with_d3 else "SevenNet-0"}
    if with_d3:
        d3 = parts[1]
        d3_times, d3_cpu = timed_calls(lambda: evaluate(d3, [d3]), 1, spec["repeats"], spec["budget_s"])
        res.update(d3_median_s=float(np.median(d3_times)), d3_median_cpu_s=float(np.median(d3_cpu)))
    res.update(_memory(rss0, spec.get("device", "cpu")))
    return res


def worker(spec: Dict[str, Any]) -> Dict[str, Any]:
    """Run one (engine, task, box) measurement in this process and return its result."""
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

    cmd = [sys.executable, "-m", WORKER_MODULE, "--worker", json.dumps(spec)]
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(spec["threads"]))
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    ps = psutil.Process(proc.pid)
    status, reason, max_seen = "ok", "", 0.0
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


if __name__ == "__main__":  # the subprocess entry point of run_worker
    if len(sys.argv) >= 3 and sys.argv[1] == "--worker":
        sys.exit(_main_worker(sys.argv[2:]))
    print(f"usage: python -m {WORKER_MODULE} --worker SPEC_JSON (use `cgaa bench speed`)", file=sys.stderr)
    sys.exit(2)
