"""Pool the replicas of several observables comparisons into one teacher-vs-CGAA report.

``cgaa bench observables`` runs replicas in batches (``--seed`` picks the batch); the
uncertainty that settles a target comes from all of them together. :func:`pool_observables`
reads the batches' ``observables.json`` (both engines, or one engine of a file with
``ENGINE=FILE``) and ``cgaa analyze`` reports over several replicas (``report.json``: per-replica
diffusivities only), checks that they share one protocol, refuses the same run counted twice,
and recomputes the replica means, standard errors, relative differences and target checks
exactly as a single ``cgaa bench observables`` run would (:func:`cgaa.bench.observables.summarise`,
:func:`cgaa.bench.observables.compare`). Units as in that report (D m²/s, density g/cm³, nm).
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union
from cgaa.bench.observables import ENGINES, compare, observables_plot, observables_tables, summarise
from cgaa.bench.report import header, header_markdown, write_outputs


PathLike = Union[str, Path]
#: Protocol settings that must agree between pooled sources (unless allowed to differ).
PROTOCOL_KEYS = ("ensemble", "temperature_K", "pressure_bar", "timestep_fs", "equilibration_ps", "production_ps",
                 "frame_interval_ps", "fit_window_ps", "teacher_cutoff_nm", "cgaa_fast_substeps", "model", "model_sha256",
                 "box")


def parse_source(text: str) -> Tuple[Optional[str], Path]:
    """``'FILE'`` → (None, FILE): every engine of it; ``'ENGINE=FILE'`` → (ENGINE, FILE)."""
    engine, sep, path = str(text).partition("=")
    if sep and engine in ENGINES:
        return engine, Path(path)
    if sep and "/" not in engine and not Path(text).exists():
        raise ValueError(f"{text}: the engine before '=' must be one of {', '.join(ENGINES)}")
    return None, Path(text)


def _read(path: Path) -> Dict[str, Any]:
    try:
        rep = json.loads(path.read_text())
    except OSError as err:
        raise ValueError(f"{path}: cannot be read ({err.strerror or err})") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not JSON ({err})") from None
    if not isinstance(rep, dict) or not ("engines" in rep or "species" in rep):
        raise ValueError(f"{path}: neither an observables.json of `cgaa bench observables` nor a "
                         "report.json of `cgaa analyze`")
    return rep


def _protocol(rep: Dict[str, Any], engine: Optional[str]) -> Dict[str, Any]:
    """The comparable settings of a source (only those it records)."""
    if "engines" in rep:
        p = dict(rep.get("protocol", {}))
        out = {k: p.get(k) for k in PROTOCOL_KEYS if k in p}
        out.setdefault("cgaa_fast_substeps", 1)
        if engine == "teacher":
            out.pop("cgaa_fast_substeps")  # the teacher's runs depend on neither it nor the model
        else:  # the model file's name, and its content where the report records it
            out["model"] = Path(str(rep.get("model", ""))).name
            if rep.get("model_sha256"):
                out["model_sha256"] = rep["model_sha256"]
        out["box"] = Path(str(rep.get("box", ""))).name
        if out.get("fit_window_ps") is not None:
            out["fit_window_ps"] = [float(x) for x in out["fit_window_ps"]]
        return out
    inp = rep.get("inputs", {})  # cgaa analyze
    out = {}
    if inp.get("fit_window_ps") is not None:
        out["fit_window_ps"] = [float(x) for x in inp["fit_window_ps"]]
    for key, name in (("dt_ps", "frame_interval_ps"), ("time_span_ps", "production_ps"), ("temperature_K", "temperature_K")):
        v = inp.get(key)
        v = v.get("value") if isinstance(v, dict) else v
        if v is not None:
            out[name] = float(v)
    return out


def _replicas(rep: Dict[str, Any], engine: str, path: Path) -> List[Dict[str, Any]]:
    """The replicas of ``engine`` in a source, as observables replica dicts (failed ones too,
    with ``status`` "failed": they are listed, not averaged)."""
    if "engines" in rep:
        if engine not in rep["engines"]:
            raise ValueError(f"{path}: has no {engine} runs (engines: {', '.join(rep['engines'])})")
        return [dict(r) for r in rep["engines"][engine]["replicas"]]
    per = {s: v["D_replicas"]["values"] for s, v in rep["species"].items() if v.get("D_replicas")}
    counts = {len(v) for v in per.values()}
    if len(counts) != 1:
        raise ValueError(f"{path}: species have different numbers of per-replica diffusivities {sorted(counts)}")
    n = counts.pop()
    return [{"D_m2_s": {s: per[s][k] for s in per}, "run_dir": f"replica{k}"} for k in range(n)]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def _fingerprint(r: Dict[str, Any]) -> Tuple:
    """What identifies a replica's data: its diffusivities and density (a copied run repeats them)."""
    return tuple(sorted((k, round(float(v), 18)) for k, v in r.get("D_m2_s", {}).items() if v is not None)) + (
        round(float(r.get("density_g_cm3") or 0.0), 9),)


