"""Tiny versions of every `cgaa bench` mode: report structure and finite numbers only
(never wall-clock limits: the real measurements live in docs/benchmarks.md)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from cgaa.bench.speed import fit_exponent, ns_per_day


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def test_fit_exponent_and_units():
    n = np.array([1000, 3000, 10000])
    k, err = fit_exponent(n, 2e-4 * n ** 1.05)
    assert abs(k - 1.05) < 1e-9 and abs(err) < 1e-6
    assert math.isnan(fit_exponent([1000], [1.0])[0])
    # 22 ms per 1 fs step = 3.93 ns/day
    assert abs(ns_per_day(22.0) - 86400 / 0.022 * 1e-6) < 1e-12
    assert abs(ns_per_day(86.4, timestep_fs=2.0) - 2.0) < 1e-12


def test_cli_help_documents_modes(capsys):
    from cgaa.cli import main

    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    text = capsys.readouterr().out
    for mode in ("speed", "accuracy", "observables", "pool"):
        assert mode in text
    assert main(["bench", "speed", "--sizes", "x", "--out", "unused"]) == 2


@pytest.fixture(scope="module")
def speed_report(tmp_path_factory):
    from cgaa.bench.speed import run_speed

    out = tmp_path_factory.mktemp("speed")
    rep = run_speed([400], out, engines=("cgaa", "allatom", "teacher", "sevenn"), tasks=("eval", "md"), model="untrained",
                    cutoff=5.0, allatom_cutoff=4.0, teacher_cutoff_nm=0.7, threads=1, warmup=1, repeats=2,
                    md_steps=2, budget_s=0.1, timeout_s=300, command="pytest", progress=False)
    return rep, out


def test_speed_tiny(speed_report):
    rep, out = speed_report
    for key in ("date", "command", "machine", "versions", "results", "ratios", "scaling", "boxes"):
        assert key in rep
    assert rep["machine"]["cores"] >= 1 and rep["machine"]["cpu"]
    on_disk = json.loads((out / "speed.json").read_text())
    assert on_disk["command"] == "pytest"
    assert (out / "speed.md").read_text().startswith("## Speed and memory")
    assert "What one evaluation launches" in (out / "speed.md").read_text()
    assert (out / "speed.png").stat().st_size > 0
    by = {(e["engine"], e["task"]): e for e in rep["results"]}
    for key in (("cgaa", "eval"), ("allatom", "eval"), ("cgaa", "md"), ("allatom", "md"),
                ("teacher", "eval"), ("teacher", "md")):
        e = by[key]
        assert e["status"] == "ok", e
        assert e["n_atoms"] > 300
        for k in ("peak_rss_MiB", "baseline_rss_MiB", "delta_rss_MiB"):
            assert _finite(e[k])
        assert e["peak_rss_MiB"] >= e["baseline_rss_MiB"] > 0
        if key[1] == "eval":
            assert _finite(e["median_s"]) and e["median_s"] > 0 and _finite(e["median_cpu_s"])
            assert e["energy_finite"] and e["forces_finite"]
            if key[0] != "teacher":
                assert e["profile"]["aten_ops_per_call"] > 0 and "cuda_kernels_per_call" not in e["profile"]
                assert _finite(e["tensor_peak_MiB"]) and e["tensor_peak_MiB"] > 0
        else:
            assert _finite(e["median_ms_per_step"]) and _finite(e["ns_per_day"]) and e["ns_per_day"] > 0
            assert _finite(e["median_cpu_ms_per_step"])
            assert e["energy_finite"]
    # the all-atom graph has one node per atom and more edges than the grain graph
    assert by[("allatom", "eval")]["n_grains"] == by[("allatom", "eval")]["n_atoms"]
    assert by[("cgaa", "eval")]["n_grains"] < by[("cgaa", "eval")]["n_atoms"]
    sev = by[("sevenn", "eval")]
    assert sev["status"] in ("ok", "skipped", "failed") and (sev["status"] == "ok" or sev["reason"])
    r = rep["ratios"][0]
    if sev["status"] == "ok":  # the teacher as labelled: SevenNet-0 + D3(BJ), D3 also timed alone
        assert "D3" in sev["calculator"] and 0 < sev["d3_median_cpu_s"] < sev["median_cpu_s"]
        assert sev["energy_finite"] and sev["forces_finite"]
        assert _finite(r["sevenn_eval_over_cgaa_md_time"]) and _finite(r["sevenn_over_cgaa_cpu_time"])
    for k in ("allatom_over_cgaa_time", "allatom_over_cgaa_peak_rss", "allatom_over_cgaa_tensor_peak",
              "cgaa_md_over_teacher_md_time",
              "allatom_over_cgaa_cpu_time", "cgaa_md_over_teacher_md_cpu_time"):
        assert _finite(r[k]) and r[k] > 0


def test_speed_report_on_gpu_gives_cuda_memory_and_its_ratio(tmp_path):
    """A GPU run's report tabulates CUDA max allocated memory, gives the all-atom / CGAA
    ratio of it, and plots wall time and CUDA memory (no GPU needed: synthetic entries)."""
    from cgaa.bench.report import header
    from cgaa.bench.speed import finish_speed_report, speed_markdown, write_speed_outputs

    rep = header("speed", "pytest")
    rep.update(recipe="r", threads=1, device="cuda", model={"source": "m"}, cgaa_cutoff_A=8.0,
               allatom_cutoff_A=5.0, boxes=[{"target_atoms": n, "n_atoms": n} for n in (1000, 3000)], results=[])
    for n, (t_cg, t_aa, m_cg, m_aa) in {1000: (0.02, 0.03, 90.0, 270.0), 3000: (0.03, 0.09, 150.0, 750.0)}.items():
        for eng, t, m in (("cgaa", t_cg, m_cg), ("allatom", t_aa, m_aa)):
            rep["results"].append({"engine": eng, "task": "eval", "target_atoms": n, "n_atoms": n, "status": "ok",
                                   "median_s": t, "median_cpu_s": t, "peak_rss_MiB": 1800.0,
                                   "delta_rss_MiB": 900.0, "cuda_max_allocated_MiB": m,
                                   "profile": {"aten_ops_per_call": 2000.0, "cuda_kernels_per_call": 1350.0,
                                               "cuda_busy_ms_per_call": 2.5, "cuda_syncs_per_call": 34.0}})
    finish_speed_report(rep)
    assert [r["allatom_over_cgaa_cuda_max_allocated"] for r in rep["ratios"]] == pytest.approx([3.0, 5.0])
    assert [r["allatom_over_cgaa_time"] for r in rep["ratios"]] == pytest.approx([1.5, 3.0])
    md = speed_markdown(rep)
    assert "CUDA max allocated MiB" in md and "all-atom / CGAA CUDA max allocated" in md
    assert "| engine | atoms | ATen ops | CUDA kernels | GPU busy ms | host syncs |" in md
    files = write_speed_outputs(rep, tmp_path)
    assert files["png"].stat().st_size > 0
    rep["device"] = "cpu"
    for e in rep["results"]:
        del e["cuda_max_allocated_MiB"]
        e["profile"] = {"aten_ops_per_call": 2000.0}
        e["tensor_peak_MiB"] = 60.0 if e["engine"] == "cgaa" else 2400.0
    md = speed_markdown(finish_speed_report(rep))
    assert "CUDA" not in md and "tensor peak MiB (one eval)" in md
    assert [r["allatom_over_cgaa_tensor_peak"] for r in rep["ratios"]] == pytest.approx([40.0, 40.0])


def test_tensor_peak_counts_live_tensors_only():
    """Known answer: 4 MB alive while 8 MB more are allocated, then both freed: a 12 MB peak,
    whatever the process allocated or freed before (a 40 MB tensor freed just before profiling)."""
    import torch

    from cgaa.bench.speed import launch_profile

    big = torch.ones(10_000_000)
    del big

    def work():
        a = torch.ones(1_000_000)            # 4 MB (float32)
        b = torch.ones(2_000_000)            # 8 MB more while a lives
        return float(a.sum() + b.sum())

    nums, _ = launch_profile(work, 1)
    assert nums["tensor_peak_MiB"] == pytest.approx(12e6 / 2 ** 20, abs=0.05)
    nums, _ = launch_profile(work, 3)       # three calls, one at a time: the same peak
    assert nums["tensor_peak_MiB"] == pytest.approx(12e6 / 2 ** 20, abs=0.05)


def test_speed_compares_rrespa_md_per_fs(tmp_path):
    """fast_substeps 3: the CGAA MD step covers 3 fs (r-RESPA), ns/day counts them, and the
    ratios compare time per fs (synthetic entries for the ratio, a tiny real run for the rest)."""
    from cgaa.bench.report import header
    from cgaa.bench.speed import finish_speed_report, ns_per_day, run_speed, speed_markdown

    rep = header("speed", "pytest")
    rep.update(recipe="r", threads=1, device="cpu", model={"source": "m"}, cgaa_cutoff_A=8.0, allatom_cutoff_A=5.0,
               boxes=[{"target_atoms": 1000, "n_atoms": 1000}], results=[])
    for eng, ms, dt in (("cgaa", 30.0, 3.0), ("teacher", 5.0, 1.0), ("allatom", 400.0, 1.0)):
        rep["results"].append({"engine": eng, "task": "md", "target_atoms": 1000, "n_atoms": 1000, "status": "ok",
                               "median_ms_per_step": ms, "median_cpu_ms_per_step": ms, "timestep_fs": dt,
                               "fast_substeps": int(dt), "ns_per_day": ns_per_day(ms, dt), "ns_per_day_cpu": 1.0,
                               "peak_rss_MiB": 1.0, "delta_rss_MiB": 1.0})
    r = finish_speed_report(rep)["ratios"][0]
    assert r["cgaa_md_over_teacher_md_time"] == pytest.approx(2.0)  # 10 ms per fs against 5
    assert r["allatom_md_over_cgaa_md_time"] == pytest.approx(40.0)
    assert "r-RESPA: network every 3 fs" in speed_markdown(rep)

    real = run_speed([400], tmp_path, engines=("cgaa",), tasks=("md",), model="untrained", cutoff=5.0, threads=1,
                     warmup=1, md_steps=2, budget_s=0.1, fast_substeps=3, progress=False)
    e = real["results"][0]
    assert e["status"] == "ok", e
    assert e["timestep_fs"] == 3.0 and e["fast_substeps"] == 3 and e["energy_finite"]
    assert e["ns_per_day"] == pytest.approx(ns_per_day(e["median_ms_per_step"], 3.0))
    assert real["settings"]["cgaa_fast_substeps"] == 3
    with pytest.raises(ValueError, match="fast_substeps"):
        run_speed([400], tmp_path, engines=("cgaa",), fast_substeps=0, progress=False)


def test_speed_skips_too_small_box(tmp_path):
    from cgaa.bench.speed import run_speed

    rep = run_speed([400], tmp_path, engines=("cgaa",), tasks=("eval",), cutoff=9.0, threads=1, model="untrained",
                    command="pytest", progress=False)
    (e,) = rep["results"]
    assert e["status"] == "skipped" and "cutoff 9.0" in e["reason"]
    with pytest.raises(ValueError, match="unknown engine"):
        run_speed([400], tmp_path, engines=("nequip",), progress=False)


def test_speed_untrained_model_with_set_hyper_parameters(tmp_path):
    from cgaa.bench.speed import run_speed
    from cgaa.cli import main

    rep = run_speed([400], tmp_path, engines=("cgaa",), tasks=("eval",), model="untrained", cutoff=5.0,
                    hyper={"intra_lmax": 0, "intra_cutoff": 2.0}, threads=1, warmup=1, repeats=3, budget_s=0.1,
                    command="pytest", progress=False)
    assert rep["model"]["hyper"]["intra_lmax"] == 0 and rep["model"]["hyper"]["intra_cutoff"] == 2.0
    assert "intra_lmax=0" in rep["model"]["source"]
    (e,) = rep["results"]
    assert e["status"] == "ok" and math.isfinite(e["median_cpu_s"]) and e["median_cpu_s"] > 0, e
    with pytest.raises(ValueError, match="unknown model hyper-parameter.*intra_lmx"):
        run_speed([400], tmp_path, engines=("cgaa",), model="untrained", hyper={"intra_lmx": 0}, progress=False)
    with pytest.raises(ValueError, match="only be set for an untrained model"):
        run_speed([400], tmp_path, engines=("cgaa",), model="x.pt", hyper={"intra_lmax": 0}, progress=False)
    assert main(["bench", "speed", "--set", "intra_lmax"]) != 0  # not KEY=VALUE: a clear CLI error


def test_allatom_max_atoms_compares_the_requested_size(tmp_path):
    from cgaa.bench.speed import allatom_above_limit, run_speed

    # the limit is compared with the --sizes value: a box requested with 10000 atoms (packed
    # with 10006) is run under --allatom-max-atoms 10000
    assert not allatom_above_limit(10000, 10000)
    assert allatom_above_limit(10001, 10000) and allatom_above_limit(30000, 10000)
    assert not allatom_above_limit(10 ** 6, 0)
    # through run_speed on a box packed with more atoms than requested; an over-large cutoff
    # makes the baseline skip for the box size instead, so nothing is measured
    rep = run_speed([400], tmp_path, engines=("allatom",), tasks=("eval",), model="untrained",
                    allatom_cutoff=99.0, allatom_max_atoms=400, threads=1, command="pytest", progress=False)
    (e,) = rep["results"]
    assert e["n_atoms"] > 400, "the packed box was expected to exceed the requested size"
    assert e["status"] == "skipped" and "too small" in e["reason"], e
    rep = run_speed([400], tmp_path, engines=("allatom",), tasks=("eval",), model="untrained",
                    allatom_cutoff=99.0, allatom_max_atoms=399, threads=1, command="pytest", progress=False)
    (e,) = rep["results"]
    assert e["status"] == "skipped" and "--allatom-max-atoms 399" in e["reason"], e


def test_cli_help_explains_allatom_max_atoms(capsys):
    from cgaa.cli import main

    with pytest.raises(SystemExit):
        main(["bench", "speed", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--allatom-max-atoms" in text and "requested size is compared" in text


def test_accuracy_tiny(tmp_path):
    from toy_teacher import write_dataset

    from cgaa.bench.accuracy import run_accuracy

    counts = {"Li": 2, "PF6": 2, "EC": 3, "EMC": 2}
    train = write_dataset(tmp_path / "train.xyz", counts, 8, seed=1)
    test = write_dataset(tmp_path / "test.xyz", counts, 3, seed=2)
    rep, files = run_accuracy(tmp_path / "acc", train=[train], test=[test], max_train_frames=6, epochs=1,
                              batch_size=2, cutoff=5.0, allatom_cutoff=3.5, threads=1, command="pytest",
                              model_overrides={"channels": 4, "num_layers": 1, "radial_hidden": 8},
                              progress=False)
    assert set(rep["models"]) == {"cgaa", "allatom"}
    assert rep["data"]["train_frames_used"] == 6 and rep["data"]["test_frames"] == 3
    for kind, m in rep["models"].items():
        assert m["epochs_run"] == 1 and _finite(m["train_wall_s"])
        for key in ("energy_rmse_meV_per_atom", "forces_rmse_eV_per_A"):
            assert _finite(m["test"][key]), (kind, key)
        for key in ("molecule_net_force_rmse_eV_per_A", "intra_molecular_force_rmse_eV_per_A"):
            assert _finite(m["test_molecular"][key]) and m["test_molecular"][key] > 0, (kind, key)
    assert rep["models"]["allatom"]["model"]["all_atom"] is True
    assert rep["models"]["allatom"]["model"]["cutoff"] == 3.5
    assert rep["models"]["cgaa"]["model"]["channels"] == rep["models"]["allatom"]["model"]["channels"] == 4
    assert _finite(rep["ratios"]["cgaa_over_allatom_forces_rmse_eV_per_A"])
    assert _finite(rep["ratios"]["cgaa_over_allatom_molecule_net_force_rmse_eV_per_A"])
    assert json.loads(files["json"].read_text())["mode"] == "accuracy"
    assert "all-atom baseline" in files["markdown"].read_text() and files["png"].stat().st_size > 0


@pytest.fixture(scope="module")
def tiny_box_and_model(tmp_path_factory):
    """A ~1000-atom lipf6-ec-emc-1m box (EMC must stay narrower than half the box: ~400 atoms is
    too small for MD) and an untrained deployed model with a 5 Å cutoff."""
    import torch
    from openmm.app import PDBFile

    from cgaa.bench.speed import box_for, shipped_hyper
    from cgaa.core.modelfile import save_model
    from cgaa.core.grains import grains_from_topology
    from cgaa.core.inputs import vocabulary
    from cgaa.core.model import CGAAModel, ModelConfig

    d = tmp_path_factory.mktemp("obs")
    box, _, _ = box_for("lipf6-ec-emc-1m", 1000, d)
    top = PDBFile(str(box)).topology
    numbers = [a.element.atomic_number for a in top.atoms()]
    el, keys, names = vocabulary([grains_from_topology(top)], [numbers])
    hyper = {**shipped_hyper(), "cutoff": 5.0, "channels": 4, "num_layers": 1}
    torch.manual_seed(0)
    model = CGAAModel(ModelConfig.from_dict({**hyper, "elements": el, "grain_types": keys,
                                             "grain_type_names": names}))
    with torch.no_grad():  # a gentle untrained potential: tiny forces, stable for a few steps
        model.energy_scale.fill_(0.01)
    return box, save_model(model, d / "model.pt")


def test_observables_tiny(tmp_path, tiny_box_and_model):
    from cgaa.bench.observables import run_observables

    box, model = tiny_box_and_model
    rep, files = run_observables(tmp_path / "obs", model=model, box=box, replicas=2, time_ps=0.012,
                                 equil_ps=0.004, report_ps=0.002, ensemble="npt", teacher_cutoff_nm=0.7,
                                 threads=1, minimize_iterations=0, jobs=2, command="pytest", progress=False)
    assert set(rep["engines"]) == {"teacher", "cgaa"}
    for eng, e in rep["engines"].items():
        assert len(e["replicas"]) == 2
        s = e["summary"]
        assert {"Li", "PF6", "EC", "EMC"} <= {n for n in s["D_m2_s"]}, s["D_m2_s"].keys()
        for n, v in s["D_m2_s"].items():
            assert _finite(v), (eng, n)
        assert _finite(s["density_g_cm3"]) and 0.5 < s["density_g_cm3"] < 3.0
        for r in e["replicas"]:  # block means of the same density series bracket its mean
            blocks = r["density_blocks_g_cm3"]
            assert 2 <= len(blocks) <= 6 and all(_finite(v) for v in blocks), blocks
            assert min(blocks) - 1e-12 <= r["density_g_cm3"] <= max(blocks) + 1e-12
        assert _finite(s["rdf_first_peak_nm"]) or s["rdf_first_peak_nm"] is None or math.isnan(s["rdf_first_peak_nm"])
    c = rep["comparison"]
    assert _finite(c["D"]["Li"]["relative"]) and _finite(c["density"]["relative"])
    assert json.loads(files["json"].read_text())["mode"] == "observables"
    import hashlib  # the model is identified by its content too (cgaa bench pool compares it)

    assert rep["model_sha256"] == hashlib.sha256(Path(model).read_bytes()).hexdigest()
    assert "teacher" in files["markdown"].read_text() and files["png"].stat().st_size > 0
    assert "consecutive blocks" in files["markdown"].read_text()  # NPT: density per block and replica
    # the teacher replica really ran the classical force field
    eng = json.loads((tmp_path / "obs" / "teacher" / "rep0" / "engine.json").read_text())
    assert eng["engine"] == "teacher"
    # --resume reuses the four finished runs (made by 2 worker processes) and re-analyses them identically
    again, _ = run_observables(tmp_path / "obs", model=model, box=box, replicas=2, time_ps=0.012, equil_ps=0.004,
                               report_ps=0.002, ensemble="npt", teacher_cutoff_nm=0.7, threads=1,
                               minimize_iterations=0, resume=True, command="pytest", progress=False)
    for eng in ("teacher", "cgaa"):
        assert again["engines"][eng]["summary"]["D_m2_s"] == rep["engines"][eng]["summary"]["D_m2_s"]


def test_block_means():
    from cgaa.bench.observables import block_means

    assert block_means(np.arange(13.0), 3) == [1.5, 5.5, 9.5]      # blocks of 4; the 13th value dropped
    assert block_means(np.arange(2.0), 6) == [0.0, 1.0] and block_means(np.array([]), 6) == []


def test_mean_se_skips_missing_values():
    from cgaa.analysis import mean_se

    m, se = mean_se([1.0, None, 3.0, float("nan"), 5.0])         # sample sd 2 over sqrt(3) values
    assert m == 3.0 and se == pytest.approx(2.0 / math.sqrt(3.0))
    assert mean_se([4.0])[0] == 4.0 and math.isnan(mean_se([4.0])[1])
    assert all(math.isnan(x) for x in mean_se([None, float("inf")]))


def test_observables_cgaa_starts_from_the_teachers_final_state(tmp_path, tiny_box_and_model):
    import openmm
    from openmm.app import PDBFile

    from cgaa.bench.observables import run_observables
    from cgaa.md.rundir import write_final_pdb

    box, model = tiny_box_and_model
    kw = dict(model=model, box=box, replicas=1, time_ps=0.006, equil_ps=0.002, report_ps=0.002, ensemble="npt",
              teacher_cutoff_nm=0.7, threads=1, minimize_iterations=0, command="pytest", progress=False)
    with pytest.raises(ValueError, match="needs the teacher engine"):
        run_observables(tmp_path / "x", engines=("cgaa",), start="teacher", **kw)
    rep, _ = run_observables(tmp_path / "obs", start="teacher", **kw)
    assert "teacher replica" in rep["protocol"]["cgaa_start"]
    assert rep["engines"]["cgaa"]["replicas"][0]["status"] == "ok"
    state = openmm.XmlSerializer.deserialize((tmp_path / "obs" / "teacher" / "rep0" / "final_state.xml").read_text())
    end = state.getPositions(asNumpy=True).value_in_unit(openmm.unit.nanometer)
    start = PDBFile(str(tmp_path / "obs" / "cgaa" / "rep0" / "topology.pdb"))  # the CGAA run's input
    first = start.getPositions(asNumpy=True).value_in_unit(openmm.unit.nanometer)
    packed = PDBFile(str(box)).getPositions(asNumpy=True).value_in_unit(openmm.unit.nanometer)
    assert np.abs(first - end).max() < 2e-4  # PDB precision (0.001 Å)
    assert np.abs(first - packed).max() > 1e-3  # ... and not the packed box
    vec = np.array(start.topology.getPeriodicBoxVectors().value_in_unit(openmm.unit.nanometer))
    assert np.allclose(vec, state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(openmm.unit.nanometer), atol=1e-4)
    with pytest.raises(FileNotFoundError, match="is not a finished cgaa run"):
        write_final_pdb(tmp_path / "obs", tmp_path / "y.pdb")


def test_observables_both_engines_start_from_the_teacher_warmup(tmp_path, tiny_box_and_model):
    """start='warmup': a teacher warm-up run first, then both engines from its final state."""
    import openmm
    from openmm.app import PDBFile

    from cgaa.bench.observables import observables_markdown, run_observables

    box, model = tiny_box_and_model
    kw = dict(model=model, box=box, replicas=1, time_ps=0.006, equil_ps=0.002, report_ps=0.002, ensemble="npt",
              teacher_cutoff_nm=0.7, threads=1, minimize_iterations=0, command="pytest", progress=False)
    with pytest.raises(ValueError, match="warmup_ps is for start='warmup'"):
        run_observables(tmp_path / "x", warmup_ps=1.0, **kw)
    rep, _ = run_observables(tmp_path / "obs", start="warmup", warmup_ps=0.004, **kw)
    warm = tmp_path / "obs" / "warmup" / "rep0"
    info = json.loads((warm / "run.json").read_text())
    assert info["history"][-1]["to_step"] == 4  # 0.004 ps of 1 fs steps, not the replicas' 8
    state = openmm.XmlSerializer.deserialize((warm / "final_state.xml").read_text())
    end = state.getPositions(asNumpy=True).value_in_unit(openmm.unit.nanometer)
    packed = PDBFile(str(box)).getPositions(asNumpy=True).value_in_unit(openmm.unit.nanometer)
    for eng in ("teacher", "cgaa"):
        first = PDBFile(str(tmp_path / "obs" / eng / "rep0" / "topology.pdb")).getPositions(asNumpy=True)
        first = first.value_in_unit(openmm.unit.nanometer)
        assert np.abs(first - end).max() < 2e-4 and np.abs(first - packed).max() > 1e-3
        assert rep["engines"][eng]["replicas"][0]["status"] == "ok"
    assert rep["protocol"]["teacher_start"] == rep["protocol"]["cgaa_start"]
    assert "warm-up run k (0.004 ps" in rep["protocol"]["teacher_start"]
    assert "Replica k of both engines starts from the final state" in observables_markdown(rep)
    # --resume: the three finished runs are kept (same final states, same numbers)
    again, _ = run_observables(tmp_path / "obs", start="warmup", warmup_ps=0.004, resume=True, **kw)
    assert again["engines"]["cgaa"]["summary"]["D_m2_s"] == rep["engines"]["cgaa"]["summary"]["D_m2_s"]
    assert (warm / "final_state.xml").read_text() == openmm.XmlSerializer.serialize(state)


def test_observables_cgaa_with_fast_substeps(tmp_path, tiny_box_and_model):
    """fast_substeps 2: the CGAA run steps 2 fs (r-RESPA) over the same times and frames as
    the teacher's 1 fs steps; times that are not whole CGAA steps are refused."""
    from cgaa.bench.observables import observables_markdown, run_observables

    box, model = tiny_box_and_model
    kw = dict(model=model, box=box, replicas=1, time_ps=0.008, equil_ps=0.002, report_ps=0.002, ensemble="npt",
              teacher_cutoff_nm=0.7, threads=1, minimize_iterations=0, command="pytest", progress=False)
    with pytest.raises(ValueError, match="multiples"):
        run_observables(tmp_path / "x", fast_substeps=4, **kw)
    rep, _ = run_observables(tmp_path / "obs", fast_substeps=2, **kw)
    runs = {e: json.loads((tmp_path / "obs" / e / "rep0" / "run.json").read_text()) for e in ("teacher", "cgaa")}
    assert runs["cgaa"]["settings"]["fast_substeps"] == 2 and runs["cgaa"]["settings"]["timestep_fs"] == 2.0
    assert runs["cgaa"]["settings"]["steps"] == 5 and runs["cgaa"]["settings"]["report_interval"] == 1
    assert runs["teacher"]["settings"]["fast_substeps"] == 1 and runs["teacher"]["settings"]["steps"] == 10
    for e in ("teacher", "cgaa"):
        assert rep["engines"][e]["replicas"][0]["status"] == "ok"
    assert rep["protocol"]["cgaa_fast_substeps"] == 2
    assert "CGAA: r-RESPA, network every 2 fs" in observables_markdown(rep)
    # --resume keeps both finished runs
    again, _ = run_observables(tmp_path / "obs", fast_substeps=2, resume=True, **kw)
    assert again["engines"]["cgaa"]["summary"]["D_m2_s"] == rep["engines"]["cgaa"]["summary"]["D_m2_s"]
    assert len(json.loads((tmp_path / "obs" / "cgaa" / "rep0" / "run.json").read_text())["history"]) == 1


