"""The model recipe (forcefields/models/make_default_model.sh) resumes where it stopped: run with
a stand-in for the `cgaa` command that records its arguments and writes the files named by -o,
it skips finished steps, continues an interrupted training with --resume and an interrupted MD
run with --restart, and runs everything else in order."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "forcefields" / "models" / "make_default_model.sh"

FAKE = f"""#!{sys.executable}
import os, sys
from pathlib import Path
args = sys.argv[1:]
if args[0] == "-c":  # standing in for PYTHON as well: run inline code for real
    os.execv(sys.executable, [sys.executable] + args)
with open(os.environ["FAKE_LOG"], "a") as fh:
    fh.write(" ".join(args) + "\\n")
for flag in ("-o", "--out"):
    if flag in args:
        out = Path(args[args.index(flag) + 1])
        if args[0] in ("simulate", "evaluate"):
            out.mkdir(parents=True, exist_ok=True)
            (out / "parity.png").touch()
        elif args[0] == "bench":
            out.mkdir(parents=True, exist_ok=True)
            (out / "observables.json").touch()
        else:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.touch()
"""


def _run(tmp_path: Path, parallel: str = "0", final: str = "") -> list:
    fake = tmp_path / "fake-cgaa"
    fake.write_text(FAKE)
    fake.chmod(0o755)
    log = tmp_path / "calls.log"
    log.unlink(missing_ok=True)
    work = tmp_path / "work"
    env = dict(os.environ, CGAA=str(fake), PYTHON=str(fake), FAKE_LOG=str(log), WORK=str(work),
               MODEL=str(tmp_path / "out" / "m.pt"), CONFIGS="cfg/x", NOTES="", AL_PARALLEL=parallel,
               FINAL=final)
    (tmp_path / "out").mkdir(exist_ok=True)
    (work / "run").mkdir(parents=True, exist_ok=True)
    (work / "run" / "learning_curve.png").touch()
    proc = subprocess.run(["bash", str(SCRIPT)], cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return log.read_text().splitlines()


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not available")
@pytest.mark.parametrize("parallel", ["0", "1"])
def test_recipe_resumes_where_it_stopped(tmp_path, parallel):
    work = tmp_path / "work"
    # finished: the teacher data, the stage-1 training; interrupted: stage 2's training and the
    # second MD run of the first active-learning round
    (work / "dens").mkdir(parents=True)
    (work / "run-stage2").mkdir()
    for f in ("train.xyz", "test.xyz", "dens/box-0.90.pdb", "dens/train-0.90.xyz", "stage1.pt",
              "run-stage2/last.pt"):
        (work / f).touch()
    interrupted = work / "al" / "md-run-1"
    interrupted.mkdir(parents=True)
    (interrupted / "checkpoint.chk").touch()
    (interrupted / "run.json").write_text(json.dumps({"history": [{"status": "interrupted"}]}))
    calls = _run(tmp_path, parallel)
    verbs = [c.split()[0] for c in calls]
    assert not any(c.startswith("sample lipf6-ec-emc-1m") for c in calls)  # train/test data exist
    assert not any("box-0.90" in c for c in calls)
    assert sum("dens/train-" in c and c.startswith("sample") for c in calls) == 2  # 1.00 and 1.10
    assert "train --no-progress cfg/x.stage1.train.yaml" not in calls          # stage1.pt exists
    assert "train --resume --no-progress cfg/x.stage2.train.yaml" in calls    # last.pt, unfinished
    assert "train --no-progress cfg/x.train.yaml" in calls
    threads = " --threads 1" if parallel == "1" else ""  # AL_PARALLEL=1: one thread per run
    md = sorted(c for c in calls if c.startswith("simulate"))
    assert len(md) == 4  # two rounds of two runs
    assert f"simulate --restart --time-ps 70 --no-progress -o {interrupted}{threads}" in md
    fresh = [c for c in md if "--restart" not in c]
    assert len(fresh) == 3 and all(c.endswith(threads) for c in fresh)
    assert any(f"-o {work / 'al' / 'md-run-0'}" in c and "--seed 0 " in c for c in fresh)
    # every run of a round ends before its frames are labelled
    for prefix in ("md-run-", "md2-run-"):
        last_md = max(i for i, c in enumerate(calls) if c.startswith("simulate") and prefix in c)
        first_label = min(i for i, c in enumerate(calls) if c.startswith("label") and prefix in c)
        assert last_md < first_label
    # order: stage-1 MD before stage 2, stage-2 MD before stage 3, then evaluation and model card
    assert verbs.index("evaluate") > max(i for i, v in enumerate(verbs) if v == "train")
    assert calls[-1].startswith("-m cgaa.train.modelcard")
    assert (tmp_path / "out" / "m.parity.png").exists()

    # a second pass over the finished recipe: the MD runs are marked finished, every output exists
    for run in (work / "al").glob("*-run-*"):
        (run / "run.json").write_text(json.dumps({"history": [{"status": "finished"}]}))
    (work / "run" / "test_metrics.json").touch()
    calls = _run(tmp_path, parallel)
    assert [c.split()[0] for c in calls] == ["evaluate", "-m"]  # only the card is made again


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not available")
def test_recipe_final_stage(tmp_path):
    """FINAL adds stage 4: the stage-3 model's NPT comparison from the teacher's states (run
    once, for both replicas), its and the teacher's frames relabelled, then the FINAL config
    trained into MODEL; the card reads the FINAL run's metrics. Only what is missing is redone."""
    work = tmp_path / "work"
    final = tmp_path / "cfg" / "final.train.yaml"
    final.parent.mkdir()
    final.write_text("data: {train: [a.xyz]}\noutput: {dir: ../work/run-final}\n")
    run_final = tmp_path / "cfg" / ".." / "work" / "run-final"
    run_final.mkdir(parents=True)
    (run_final / "learning_curve.png").touch()
    calls = _run(tmp_path, final=str(final))
    verbs = [c.split()[0] for c in calls]
    i3 = calls.index("train --no-progress cfg/x.train.yaml")
    assert calls[i3 + 1] == f"deploy {work / 'run'}/best.pt -o {work / 'stage3.pt'}"
    bench = [i for i, c in enumerate(calls) if c.startswith("bench observables")]
    assert len(bench) == 1 and bench[0] > i3
    assert f"--model {work / 'stage3.pt'} --out {work / 'npt3'}" in calls[bench[0]]
    assert "--start teacher" in calls[bench[0]]  # the older protocol: the shipped model was trained so
    labels = [c for c in calls[bench[0]:] if c.startswith("label")]
    assert sorted(c.split()[1] for c in labels) == sorted(
        str(work / "npt3" / e / f"rep{k}") for e in ("cgaa", "teacher") for k in (0, 1))
    i4 = calls.index(f"train --no-progress {final}")
    assert i4 > max(i for i, v in enumerate(verbs) if v == "label")
    assert calls[i4 + 1] == f"deploy {run_final}/best.pt -o {tmp_path / 'out' / 'm.pt'}"
    assert f"{run_final}/metrics.csv" in calls[-1]
    assert f"FINAL={final}" in calls[-1]  # the card's command names the stage-4 config

    # one teacher relabelling lost: only that label is redone, without a new MD comparison
    (work / "al" / "teacher-npt-1.xyz").unlink()
    (run_final / "test_metrics.json").touch()
    calls = _run(tmp_path, final=str(final))
    assert [c.split()[0] for c in calls] == ["label", "evaluate", "-m"]
    assert calls[0].startswith(f"label {work / 'npt3' / 'teacher' / 'rep1'}")