def pool_observables(sources: Sequence[Union[str, PathLike, Tuple[Optional[str], PathLike]]], *,
                     allow_mixed: Sequence[str] = (), command: Optional[str] = None) -> Dict[str, Any]:
    """One observables report from the replicas of several.

    sources: ``observables.json`` paths (every engine of each), ``(engine, path)`` pairs or
        ``'ENGINE=PATH'`` strings (that engine's replicas only; the way to add a ``cgaa analyze``
        ``report.json``, whose per-replica diffusivities are all it contributes).
    allow_mixed: protocol settings (names in :data:`PROTOCOL_KEYS`) that may differ between the
        sources, e.g. ``cgaa_fast_substeps`` to pool CGAA runs at two outer steps; the report
        lists each such setting's values. Any other difference raises ValueError naming both
        files and the setting.
    Raises ValueError for a file that is neither kind of report, an engine a file lacks, or one
    replica's data found twice (a run directory copied between batches).
    Returns the report (``mode`` "observables-pool", ``sources``, ``protocol``, ``engines``,
    ``comparison``), to be written with :func:`write_pool_outputs`.
    """

    bad = [k for k in allow_mixed if k not in PROTOCOL_KEYS]
    if bad:
        raise ValueError(f"allow_mixed: unknown setting(s) {', '.join(bad)} (known: {', '.join(PROTOCOL_KEYS)})")
    if not sources:
        raise ValueError("no sources to pool")
    pooled: Dict[str, List[Dict[str, Any]]] = {e: [] for e in ENGINES}
    checked: List[Tuple[Dict[str, Any], str]] = []
    seen: Dict[Tuple, str] = {}
    used = []
    for item in sources:
        engine, path = parse_source(item) if isinstance(item, (str, Path)) else (item[0], Path(item[1]))
        rep = _read(path)
        if "engines" not in rep and engine is None:
            raise ValueError(f"{path}: a `cgaa analyze` report holds one engine's replicas: name it, "
                             f"teacher={path} or cgaa={path}")
        engines = [engine] if engine else [e for e in ENGINES if e in rep["engines"]]
        label = path.parent.name if path.name in ("observables.json", "report.json") else path.stem
        for e in engines:
            reps = _replicas(rep, e, path)
            prot = _protocol(rep, e)
            for other, where in checked:
                for key, value in prot.items():
                    if key not in other or _same(value, other[key]) or key in allow_mixed:
                        continue
                    if key == "model" and "model_sha256" in prot and "model_sha256" in other:
                        continue  # renamed file, same content: the checksums decide
                    raise ValueError(f"{path} ({e}): {key} = {value} but {where} has {other[key]}; pool only runs "
                                     f"of one protocol, or allow the difference (allow_mixed / --allow-mixed {key})")
            checked.append((prot, f"{path} ({e})"))
            for r in reps:
                r["source"] = str(path)
                r["label"] = f"{label}/{Path(str(r.get('run_dir', '?'))).name}"
                if r.get("status", "ok") != "ok":
                    pooled[e].append(r)
                    continue
                fp = _fingerprint(r)
                name = f"{label}/{e}/{Path(str(r.get('run_dir', '?'))).name}"
                if fp in seen:
                    raise ValueError(f"{path}: {e} replica {Path(str(r.get('run_dir', '?'))).name} has the data of "
                                     f"{seen[fp]} (the same run counted twice, e.g. a run directory copied between "
                                     "batches): pool it once, with ENGINE=FILE for the other engine")
                seen[fp] = name
                pooled[e].append(r)
            used.append({"path": str(path), "engine": e, "replicas": sum(r.get("status", "ok") == "ok" for r in reps),
                         "failed_replicas": sum(r.get("status", "ok") != "ok" for r in reps),
                         "kind": "observables" if "engines" in rep else "analysis"})
    protocol: Dict[str, Any] = {}
    mixed: Dict[str, List[Any]] = {}
    for key in dict.fromkeys(k for prot, _ in checked for k in prot):  # every setting, in first-seen order
        distinct: List[Any] = []
        for v in (prot[key] for prot, _ in checked if key in prot):
            if not any(_same(v, d) for d in distinct):
                distinct.append(v)
        protocol[key] = distinct[0] if len(distinct) == 1 else None
        if len(distinct) > 1:
            mixed[key] = distinct
    protocol["mixed"] = mixed
    good = {e: [r for r in v if r.get("status", "ok") == "ok"] for e, v in pooled.items()}
    protocol["replicas"] = {e: len(v) for e, v in good.items()}
    rep_out = header("observables-pool", command)
    rep_out.update({"sources": used, "protocol": protocol, "engines": {}})
    for e, reps in pooled.items():
        if reps:
            rep_out["engines"][e] = {"replicas": reps, "summary": summarise(good[e]) if good[e] else None,
                                     "failed_replicas": len(reps) - len(good[e])}
    if all(rep_out["engines"].get(e, {}).get("summary") for e in ("teacher", "cgaa")):
        rep_out["comparison"] = compare(rep_out["engines"]["teacher"]["summary"],
                                        rep_out["engines"]["cgaa"]["summary"], protocol.get("ensemble") or "nvt")
    return rep_out