def test_observables_report_handles_an_unstable_engine():
    from cgaa.bench.observables import compare, observables_markdown, relative_difference, summarise

    rel, err = relative_difference(1.1, 0.1, 1.0, 0.0)
    assert abs(rel - 0.1) < 1e-12 and abs(err - 0.1) < 1e-12
    r = {"D_m2_s": {"Li": 1e-10, "EC": 2e-10}, "D_err_m2_s": {}, "diffusive": {"Li": True, "EC": False},
         "rdf": {"first_peak_nm": 0.2, "cn_first_shell": 2.5, "peak_height": 9.0}, "density_g_cm3": 1.2,
         "temperature_K": 298.0, "ns_per_day": 5.0, "status": "ok", "run_dir": "t/rep0", "seed": 0}
    teacher = summarise([r, {**r, "density_g_cm3": 1.22}])
    assert abs(teacher["density_g_cm3"] - 1.21) < 1e-12 and abs(teacher["density_se_g_cm3"] - 0.01) < 1e-12
    c = compare(teacher, summarise([{**r, "D_m2_s": {"Li": 1.1e-10, "EC": 2e-10}}]), "npt")
    assert abs(c["D"]["Li"]["relative"] - 0.1) < 1e-9 and c["targets_met"]["D_Li_within_15pct"]
    assert c["targets_conclusive"]["D_Li_within_15pct"]  # one CGAA replica: se from the teacher only (0)
    noisy = summarise([{**r, "D_m2_s": {"Li": 0.8e-10, "EC": 2e-10}}, {**r, "D_m2_s": {"Li": 1.4e-10, "EC": 2e-10}}])
    c2 = compare(teacher, noisy, "npt")  # mean +10 % but standard error 30 %
    assert c2["targets_met"]["D_Li_within_15pct"] and not c2["targets_conclusive"]["D_Li_within_15pct"]
    assert c2["targets_conclusive"]["density_within_2pct"]
    rep = {"command": "pytest", "date": "2026-01-01", "machine": {}, "versions": {}, "model": "m.pt", "box": "b.pdb",
           "protocol": {"ensemble": "npt", "temperature_K": 298.15, "timestep_fs": 1.0, "replicas": 1,
                        "equilibration_ps": 1, "production_ps": 1, "frame_interval_ps": 0.1, "platform": "CPU",
                        "threads": 1},
           "engines": {"teacher": {"replicas": [r], "summary": teacher},
                       "cgaa": {"replicas": [{"status": "failed", "error": "grain 3 exploded", "run_dir": "c/rep0",
                                              "seed": 0}], "summary": None}}}
    text = observables_markdown(rep)
    assert "grain 3 exploded" in text and "failed: no stable replica" in text
    rep["engines"]["cgaa"] = {"replicas": [r], "summary": noisy, "failed_replicas": 0}
    rep["comparison"] = c2
    assert "D_Li_within_15pct: met (inconclusive" in observables_markdown(rep)
    # several replicas: their D values are listed one by one
    rep["engines"]["cgaa"]["replicas"] = [{**r, "D_m2_s": {"Li": 0.8e-10, "EC": 2e-10}, "run_dir": "c/rep0"},
                                          {**r, "D_m2_s": {"Li": 1.4e-10, "EC": 2e-10}, "run_dir": "c/rep1"}]
    text = observables_markdown(rep)
    assert "D per replica" in text and "| teacher rep0 | cgaa rep0 | cgaa rep1 |" in text
    row = next(l for l in text.splitlines() if l.startswith("| D[Li] | "))
    assert row.split("|")[2:5] == [" 1 ", " 0.8 ", " 1.4 "]


