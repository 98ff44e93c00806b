"""The report of ``cgaa bench speed``: ratios and cost-scaling exponents of the measurements
(:func:`finish_speed_report`), one line per result (:func:`describe_result`), Markdown tables
(:func:`speed_markdown`), the log-log plot (:func:`speed_plot`) and the files
(:func:`write_speed_outputs`: speed.json, speed.md, speed.png).

It reads the report dict that :func:`cgaa.bench.speed.run_speed` builds from the
measurements of :mod:`cgaa.bench.speed_workers`; it measures nothing itself.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np

from cgaa.bench.report import fmt, header_markdown, markdown_table, save_figure, write_outputs
from cgaa.bench.speed_workers import ENGINES, TASKS, PathLike


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
        if cgm and sv:  # a quantum-teacher evaluation vs a CGAA MD step (per fs) on the same box
            r["sevenn_eval_over_cgaa_md_time"] = _time_of(sv) / _time_of(cgm)
        for key, a, b in (("allatom_over_cgaa_cpu_time", aa, cg), ("sevenn_over_cgaa_cpu_time", sv, cg),
                          ("sevenn_eval_over_cgaa_md_cpu_time", sv, cgm),
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
                ("sevenn_eval_over_cgaa_md_time", "SevenNet-0 eval / CGAA MD time per fs"),
                ("cgaa_md_over_teacher_md_time", "CGAA MD / teacher MD time per fs"),
                ("allatom_md_over_cgaa_md_time", "all-atom MD / CGAA MD time per fs"),
                ("allatom_over_cgaa_cpu_time", "all-atom / CGAA CPU time"),
                ("sevenn_over_cgaa_cpu_time", "SevenNet-0 / CGAA CPU time"),
                ("sevenn_eval_over_cgaa_md_cpu_time", "SevenNet-0 eval / CGAA MD CPU time per fs"),
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