def pool_markdown(rep: Dict[str, Any]) -> str:
    """Markdown of a pooled report: its sources and settings, then the observables tables."""

    p = rep["protocol"]
    n = p["replicas"]
    lines = ["## Observables: teacher MD vs CGAA MD, pooled replicas", "", header_markdown(rep), "",
             "Replicas: " + ", ".join(f"{e} {k}" for e, k in n.items()) + ". Values: replica mean ± standard error "
             "over every pooled replica. Sources:", ""]
    lines += [f"* `{s['path']}`: {s['engine']}, {s['replicas']} replicas"
              + (f" ({s['failed_replicas']} failed, not averaged)" if s.get("failed_replicas") else "")
              + (" (`cgaa analyze` report)" if s.get("kind") == "analysis" else "") for s in rep["sources"]]
    shown = {k: v for k, v in p.items() if k not in ("mixed", "replicas") and v is not None}
    lines += ["", "Common settings: " + ", ".join(f"{k} {v}" for k, v in shown.items()) + "."]
    if p.get("mixed"):
        lines += ["", "**Settings that differ between sources** (allowed): "
                  + "; ".join(f"{k}: {', '.join(str(v) for v in vals)}" for k, vals in p["mixed"].items()) + "."]
    if any(s.get("kind") == "analysis" for s in rep["sources"]):
        lines += ["", "Replicas from `cgaa analyze` reports carry diffusivities only: the RDF, coordination, "
                      "density, temperature and speed rows are over the observables reports' replicas."]
    if p.get("ensemble") is None:
        lines += ["", "The ensemble is not recorded in every source: the density is compared only when all "
                      "sources are NPT observables reports."]
    return "\n".join(lines) + "\n\n" + observables_tables(rep)


def write_pool_outputs(rep: Dict[str, Any], out_dir: PathLike) -> Dict[str, Path]:
    """pool.json, pool.md and pool.png in ``out_dir`` (written atomically)."""

    return write_outputs(rep, out_dir, "pool", pool_markdown, observables_plot)