def test_bond_stretch_scan_tiny(tiny_box_and_model):
    from openmm.app import PDBFile
    from openmm.unit import angstrom

    from cgaa.bench.observables import bond_stretch_scan

    box, model = tiny_box_and_model
    pdb = PDBFile(str(box))
    cell = np.array([list(v.value_in_unit(angstrom)) for v in pdb.topology.getPeriodicBoxVectors()])
    s = bond_stretch_scan(model, pdb.topology, pdb.getPositions(asNumpy=True).value_in_unit(angstrom), cell,
                          "EC", distances_A=(1.0, 1.1, 1.5), teacher_cutoff_nm=0.9)
    assert len(s["model_eV"]) == len(s["teacher_eV"]) == 3 and s["model_eV"][0] == s["teacher_eV"][0] == 0.0
    assert all(_finite(x) for x in s["model_eV"] + s["teacher_eV"])
    assert s["teacher_eV"][2] > s["teacher_eV"][1]  # the classical C-H bond is stiff


def test_observables_fit_window_option():
    from cgaa.commands.bench import _window

    assert _window(None) is None and _window("5,20") == (5.0, 20.0)
    for bad in ("5", "a,b", "20,5", "-1,3"):
        with pytest.raises(ValueError, match="--fit-window"):
            _window(bad)


