"""`cgaa bench pool`: replicas of several observables reports in one comparison."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

SPECIES = ("Li", "PF6", "EC", "EMC")


def _replica(run_dir: str, d_li: float, density: float, cn: float) -> dict:
    return {"D_m2_s": {"Li": d_li, "PF6": 1.0e-10, "EC": 1.6e-10, "EMC": 2.1e-10}, "D_err_m2_s": {},
            "diffusive": {s: False for s in SPECIES},
            "rdf": {"first_peak_nm": 0.21, "cn_first_shell": cn, "peak_height": 10.0, "r_nm": [0.1, 0.2, 0.3],
                    "g": [0.0, 9.0, 1.0]},
            "density_g_cm3": density, "density_blocks_g_cm3": [density] * 3, "temperature_K": 298.0,
            "ns_per_day": 2.0, "run_dir": run_dir, "seed": 0, "status": "ok"}


def _report(tmp_path: Path, name: str, teacher_li, cgaa_li, substeps: int = 1, model: str = "m.pt",
            density=(1.17, 1.18)) -> Path:
    """An observables.json as `cgaa bench observables` writes it, two replicas per engine."""
    out = tmp_path / name
    engines = {}
    for e, lis in (("teacher", teacher_li), ("cgaa", cgaa_li)):
        engines[e] = {"replicas": [_replica(f"{out}/{e}/rep{k}", d, density[k], 3.5 + 0.1 * k + (e == "cgaa"))
                                   for k, d in enumerate(lis)], "summary": None, "failed_replicas": 0}
    rep = {"mode": "observables", "date": "2026-11-30", "command": "x", "machine": {}, "versions": {},
           "model": f"/somewhere/{model}", "box": f"{out}/box-lipf6-ec-emc-1m-1000.pdb",
           "protocol": {"ensemble": "npt", "temperature_K": 298.15, "pressure_bar": 1.0, "timestep_fs": 1.0,
                        "equilibration_ps": 10.0, "production_ps": 60.0, "frame_interval_ps": 0.1, "replicas": 2,
                        "teacher_cutoff_nm": 1.0, "fit_window_ps": [5.0, 30.0], "cgaa_fast_substeps": substeps},
           "engines": engines}
    out.mkdir(parents=True, exist_ok=True)
    (out / "observables.json").write_text(json.dumps(rep))
    return out / "observables.json"


def _analysis_report(tmp_path: Path) -> Path:
    """A report.json as `cgaa analyze` writes it over two replicas (diffusivities only)."""
    analysis = tmp_path / "teacher-ext" / "report.json"
    analysis.parent.mkdir()
    analysis.write_text(json.dumps({
        "inputs": {"fit_window_ps": [5.0, 30.0], "dt_ps": {"value": 0.1, "unit": "ps"}},
        "species": {s: {"D_replicas": {"values": [1.4e-10, 1.0e-10], "unit": "m^2/s"}} for s in SPECIES}}))
    return analysis


def test_pool_is_one_comparison_over_every_replica(tmp_path):
    from cgaa.bench.observables import summarise
    from cgaa.bench.pool import pool_observables

    a = _report(tmp_path, "s0", [1.0e-10, 0.8e-10], [0.7e-10, 0.9e-10])
    b = _report(tmp_path, "s2", [1.2e-10, 0.6e-10], [1.1e-10, 0.5e-10], density=(1.16, 1.19))
    rep = pool_observables([a, b])
    assert rep["protocol"]["replicas"] == {"teacher": 4, "cgaa": 4} and rep["protocol"]["mixed"] == {}
    t = np.array([1.0, 0.8, 1.2, 0.6])
    c = np.array([0.7, 0.9, 1.1, 0.5])
    li = rep["comparison"]["D"]["Li"]
    # known answer: ratio of the four-replica means, error propagated from their standard errors
    se = lambda x: x.std(ddof=1) / math.sqrt(len(x))  # noqa: E731
    assert li["relative"] == pytest.approx(c.mean() / t.mean() - 1, rel=1e-12)
    assert li["relative_se"] == pytest.approx(math.hypot(se(c) / t.mean(), c.mean() * se(t) / t.mean() ** 2))
    everything = [r for f in (a, b) for r in json.loads(f.read_text())["engines"]["cgaa"]["replicas"]]
    mine = rep["engines"]["cgaa"]["summary"]
    assert mine["density_g_cm3"] == pytest.approx(summarise(everything)["density_g_cm3"])
    assert mine["rdf_cn_first_shell"] == pytest.approx(summarise(everything)["rdf_cn_first_shell"])
    assert [r["label"] for r in rep["engines"]["teacher"]["replicas"]] == ["s0/rep0", "s0/rep1", "s2/rep0", "s2/rep1"]
    # the order of the sources does not matter
    again = pool_observables([b, a])
    assert again["comparison"]["D"]["Li"]["relative"] == pytest.approx(li["relative"], rel=1e-12)


def test_pool_refuses_a_run_twice_and_a_different_protocol(tmp_path):
    from cgaa.bench.pool import pool_observables

    a = _report(tmp_path, "s0", [1.0e-10, 0.8e-10], [0.7e-10, 0.9e-10])
    copied = _report(tmp_path, "mts2", [1.0e-10, 0.8e-10], [1.1e-10, 0.5e-10], substeps=2)  # teacher runs copied
    with pytest.raises(ValueError, match=r"mts2.*teacher replica rep0 has the data of s0/teacher/rep0"):
        pool_observables([a, copied], allow_mixed=["cgaa_fast_substeps"])
    with pytest.raises(ValueError, match=r"mts2/observables.json \(cgaa\): cgaa_fast_substeps = 2 but .*s0.* has 1"):
        pool_observables([a, f"cgaa={copied}"])
    rep = pool_observables([a, f"cgaa={copied}"], allow_mixed=["cgaa_fast_substeps"])
    assert rep["protocol"]["mixed"] == {"cgaa_fast_substeps": [1, 2]} and rep["protocol"]["cgaa_fast_substeps"] is None
    assert rep["protocol"]["replicas"] == {"teacher": 2, "cgaa": 4}
    # the teacher's runs do not depend on the CGAA step: no allowance needed for them
    b = _report(tmp_path, "t2", [1.3e-10, 0.7e-10], [1.0e-10, 1.0e-10], substeps=2)
    assert pool_observables([a, f"teacher={b}"])["protocol"]["replicas"] == {"teacher": 4, "cgaa": 2}
    other = _report(tmp_path, "other-model", [1.4e-10, 0.95e-10], [1.25e-10, 0.65e-10], model="other.pt")
    with pytest.raises(ValueError, match="model = other.pt but"):
        pool_observables([a, other])
    # the same content under another name: the checksums decide, where both reports record them
    for f in (a, other):
        rep = json.loads(f.read_text())
        rep["model_sha256"] = "ab" * 32
        f.write_text(json.dumps(rep))
    assert pool_observables([a, other])["protocol"]["mixed"] == {"model": ["m.pt", "other.pt"]}
    with pytest.raises(ValueError, match="unknown setting"):
        pool_observables([a], allow_mixed=["colour"])


def test_pool_takes_one_engine_of_an_analysis_report(tmp_path):
    from cgaa.bench.pool import pool_observables

    a = _report(tmp_path, "s0", [1.0e-10, 0.8e-10], [0.7e-10, 0.9e-10])
    analysis = _analysis_report(tmp_path)
    with pytest.raises(ValueError, match="name it, teacher="):
        pool_observables([a, analysis])
    rep = pool_observables([a, f"teacher={analysis}"])
    t = rep["engines"]["teacher"]["summary"]
    assert t["D_m2_s"]["Li"] == pytest.approx(np.mean([1.0e-10, 0.8e-10, 1.4e-10, 1.0e-10]))
    assert t["density_g_cm3"] == pytest.approx(1.175)  # the analysis replicas carry no density
    from cgaa.bench.pool import pool_markdown

    assert "(`cgaa analyze` report)" in pool_markdown(rep) and "carry diffusivities only" in pool_markdown(rep)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"fit_window_ps": [2.0, 10.0]}))
    with pytest.raises(ValueError, match="bad.json: neither an observables.json"):
        pool_observables([a, f"teacher={bad}"])
    analysis.write_text(analysis.read_text().replace("[5.0, 30.0]", "[2.0, 10.0]"))
    with pytest.raises(ValueError, match="fit_window_ps"):
        pool_observables([a, f"teacher={analysis}"])


def test_pool_plot_names_both_engines_when_a_source_has_no_rdf(tmp_path, monkeypatch):
    """A `cgaa analyze` report listed first brings replicas without an RDF: the RDF panel's
    legend must still name each engine once."""
    import cgaa.bench.observables
    from cgaa.bench.observables import observables_plot
    from cgaa.bench.pool import pool_observables

    analysis = _analysis_report(tmp_path)
    rep = pool_observables([f"teacher={analysis}", _report(tmp_path, "s0", [1.0e-10, 0.8e-10], [0.7e-10, 0.9e-10])])
    figs = []
    monkeypatch.setattr(cgaa.bench.observables, "save_figure", lambda fig, path: figs.append(fig) or Path(path))
    observables_plot(rep, tmp_path / "p.png")
    rdf_axes = figs[0].axes[0]
    assert rdf_axes.get_legend_handles_labels()[1] == ["teacher", "cgaa"]
    assert len(rdf_axes.lines) == 4  # the two analysis replicas have no RDF to draw


def test_pool_cli_writes_report_table_and_plot(tmp_path, capsys):
    from cgaa.cli import main

    a = _report(tmp_path, "s0", [1.0e-10, 0.8e-10], [0.7e-10, 0.9e-10])
    b = _report(tmp_path, "s2", [1.2e-10, 0.6e-10], [1.1e-10, 0.5e-10])
    assert main(["bench", "pool", str(a), str(b), "--out", str(tmp_path / "pooled")]) == 0
    printed = capsys.readouterr().out  # (0.8 / 0.9 - 1; errors from the four-replica standard errors)
    assert "D[Li] CGAA vs teacher -11 ± 19 % (4 teacher, 4 CGAA replicas)" in printed
    rep = json.loads((tmp_path / "pooled" / "pool.json").read_text())
    assert rep["mode"] == "observables-pool" and [s["replicas"] for s in rep["sources"]] == [2, 2, 2, 2]
    assert {s["kind"] for s in rep["sources"]} == {"observables"}
    text = (tmp_path / "pooled" / "pool.md").read_text()
    assert "teacher s2/rep1" in text and "Replicas: teacher 4, cgaa 4" in text
    assert (tmp_path / "pooled" / "pool.png").stat().st_size > 0
    assert main(["bench", "pool", str(a), "--allow-mixed", "colour", "--out", str(tmp_path / "x")]) == 2
    assert main(["bench", "pool", str(tmp_path / "missing.json"), "--out", str(tmp_path / "x")]) == 2
    assert "missing.json: cannot be read" in capsys.readouterr().err


def test_pool_help_names_every_setting_allow_mixed_takes(capsys):
    """The help lists the settings by hand (the parser does not import cgaa.bench.pool); it must
    name exactly the ones --allow-mixed accepts."""
    from cgaa.bench.pool import PROTOCOL_KEYS
    from cgaa.cli import main

    with pytest.raises(SystemExit):
        main(["bench", "pool", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    listed = text.split("(listed in the report):", 1)[1].split("(default", 1)[0]
    assert [k.strip() for k in listed.split(",")] == list(PROTOCOL_KEYS)


def test_pool_lists_failed_replicas_without_averaging_them(tmp_path):
    from cgaa.bench.pool import pool_markdown, pool_observables

    a = _report(tmp_path, "s0", [1.0e-10, 0.8e-10], [0.7e-10, 0.9e-10])
    b = _report(tmp_path, "s2", [1.2e-10, 0.6e-10], [1.1e-10, 0.5e-10])
    rep = json.loads(b.read_text())
    rep["engines"]["cgaa"]["replicas"][1] = {"run_dir": "s2/cgaa/rep1", "seed": 3, "status": "failed",
                                             "error": "atom 7: force 1e4 eV/A"}
    renamed = tmp_path / "batch-s2.json"   # not called observables.json: its stem labels its replicas
    renamed.write_text(json.dumps(rep))
    pooled = pool_observables([a, renamed])
    assert pooled["protocol"]["replicas"] == {"teacher": 4, "cgaa": 3}
    assert pooled["engines"]["cgaa"]["failed_replicas"] == 1
    assert pooled["engines"]["cgaa"]["summary"]["D_m2_s"]["Li"] == pytest.approx(np.mean([0.7e-10, 0.9e-10, 1.1e-10]))
    text = pool_markdown(pooled)
    assert "(1 failed, not averaged)" in text and "atom 7: force 1e4 eV/A" in text and "batch-s2/rep0" in text