SEVENNET = ROOT / "forcefields" / "models" / "make_sevennet_model.sh"


def _run_sevennet(tmp_path: Path) -> list:
    fake = tmp_path / "fake-cgaa"
    fake.write_text(FAKE)
    fake.chmod(0o755)
    log = tmp_path / "calls.log"
    log.unlink(missing_ok=True)
    env = dict(os.environ, CGAA=str(fake), PYTHON=str(fake), FAKE_LOG=str(log),
               WORK=str(tmp_path / "work"), DATA=str(tmp_path / "data"))
    proc = subprocess.run(["bash", str(SEVENNET)], cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return log.read_text().splitlines()


SHIPPED = ("sevenn-1.20", "sevenn-1.13", "sevenn-1.27", "test-sevenn", "comp-0.5m", "comp-2m", "comp-ecemc11",
           "own-md-1000-test")


@pytest.mark.skipif(shutil.which("bash") is None or shutil.which("xz") is None, reason="needs bash and xz")
def test_sevennet_recipe_resumes_and_ships_its_active_learning_frames(tmp_path):
    """make sevennet-model: a round whose labelled frames are shipped is not run again; a missing
    round runs its three NPT runs (an interrupted one with --restart) before any labelling, labels
    two for training (every 0.5 ps) and one held out (every 1 ps), and ships them compressed; the
    models that make a round's MD are trained only for a missing round; the final stage trains on
    everything after the last round, refits the reference energies on the training files and the
    composition anchors, and is evaluated on the classical and own-MD test frames for its card."""
    work, data = tmp_path / "work", tmp_path / "data"
    (work / "run-stage1").mkdir(parents=True)
    (work / "run-stage1" / "test_metrics.json").touch()   # stage 1 finished
    (work / "stage1.pt").touch()
    data.mkdir()
    for name in SHIPPED + ("al1-md-298", "al1-md-338", "al1-test"):  # round 1 shipped
        (data / f"{name}.xyz.xz").write_bytes(b"x")
    interrupted = work / "al" / "run-32"
    interrupted.mkdir(parents=True)
    (interrupted / "checkpoint.chk").touch()
    (interrupted / "run.json").write_text(json.dumps({"history": [{"status": "interrupted"}]}))
    calls = _run_sevennet(tmp_path)
    verbs = [c.split()[0] for c in calls]
    assert "train --no-progress forcefields/models/lipf6-ec-emc-1m-sevennet.stage1.train.yaml" not in calls
    md = [c for c in calls if c.startswith("simulate")]
    assert len(md) == 3 and all("stage1" not in c for c in md)       # round 2 only, the stage-2 model
    assert f"simulate --restart --time-ps 12 --threads 1 --no-progress -o {interrupted}" in md
    assert any(f"--model {work / 'stage2.pt'}" in c and "--temperature 318" not in c and "--seed 31" in c
               for c in md)
    ft2 = calls.index("finetune --no-progress forcefields/models/lipf6-ec-emc-1m-sevennet.stage2.finetune.yaml")
    labels = [i for i, c in enumerate(calls) if c.startswith("label")]
    assert len(labels) == 3 and min(labels) > max(i for i, c in enumerate(calls) if c.startswith("simulate"))
    assert min(i for i, c in enumerate(calls) if c.startswith("simulate")) > ft2
    every = sorted(calls[i].split("--every-ps ")[1].split()[0] for i in labels)
    assert every == ["0.5", "0.5", "1"]
    for name in ("al2-md-298", "al2-md-318", "al2-test"):
        assert (data / f"{name}.xyz.xz").exists()                   # shipped, compressed
    # the final stage: trained after the last labels, deployed, reference energies refitted on the
    # seven training files and the three composition anchors (not on any test file)
    final = calls.index("train --no-progress forcefields/models/lipf6-ec-emc-1m-sevennet.train.yaml")
    assert final > max(labels)
    assert calls[final + 1] == f"deploy {work / 'run-all'}/best.pt -o {work / 'run-all.pt'}"
    refit = calls[final + 2].split()
    model = str(work / "lipf6-ec-emc-1m-sevennet.pt")
    assert refit[:3] == ["-m", "cgaa.train.reference", str(work / "run-all.pt")] and refit[-2:] == ["-o", model]
    assert sorted(Path(f).name for f in refit[3:-2]) == sorted(
        f"{n}.xyz.xz" for n in ("sevenn-1.20", "sevenn-1.13", "sevenn-1.27", "al1-md-298", "al1-md-338",
                                "al2-md-298", "al2-md-318", "comp-0.5m", "comp-2m", "comp-ecemc11"))
    evaluate = [c for c in calls if c.startswith("evaluate")]
    assert all(c.startswith(f"evaluate {model} ") for c in evaluate) and len(evaluate) == 3
    assert any(str(data / "test-sevenn.xyz.xz") in c and str(data / "al2-test.xyz.xz") in c for c in evaluate)
    assert any(str(data / "own-md-1000-test.xyz.xz") in c for c in evaluate)
    assert verbs[-1] == "-m" and "--targets 0.10,2" in calls[-1]
    assert calls[-1].startswith(f"-m cgaa.train.modelcard {model} {work / 'eval'}/metrics.json "
                                f"{work / 'run-all'}/metrics.csv")
    assert calls[-1].count("--also") == 2 and f"={work / 'eval-own-md-1000'}/metrics.json" in calls[-1]
    assert (work / "lipf6-ec-emc-1m-sevennet.parity.png").exists()

    # a second pass: round 2 is now shipped (no stage 2 needed), the final training finished, every
    # output exists: only the card is made again
    (work / "run-all").mkdir(exist_ok=True)
    (work / "run-all" / "test_metrics.json").touch()
    for run in (work / "al").glob("run-*"):
        (run / "run.json").write_text(json.dumps({"history": [{"status": "finished"}]}))
    for ev in ("eval", "eval-own-md", "eval-own-md-1000"):
        (work / ev / "metrics.json").touch()
    assert [c.split()[0] for c in _run_sevennet(tmp_path)] == ["-m"]


@pytest.mark.skipif(shutil.which("bash") is None or shutil.which("xz") is None, reason="needs bash and xz")
def test_sevennet_recipe_from_the_shipped_data_trains_only_the_final_stage(tmp_path):
    """With every active-learning round shipped, `make sevennet-model` trains no earlier stage and
    runs no MD: the final training, its deployment, the reference refit, evaluation and card."""
    data = tmp_path / "data"
    data.mkdir()
    for name in SHIPPED + ("al1-md-298", "al1-md-338", "al1-test", "al2-md-298", "al2-md-318", "al2-test"):
        (data / f"{name}.xyz.xz").write_bytes(b"x")
    calls = _run_sevennet(tmp_path)
    assert [c.split()[0] for c in calls] == ["train", "deploy", "-m", "evaluate", "evaluate", "evaluate", "-m"]
    assert calls[0] == "train --no-progress forcefields/models/lipf6-ec-emc-1m-sevennet.train.yaml"


SEVENNET_FT = ROOT / "forcefields" / "models" / "make_sevennet_finetune.sh"


def _report(path: Path, replay: float, lam: float) -> None:
    m = {"forces_rmse_eV_per_A": 0.1 + lam / 1000, "energy_rmse_meV_per_atom": 2.0}
    path.mkdir(parents=True, exist_ok=True)
    (path / "finetune_report.json").write_text(json.dumps(
        {"replay_fraction": replay, "ewc_lambda": lam, "old_data_before": m, "old_data_after": m,
         "new_data_test_before": m, "new_data_test_after": m}))


@pytest.mark.skipif(shutil.which("bash") is None or shutil.which("xz") is None, reason="needs bash and xz")
def test_sevennet_finetune_recipe_resumes_and_reports(tmp_path):
    """make sevennet-finetune: shipped EC:DMC labels are not made again, missing ones are sampled,
    labelled and shipped compressed; a finished fine-tune is skipped, an interrupted one resumed; the
    recipe stops naming a run without a report, and a rerun only writes the table of both runs."""
    work, data = tmp_path / "work", tmp_path / "data"
    data.mkdir()
    (data / "ecdmc-train.xyz.xz").write_bytes(b"x")          # shipped
    _report(work / "plain", 0.0, 0.0)                          # finished
    (work / "guarded").mkdir(parents=True)
    (work / "guarded" / "last.pt").touch()                     # interrupted
    fake = tmp_path / "fake-cgaa"
    fake.write_text(FAKE)
    fake.chmod(0o755)
    log = tmp_path / "calls.log"
    env = dict(os.environ, CGAA=str(fake), PYTHON=sys.executable, FAKE_LOG=str(log), WORK=str(work),
               DATA=str(data))
    proc = subprocess.run(["bash", str(SEVENNET_FT)], cwd=ROOT, env=env, capture_output=True, text=True)
    calls = log.read_text().splitlines()
    assert proc.returncode != 0 and "guarded/finetune_report.json" in proc.stderr
    assert [c.split()[0] for c in calls] == ["build", "sample", "label", "finetune"]
    assert "--recipe lipf6-ec-dmc-1m" in calls[0] and f"-o {work / 'box-test.pdb'}" in calls[0]
    assert "-c sevenn --stress" in calls[2]
    assert (data / "ecdmc-test.xyz.xz").exists() and not (data / "ecdmc-test.xyz.xz.tmp").exists()
    assert calls[3] == "finetune --resume --no-progress forcefields/models/lipf6-ec-dmc-1m-sevennet.guarded.finetune.yaml"

    _report(work / "guarded", 0.25, 100.0)                     # the resumed run finished
    log.unlink()
    proc = subprocess.run(["bash", str(SEVENNET_FT)], cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert not log.exists()                                    # nothing but the table
    table = (work / "finetune-table.md").read_text().splitlines()
    assert table[2].startswith("| plain fine-tuning | 0 | 0 | 0.100 → 0.100 |")
    assert table[3].startswith("| replay + EWC | 0.25 | 100 | 0.200 → 0.200 |")