def test_density_scan_tiny(tiny_box_and_model):
    """Scaling molecule centres with the box: zero at the box's own density, molecules rigid
    (the teacher's bonded energy does not change), and the teacher resists compression."""
    from openmm.app import PDBFile
    from openmm.unit import angstrom

    from cgaa.bench.observables import density_scan
    from cgaa.systems.topology import box_density

    box, model = tiny_box_and_model
    pdb = PDBFile(str(box))
    cell = np.array([list(v.value_in_unit(angstrom)) for v in pdb.topology.getPeriodicBoxVectors()])
    rho0 = box_density(pdb.topology, cell)
    s = density_scan(model, pdb.topology, pdb.getPositions(asNumpy=True).value_in_unit(angstrom), cell,
                     densities_g_cm3=(0.8 * rho0, rho0, 1.4 * rho0), teacher_cutoff_nm=0.7)
    assert s["model_eV_per_molecule"][1] == s["teacher_eV_per_molecule"][1] == 0.0
    assert all(_finite(x) for x in s["model_eV_per_molecule"] + s["teacher_eV_per_molecule"])
    assert s["teacher_eV_per_molecule"][2] > 0.0  # 40 % compression of a packed liquid costs energy


def test_replica_workers_exit_with_their_parent(tmp_path):
    """Killing `cgaa bench observables --jobs N` must not leave replica runs computing:
    a worker started with exit_with_parent ends once its parent is gone."""
    import os
    import subprocess
    import sys
    import time

    pidfile = tmp_path / "child.pid"
    script = f"""
import multiprocessing, os, time
from cgaa.bench.observables import exit_with_parent

def child(parent):
    exit_with_parent(parent, poll_s=0.2)
    open({str(pidfile)!r}, "w").write(str(os.getpid()))
    time.sleep(600)

if __name__ == "__main__":
    p = multiprocessing.get_context("spawn").Process(target=child, args=(os.getpid(),))
    p.start()
    while not os.path.exists({str(pidfile)!r}):
        time.sleep(0.05)
    os._exit(0)   # the parent dies without stopping its child
"""
    path = tmp_path / "parent.py"  # a file, so the spawned child can import `child`
    path.write_text(script)
    subprocess.run([sys.executable, str(path)], check=True, timeout=300)
    child = int(pidfile.read_text())
    for _ in range(600):  # the child notices within a poll interval; allow a busy machine plenty
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.kill(child, 9)
        raise AssertionError("the worker outlived its parent")


