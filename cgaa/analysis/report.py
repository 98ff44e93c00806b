"""Writing an analysis: report.json, CSV tables and PNG plots (all written atomically).

Files written by :func:`write_report` into ``out_dir``:

- ``report.json``: every quantity as {"value", "unit"[, "uncertainty"]}; ``inputs.dt_source``
  says where the time between frames came from.
- ``report.md``: the same in words and tables (inputs with the time-step source, D,
  conductivities, structure, warnings).
- ``diffusion.csv``: one row per species (D in m²/s and 1e-10 m²/s, error, window,
  whether it is diffusive and, if not, why).
- ``msd.csv``: lag time (ps) and the MSD (nm²) of each species.
- ``conductivity.csv``: σ_NE, σ_EH (S/m and mS/cm), Haven ratio.
- ``rdf.csv``: r (nm), g(r) and n(r) of each pair.
- ``shell.csv``: mean first-shell count of each species per centre ion.
- ``msd.png``, ``rdf.png``, ``shell.png``.
"""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Dict, List, Optional, Union

import numpy as np

from cgaa.analysis.conductivity import siemens_per_m_to_mS_per_cm
from cgaa.core.fileio import write_bytes_atomic
from cgaa._version import __version__


def _num(x) -> Optional[float]:
    """JSON-safe float (NaN/inf → None)."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def quantity(value, unit: str, uncertainty=None, **extra) -> dict:
    """{"value": v, "unit": u[, "uncertainty": e]} with NaN written as null."""
    q = {"value": _num(value), "unit": unit}
    if uncertainty is not None:
        q["uncertainty"] = _num(uncertainty)
    q.update(extra)
    return q


def _reason(window) -> str:
    """Why a fit window is not diffusive (a generic text for windows made without a reason)."""
    return getattr(window, "reason", "") or "MSD not in the diffusive regime"


def not_diffusive_note(d) -> str:
    """One line for a DiffusionResult whose window is not diffusive ("" if it is)."""
    return "" if d.window.diffusive else f"NOT diffusive, not a measurement: {_reason(d.window)}"


def result_to_dict(res) -> dict:
    """The report.json content of an AnalysisResult."""

    out: dict = {"cgaa_version": __version__, "inputs": dict(res.inputs)}
    inp = out["inputs"]
    for key, unit in (("dt_ps", "ps"), ("temperature_K", "K"), ("viscosity_Pa_s", "Pa s"),
                      ("mean_volume_nm3", "nm^3"), ("box_length_nm", "nm"), ("min_fit_start_ps", "ps"),
                      ("min_run_ps", "ps")):
        if key in inp:
            inp[key] = quantity(inp[key], unit)
    inp["time_span_ps"] = quantity(max(inp["time_span_ps"]), "ps")
    sp_out = {}
    for s in res.species:
        d = res.diffusion.get(s.name)
        entry = {
            "kind": s.kind, "residue": s.resname, "charge": quantity(s.charge, "e"),
            "n_molecules": s.n_molecules, "atoms_per_molecule": int(len(s.molecules[0])),
            "msd_of": "atom" if (s.monatomic or inp.get("msd_of") == "atoms") else "centre of mass",
        }
        if d is not None:
            note = {} if d.window.diffusive else {"note": f"NOT a measurement: {_reason(d.window)}"}
            entry["D"] = quantity(d.D_m2_s, "m^2/s", d.D_err_m2_s, method=d.error_method, **note)
            entry["D_1e-10_m2_s"] = quantity(d.D_m2_s / 1e-10, "1e-10 m^2/s", d.D_err_m2_s / 1e-10, **note)
            entry["fit_window"] = {"start": d.window.start_ps, "end": d.window.end_ps, "unit": "ps",
                                   "automatic": d.window.auto, "diffusive": d.window.diffusive,
                                   "mean_loglog_slope": _num(d.window.mean_loglog_slope)}
            if not d.window.diffusive:
                entry["fit_window"]["reason"] = _reason(d.window)
            entry["D_blocks"] = {"values": [_num(v) for v in d.D_blocks_m2_s], "unit": "m^2/s"}
            if len(d.D_replicas_m2_s) > 1:
                entry["D_replicas"] = {"values": [_num(v) for v in d.D_replicas_m2_s], "unit": "m^2/s"}
        if s.name in res.yeh_hummer_m2_s and d is not None:
            corr = res.yeh_hummer_m2_s[s.name]
            entry["yeh_hummer_correction"] = quantity(corr, "m^2/s")
            entry["D_infinite"] = quantity(d.D_m2_s + corr, "m^2/s", d.D_err_m2_s,
                                           note="D_PBC + 2.837297 kB T/(6 pi eta L)")
        sp_out[s.name] = entry
    out["species"] = sp_out
    c: dict = {}
    if res.nernst_einstein is not None:
        v, e = res.nernst_einstein
        c["nernst_einstein"] = quantity(v, "S/m", e)
        c["nernst_einstein_mS_cm"] = quantity(siemens_per_m_to_mS_per_cm(v), "mS/cm", siemens_per_m_to_mS_per_cm(e))
    if res.einstein_helfand is not None:
        eh = res.einstein_helfand
        c["einstein_helfand"] = quantity(eh.sigma_S_m, "S/m", eh.sigma_err_S_m, method=eh.fit.error_method)
        c["einstein_helfand_mS_cm"] = quantity(siemens_per_m_to_mS_per_cm(eh.sigma_S_m), "mS/cm",
                                               siemens_per_m_to_mS_per_cm(eh.sigma_err_S_m))
        c["einstein_helfand_fit_window"] = {"start": eh.fit.window.start_ps, "end": eh.fit.window.end_ps,
                                            "unit": "ps", "diffusive": eh.fit.window.diffusive}
        if not eh.fit.window.diffusive:
            c["einstein_helfand_fit_window"]["reason"] = _reason(eh.fit.window)
    if res.haven is not None:
        c["haven_ratio"] = quantity(res.haven[0], "1", res.haven[1])
    if res.transference:
        c["transference_nernst_einstein"] = {name: quantity(t, "1", e) for name, (t, e) in res.transference.items()}
    out["conductivity"] = c
    if res.stability:
        out["stability"] = [chk.to_dict() for chk in res.stability]
    st: dict = {"center": res.center, "rdf": {}}
    for label, r in res.rdfs.items():
        st["rdf"][label] = {
            "n_center_atoms": r.n_a, "n_partner_atoms": r.n_b,
            "first_peak": quantity(r.first_peak_nm, "nm"), "peak_height": quantity(r.peak_height, "1"),
            "first_minimum": quantity(r.first_min_nm, "nm"),
            "coordination_number_first_shell": quantity(r.cn_first_shell, "atoms per center atom"),
            "partner_density": quantity(r.density_nm3, "nm^-3"),
        }
    if res.shell is not None:
        sh = res.shell
        st["shell"] = {
            "cutoffs": {k: quantity(v, "nm") for k, v in sh.cutoffs_nm.items()},
            "mean_molecules": {k: quantity(v, "molecules per center ion") for k, v in sh.mean_counts.items()},
            "mean_coordinating_atoms": quantity(sh.mean_coordination, "atoms per center ion"),
            "top_compositions": [{"composition": lab, "fraction": _num(f)} for lab, f in sh.compositions],
        }
    out["structure"] = st
    out["warnings"] = list(res.warnings)
    return out




def report_markdown(res) -> str:
    """The report.md text of an AnalysisResult: inputs (with the time step's source), D,
    conductivities, structure and warnings."""
    inp = res.inputs
    frames = "+".join(str(n) for n in inp["n_frames"])
    lines = ["# cgaa analyze report", "",
             f"- trajectories: {', '.join(inp['trajectories'])}",
             f"- topology: {inp.get('topology')}",
             f"- frames: {frames} × {inp['dt_ps']:g} ps (stride {inp.get('stride', 1)}), "
             f"span {max(inp['time_span_ps']):g} ps",
             f"- time between frames from: {inp.get('dt_source', '?')}"
             + (f" (checked: {', '.join(inp['dt_checks'])})" if inp.get("dt_checks") else ""),
             f"- temperature: {inp['temperature_K']:g} K ({inp.get('temperature_source')})",
             f"- atoms: {inp['n_atoms']}, mean box volume {inp['mean_volume_nm3']:.4g} nm^3", "",
             "## Self-diffusion", "",
             "| species | D (1e-10 m^2/s) | error | fit window (ps) | diffusive |", "|---|---|---|---|---|"]
    for name, d in res.diffusion.items():
        flag = "yes" if d.window.diffusive else f"NO: {_reason(d.window)}"
        lines.append(f"| {name} | {d.D_m2_s / 1e-10:.4g} | {d.D_err_m2_s / 1e-10:.2g} | "
                     f"{d.window.start_ps:g}-{d.window.end_ps:g} | {flag} |")
    if res.nernst_einstein is not None:
        lines += ["", "## Conductivity", "", f"- Nernst-Einstein: {res.nernst_einstein[0]:.4g} ± "
                  f"{res.nernst_einstein[1]:.2g} S/m"]
        if res.einstein_helfand is not None:
            eh = res.einstein_helfand
            lines.append(f"- Einstein-Helfand: {eh.sigma_S_m:.4g} ± {eh.sigma_err_S_m:.2g} S/m")
        if res.haven is not None:
            lines.append(f"- Haven ratio: {res.haven[0]:.3g} ± {res.haven[1]:.2g}")
        if res.transference:
            lines.append("- transference numbers (ideal, Nernst-Einstein): " + ", ".join(
                f"{name} {t:.3g} ± {e:.2g}" for name, (t, e) in res.transference.items()))
    if res.stability:
        lines += ["", "## Stability (every frame)", "",
                  "| trajectory | frames | molecules intact | largest bond stretch | inside the contact guard's wall | "
                  "closer than the model's data |", "|---|---|---|---|---|---|"]
        for k, chk in enumerate(res.stability):
            lines.append(f"| {k} | {chk.n_frames} | {'yes' if not chk.broken_frames else f'NO ({chk.broken_frames} frames)'} "
                         f"| {chk.max_bond_stretch:.2f}x | {', '.join(f'{p} ({chk.frames_below_wall[p]} frames)' for p in chk.below_wall) or 'none'} "
                         f"| {', '.join(f'{p} ({chk.frames_below_floor[p]} frames)' for p in chk.below_floor) or ('none' if chk.floor else 'no floor given')} |")
    if res.rdfs:
        lines += ["", "## Structure", "", "| pair | first peak (nm) | first minimum (nm) | CN |", "|---|---|---|---|"]
        for lab, r in res.rdfs.items():
            lines.append(f"| {lab} | {r.first_peak_nm:.3f} | {r.first_min_nm:.3f} | {r.cn_first_shell:.2f} |")
    if res.warnings:
        lines += ["", "## Warnings", ""] + [f"- {w}" for w in res.warnings]
    return "\n".join(lines) + "\n"


def _write_csv(path: Path, header: List[str], rows: List[list]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for r in rows:
        w.writerow(["" if (isinstance(v, float) and not math.isfinite(v)) else v for v in r])
    write_bytes_atomic(path, buf.getvalue().encode())


def write_csvs(res, out_dir: Union[str, Path]) -> List[Path]:
    """Write diffusion.csv, msd.csv, conductivity.csv, rdf.csv, shell.csv; return paths."""
    out = Path(out_dir)
    paths = []
    rows = []
    for s in res.species:
        d = res.diffusion.get(s.name)
        if d is None:
            continue
        yh = res.yeh_hummer_m2_s.get(s.name, float("nan"))
        rows.append([s.name, s.kind, s.charge, s.n_molecules, d.D_m2_s, d.D_err_m2_s, d.D_m2_s / 1e-10,
                     d.D_err_m2_s / 1e-10, d.window.start_ps, d.window.end_ps, d.window.diffusive,
                     d.error_method, yh, d.D_m2_s + yh, "" if d.window.diffusive else _reason(d.window)])
    p = out / "diffusion.csv"
    _write_csv(p, ["species", "kind", "charge_e", "n_molecules", "D_m2_s", "D_err_m2_s", "D_1e-10_m2_s",
                   "D_err_1e-10_m2_s", "fit_start_ps", "fit_end_ps", "diffusive", "error_method",
                   "yeh_hummer_m2_s", "D_infinite_m2_s", "not_diffusive_reason"], rows)
    paths.append(p)
    if res.diffusion:
        n = min(len(d.lag_ps) for d in res.diffusion.values())
        names = list(res.diffusion)
        lag = next(iter(res.diffusion.values())).lag_ps[:n]
        p = out / "msd.csv"
        _write_csv(p, ["lag_ps"] + [f"msd_{k}_nm2" for k in names],
                   [[lag[i]] + [res.diffusion[k].msd_nm2[i] for k in names] for i in range(n)])
        paths.append(p)
    rows = []
    if res.nernst_einstein is not None:
        v, e = res.nernst_einstein
        rows.append(["nernst_einstein", v, e, v * 10, e * 10])
    if res.einstein_helfand is not None:
        eh = res.einstein_helfand
        rows.append(["einstein_helfand", eh.sigma_S_m, eh.sigma_err_S_m, eh.sigma_S_m * 10, eh.sigma_err_S_m * 10])
    if res.haven is not None:
        rows.append(["haven_ratio (dimensionless)", res.haven[0], res.haven[1], "", ""])
    for name, (t, e) in res.transference.items():
        rows.append([f"transference_{name} (dimensionless, Nernst-Einstein)", t, e, "", ""])
    p = out / "conductivity.csv"
    _write_csv(p, ["quantity", "value_S_m", "err_S_m", "value_mS_cm", "err_mS_cm"], rows)
    paths.append(p)
    if res.rdfs:
        labels = list(res.rdfs)
        n = min(len(r.r_nm) for r in res.rdfs.values())
        r0 = res.rdfs[labels[0]]
        header = ["r_nm", "r_edge_nm"] + [c for lab in labels for c in (f"g_{lab}", f"cn_{lab}")]
        rows = [[r0.r_nm[i], r0.r_edges_nm[i]] + [v for lab in labels for v in (res.rdfs[lab].g[i], res.rdfs[lab].cn[i])]
                for i in range(n)]
        p = out / "rdf.csv"
        _write_csv(p, header, rows)
        paths.append(p)
    if res.shell is not None:
        p = out / "shell.csv"
        _write_csv(p, ["species", "mean_molecules_per_center_ion"], [[k, v] for k, v in res.shell.mean_counts.items()])
        paths.append(p)
    return paths


def _save_fig(fig, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    write_bytes_atomic(path, buf.getvalue())


def plot_msd(res, ax=None):
    """Log-log MSD of each species with its fit window shaded and the fit line; returns the figure."""
    import matplotlib
    import matplotlib.pyplot as plt

    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 4.5))
    colors = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, (name, d) in enumerate(res.diffusion.items()):
        col = colors[k % len(colors)]
        m = d.lag_ps > 0
        flag = "" if d.window.diffusive else " (NOT diffusive)"
        ax.loglog(d.lag_ps[m], d.msd_nm2[m], color=col, label=f"{name}: D = {d.D_m2_s / 1e-10:.3g} e-10 m²/s{flag}")
        w = (d.lag_ps >= d.window.start_ps) & (d.lag_ps <= d.window.end_ps) & m
        ax.loglog(d.lag_ps[w], d.slope_nm2_ps * d.lag_ps[w] + d.intercept_nm2, "--", color="k", lw=1)
        ax.axvspan(d.window.start_ps, d.window.end_ps, color=col, alpha=0.08)
    if res.diffusion:
        d0 = next(iter(res.diffusion.values()))
        t = d0.lag_ps[d0.lag_ps > 0]
        if len(t):
            ref = d0.msd_nm2[d0.lag_ps > 0][len(t) // 2] / t[len(t) // 2]
            ax.loglog(t, ref * t, ":", color="grey", lw=1, label="slope 1")
    ax.set_xlabel("lag time (ps)")
    ax.set_ylabel("MSD (nm²)")
    ax.set_title("MSD (shaded: fit windows, dashed: fits)")
    ax.legend(fontsize=8)
    return fig or ax.figure


def plot_rdf(res, axes=None):
    """g(r) (left axis) and running coordination number (right axis) of each pair."""
    import matplotlib.pyplot as plt

    fig = None
    if axes is None:
        fig, axes = plt.subplots(figsize=(6, 4.5))
    ax2 = axes.twinx()
    for k, (lab, r) in enumerate(res.rdfs.items()):
        line, = axes.plot(r.r_nm, r.g, label=f"{lab}")
        ax2.plot(r.r_edges_nm, r.cn, "--", color=line.get_color(), lw=1)
        if math.isfinite(r.first_min_nm):
            axes.axvline(r.first_min_nm, color=line.get_color(), ls=":", lw=0.8)
    axes.set_xlabel("r (nm)")
    axes.set_ylabel("g(r)")
    ax2.set_ylabel("coordination number n(r) (dashed)")
    ax2.set_ylim(0, max([min(float(np.max(r.cn)), 12.0) for r in res.rdfs.values()] + [1.0]))
    axes.legend(fontsize=8)
    axes.set_title(f"RDFs around {res.center}")
    return fig or axes.figure


def plot_shell(res, ax=None):
    """Bar chart of the mean first-shell composition around the centre ion."""
    import matplotlib.pyplot as plt

    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(5, 4))
    if res.shell is not None:
        names = list(res.shell.mean_counts)
        ax.bar(names, [res.shell.mean_counts[n] for n in names])
        ax.set_ylabel(f"molecules per {res.center} (first shell)")
        ax.set_title(f"{res.center} first shell: {res.shell.mean_coordination:.2f} coordinating atoms")
    return fig or ax.figure


def write_report(res, out_dir: Union[str, Path], plots: bool = True) -> Dict[str, Path]:
    """Write report.json, report.md, the CSVs and (if ``plots``) the PNGs into ``out_dir``.

    Returns {file name: path}.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files: Dict[str, Path] = {}
    for p in write_csvs(res, out):
        files[p.name] = p
    if plots:
        import matplotlib.pyplot as plt  # headless: matplotlib falls back to Agg by itself

        for name, fn, cond in (("msd.png", plot_msd, bool(res.diffusion)), ("rdf.png", plot_rdf, bool(res.rdfs)),
                               ("shell.png", plot_shell, res.shell is not None)):
            if not cond:
                continue
            fig = fn(res)
            _save_fig(fig, out / name)
            plt.close(fig)
            files[name] = out / name
    p = out / "report.md"
    write_bytes_atomic(p, report_markdown(res).encode())
    files["report.md"] = p
    rep = result_to_dict(res)
    rep["files"] = sorted(list(files) + ["report.json"])
    p = out / "report.json"
    write_bytes_atomic(p, (json.dumps(rep, indent=2) + "\n").encode())
    files["report.json"] = p
    return files