def test_interleaved_cpu_times_alternates_and_builds_arguments_untimed():
    from cgaa.bench.speed import cpu_summary_ms, interleaved_cpu_times

    log = []
    made = iter(range(10 ** 6))
    calls = {"a": lambda i: log.append(("a", i)), "b": lambda i: log.append(("b", i))}
    times = interleaved_cpu_times(calls, rounds=3, per_round=2, warmup=1, make_args=lambda: (next(made),))
    assert {k: len(v) for k, v in times.items()} == {"a": 6, "b": 6}
    assert all(t >= 0 for v in times.values() for t in v)
    # warm-up a, b; then rounds of (a, a, b, b), every call with fresh arguments
    assert [k for k, _ in log] == ["a", "b"] + ["a", "a", "b", "b"] * 3
    assert [i for _, i in log] == list(range(14))
    burn = {"spin": lambda: sum(range(20000))}
    assert "median" in cpu_summary_ms(interleaved_cpu_times(burn, rounds=2, per_round=1, warmup=0)["spin"])


def test_observables_resume_continues_and_extends_replicas(tmp_path, tiny_box_and_model):
    """--resume with a longer run continues each replica from its checkpoint: the first part's
    frames are kept as they were, the run has the frames of the longer protocol, no minimisation."""
    import mdtraj

    from cgaa.bench.observables import checkpoint_interval, run_observables

    assert checkpoint_interval(steps=60000, report=100, timestep_fs=1.0) == 2000
    assert checkpoint_interval(steps=150, report=100, timestep_fs=1.0) == 200  # the run's end, in reports
    assert checkpoint_interval(steps=60000, report=300, timestep_fs=2.0) == 900
    box, model = tiny_box_and_model
    kw = dict(model=model, box=box, replicas=1, equil_ps=0.002, report_ps=0.002, ensemble="nvt", engines=("cgaa",),
              threads=1, minimize_iterations=0, command="pytest", progress=False)
    run_observables(tmp_path / "obs", time_ps=0.008, **kw)
    run_dir = tmp_path / "obs" / "cgaa" / "rep0"
    first = mdtraj.load(str(run_dir / "traj.dcd"), top=str(run_dir / "topology.pdb")).xyz
    rep, _ = run_observables(tmp_path / "obs", time_ps=0.014, resume=True, **kw)
    assert rep["engines"]["cgaa"]["replicas"][0]["status"] == "ok"
    info = json.loads((run_dir / "run.json").read_text())
    assert [(h["from_step"], h.get("to_step")) for h in info["history"]] == [(0, 10), (10, 16)]
    longer = mdtraj.load(str(run_dir / "traj.dcd"), top=str(run_dir / "topology.pdb")).xyz
    assert len(longer) == len(first) + 3 and np.array_equal(longer[:len(first)], first)
    # other dynamics (here the frame interval) cannot continue that run: it starts again
    run_observables(tmp_path / "obs", time_ps=0.014, resume=True, **{**kw, "report_ps": 0.001})
    assert [h["from_step"] for h in json.loads((run_dir / "run.json").read_text())["history"]] == [0]
    # another model (here the same network saved with other metadata: other bytes) starts again too
    import torch

    from cgaa.core.modelfile import METADATA_FILE, load_model

    dep = load_model(model)
    other = tmp_path / "other.pt"
    torch.jit.save(dep.module, str(other), _extra_files={METADATA_FILE: json.dumps({**dep.metadata, "note": "x"})})
    run_observables(tmp_path / "obs", time_ps=0.014, resume=True, **{**kw, "report_ps": 0.001})  # same: kept
    assert len(json.loads((run_dir / "run.json").read_text())["history"]) == 1
    run_observables(tmp_path / "obs", time_ps=0.018, resume=True, **{**kw, "report_ps": 0.001, "model": other})
    assert [h["from_step"] for h in json.loads((run_dir / "run.json").read_text())["history"]] == [0]
