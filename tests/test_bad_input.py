"""Bad input, command by command: every class of broken input file, config key, model file and
output path gives a non-zero exit (2: an input error) and ONE line on stderr, without a
traceback, that names the file and the frame, atom, line, key or flag at fault; a failing run
leaves what an earlier run wrote byte for byte as it was.

The table runs the CLI in-process (``cgaa.cli.main``). ``cgaa simulate`` and ``cgaa analyze``
appear only with inputs refused before any MD or analysis starts.
"""
from __future__ import annotations

import errno
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Tuple

import numpy as np
import pytest
import yaml

from cgaa.cli import main
from toy_teacher import write_dataset

TINY_MODEL = {"cutoff": 5.0, "channels": 4, "num_layers": 1, "num_basis": 4, "radial_hidden": 8, "lmax": 1}
COUNTS = {"Li": 1, "PF6": 1, "EC": 1}


def flaky_lj(fail_at: int = 2):
    """An ASE Lennard-Jones calculator that fails on the frame numbered ``fail_at`` (0-based), as
    a DFT code whose SCF does not converge (for ``cgaa label -c test_bad_input:flaky_lj``)."""
    from ase.calculators.lj import LennardJones

    seen = []

    class Flaky(LennardJones):
        def calculate(self, atoms=None, properties=("energy",), system_changes=()):
            key = atoms.positions.tobytes()
            if key not in seen:
                seen.append(key)
            if len(seen) > fail_at:
                raise RuntimeError("SCF did not converge")
            super().calculate(atoms, properties, system_changes)

    return Flaky(sigma=3.0, epsilon=0.01, rc=6.0, smooth=True)


# ------------------------------------------------------------------ the bad files
def _edit_line(lines, k, fn):
    out = list(lines)
    out[k] = fn(out[k])
    return out


def _write_extxyz_variants(d: Path, good: Path) -> None:
    import ase.io

    lines = good.read_text().splitlines(keepends=True)
    n = int(lines[0])
    f1 = n + 2                                       # first line of frame 1
    atom3 = f1 + 2 + 3                                # frame 1, atom 3

    def cols(fn):
        def edit(line):
            p = line.split()
            fn(p)
            return " ".join(p) + "\n"
        return edit

    (d / "empty.xyz").write_text("")
    (d / "random.xyz").write_text("this is\nnot an extxyz file\n")
    (d / "count.xyz").write_text("".join(_edit_line(lines, f1, lambda _: f"{n + 1}\n")))
    (d / "nonnum.xyz").write_text("".join(_edit_line(lines, atom3, cols(lambda p: p.__setitem__(2, "abc")))))
    (d / "nanf.xyz").write_text("".join(_edit_line(lines, atom3, cols(lambda p: p.__setitem__(-2, "nan")))))
    (d / "short.xyz").write_text("".join(_edit_line(lines, atom3, cols(lambda p: p.__delitem__(5)))))
    (d / "trunc.xyz").write_text("".join(lines[:-4]))
    two = list(lines)                                 # frame 1's forces have 2 components per atom
    two[f1 + 1] = two[f1 + 1].replace("REF_forces:R:3", "REF_forces:R:2")
    for k in range(n):
        two = _edit_line(two, f1 + 2 + k, cols(lambda p: p.__delitem__(6)))
    (d / "forces2.xyz").write_text("".join(two))
    frames = ase.io.read(str(good), index=":")
    del frames[1].info["REF_energy"]
    ase.io.write(str(d / "noenergy.xyz"), frames, format="extxyz")
    frames = ase.io.read(str(good), index=":")
    del frames[2][[3]]                                # frame 2 lost an atom of its EC
    ase.io.write(str(d / "mixed.xyz"), frames, format="extxyz")


def _write_box_variants(d: Path) -> None:
    from cgaa.systems.boxfile import write_box
    from cgaa.systems.build import make_topology

    top = make_topology({"Li": 1, "PF6": 1, "EC": 2}, 12.0)
    pos = np.random.default_rng(0).uniform(0.0, 12.0, (top.getNumAtoms(), 3))
    write_box(d / "box.pdb", top, pos)
    lines = (d / "box.pdb").read_text().splitlines(keepends=True)
    atoms = [k for k, line in enumerate(lines) if line.startswith(("ATOM", "HETATM"))]
    ec = [k for k in atoms if lines[k][17:20].strip() == "EC"]
    (d / "empty.pdb").write_text("")
    (d / "random.pdb").write_text("hello\nthis is not a PDB file\n")
    (d / "nocryst.pdb").write_text("".join(x for x in lines if not x.startswith("CRYST1")))
    first_ec = [k for k in ec if lines[k][22:26] == lines[ec[0]][22:26]]
    (d / "unkres.pdb").write_text("".join(x[:17] + " XX" + x[20:] if k in first_ec else x for k, x in enumerate(lines)))
    (d / "unkelem.pdb").write_text("".join(_edit_line(lines, ec[1], lambda x: x[:76] + "Xx" + x[78:])))
    (d / "trunc.pdb").write_text("".join(lines[:atoms[len(atoms) // 2]]) + lines[atoms[len(atoms) // 2]][:30])
    (d / "empty.cif").write_text("")
    (d / "random.cif").write_text("hello\nworld\n")


def _write_yaml_variants(d: Path, base: dict) -> None:
    def put(name, **changes):
        cfg = yaml.safe_load(yaml.safe_dump(base))
        for key, value in changes.items():
            section, _, k = key.partition("__")
            cfg[section][k] = value
        (d / name).write_text(yaml.safe_dump(cfg))

    (d / "notyaml.yaml").write_text("data: [unclosed\n  train: x\n")
    (d / "list.yaml").write_text(yaml.safe_dump([1, 2]))
    put("unknown.yaml", training__learning_rate=0.01)
    put("epochs.yaml", training__epochs="ten")
    put("batch.yaml", training__batch_size=0)
    put("lr.yaml", training__lr=-1)
    put("nodata.yaml", data__train=["missing.xyz"])
    for name in ("nonnum", "nanf", "short"):
        put(f"data_{name}.yaml", data__train=[str(d / f"{name}.xyz")], output__dir=str(d / f"run_{name}"))
    ft = dict(base, output={"dir": str(d / "ft_run")})
    for name, start in (("ft_missing.yaml", "missing.pt"), ("ft_random.yaml", str(d / "random.pt"))):
        (d / name).write_text(yaml.safe_dump(dict(ft, finetune={"start": start, "old_data": [str(d / "frames.xyz")]})))


def _write_model_variants(d: Path) -> None:
    (d / "empty.pt").write_bytes(b"")
    (d / "random.pt").write_bytes(np.random.default_rng(1).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    with zipfile.ZipFile(d / "zip.pt", "w") as z:
        z.writestr("notes/readme.txt", "a zip, not a model")


@pytest.fixture(scope="module")
def d(tmp_path_factory):
    """A folder with good inputs (frames, config, a 1-epoch run, its deployed model, a box)
    and every bad variant of the table."""
    from cgaa.train.config import load_config
    from cgaa.train.deploy import deploy_checkpoint
    from cgaa.train.trainer import train

    d = tmp_path_factory.mktemp("bad_input")
    write_dataset(d / "frames.xyz", COUNTS, 6, seed=1, box=14.0)
    base = {"data": {"train": ["frames.xyz"], "val_fraction": 0.2, "test_fraction": 0.0}, "model": TINY_MODEL,
            "training": {"epochs": 1, "batch_size": 2, "lr": 0.01, "ema_decay": 0.5, "dtype": "float64"},
            "output": {"dir": "run"}}
    (d / "cfg.yaml").write_text(yaml.safe_dump(base))
    res = train(load_config(d / "cfg.yaml"), progress=False)
    deploy_checkpoint(res.best_checkpoint, d / "model.pt")
    _write_extxyz_variants(d, d / "frames.xyz")
    _write_box_variants(d)
    _write_yaml_variants(d, base)
    _write_model_variants(d)
    (d / "outdir").mkdir()
    (d / "ev").mkdir()
    (d / "ev" / "metrics.json").write_text('{"previous": "evaluation"}\n')
    (d / "old.xyz").write_text("previous labels\n")
    return d


# ------------------------------------------------------------------ the table
@dataclass
class Case:
    id: str
    argv: Sequence[str]                 # {d}: the fixture folder
    names: Sequence[str]                # what the one line must name (file, frame, atom, key, flag)
    keep: Tuple[str, ...] = ()          # files (in {d}) that must be byte-identical afterwards
    code: int = 2


BOX = ("--cutoff", "0.5", "--frames", "1", "--equil-steps", "0", "--stride", "1", "--no-stress", "--no-progress")
SIM = ("--model", "{d}/model.pt", "--steps", "2", "--no-progress")
LJ = ("-c", "lj", "--max-force", "1e12", "--no-progress")

CASES = [
    # PDB / mmCIF box files
    Case("box-missing", ["sample", "{d}/missing.pdb", "-o", "{d}/s.xyz", *BOX], ["missing.pdb", "does not exist"]),
    Case("box-empty", ["sample", "{d}/empty.pdb", "-o", "{d}/s.xyz", *BOX], ["empty.pdb", "empty file"]),
    Case("box-not-pdb", ["sample", "{d}/random.pdb", "-o", "{d}/s.xyz", *BOX], ["random.pdb", "no ATOM/HETATM"]),
    Case("box-no-cryst1", ["sample", "{d}/nocryst.pdb", "-o", "{d}/s.xyz", *BOX], ["nocryst.pdb", "CRYST1"]),
    Case("box-unknown-residue", ["sample", "{d}/unkres.pdb", "-o", "{d}/s.xyz", *BOX], ["unkres.pdb", "XX"]),
    Case("box-unknown-element", ["sample", "{d}/unkelem.pdb", "-o", "{d}/s.xyz", *BOX],
         ["unkelem.pdb", "line ", "atom ", "'Xx'"]),
    Case("box-truncated", ["sample", "{d}/trunc.pdb", "-o", "{d}/s.xyz", *BOX], ["trunc.pdb", "line ", "atom ", "truncated"]),
    Case("cif-empty", ["sample", "{d}/empty.cif", "-o", "{d}/s.xyz", *BOX], ["empty.cif", "empty file"]),
    Case("cif-not-cif", ["sample", "{d}/random.cif", "-o", "{d}/s.xyz", *BOX], ["random.cif", "data_"]),
    Case("simulate-box-empty", ["simulate", "{d}/empty.pdb", "--out", "{d}/sim1", *SIM], ["empty.pdb", "empty file"]),
    Case("simulate-box-no-cryst1", ["simulate", "{d}/nocryst.pdb", "--out", "{d}/sim2", *SIM], ["nocryst.pdb", "CRYST1"]),
    Case("simulate-box-truncated", ["simulate", "{d}/trunc.pdb", "--out", "{d}/sim3", *SIM],
         ["trunc.pdb", "line ", "atom ", "truncated"]),
    Case("analyze-top-not-pdb", ["analyze", "--traj", "{d}/box.pdb", "--top", "{d}/random.pdb", "--out", "{d}/an1"],
         ["random.pdb"]),
    Case("analyze-traj-missing", ["analyze", "--traj", "{d}/missing.dcd", "--top", "{d}/box.pdb", "--out", "{d}/an2"],
         ["missing.dcd"]),
    # extxyz
    Case("xyz-missing", ["label", "{d}/missing.xyz", "-o", "{d}/l.xyz", *LJ], ["missing.xyz", "does not exist"]),
    Case("xyz-empty", ["label", "{d}/empty.xyz", "-o", "{d}/l.xyz", *LJ], ["empty.xyz", "empty file"]),
    Case("xyz-not-xyz", ["label", "{d}/random.xyz", "-o", "{d}/l.xyz", *LJ], ["random.xyz", "frame 0", "line 1"]),
    Case("xyz-wrong-atom-count", ["label", "{d}/count.xyz", "-o", "{d}/l.xyz", *LJ],
         ["count.xyz", "frame 1", "atom 18", "line 41", "atom count"]),
    Case("xyz-truncated", ["label", "{d}/trunc.xyz", "-o", "{d}/l.xyz", *LJ], ["trunc.xyz", "frame 5", "truncated"]),
    Case("xyz-non-numeric", ["train", "{d}/data_nonnum.yaml", "--no-progress"],
         ["nonnum.xyz", "frame 1", "atom 3", "line 26", "'abc'"]),
    Case("xyz-nan-forces", ["train", "{d}/data_nanf.yaml", "--no-progress"], ["nanf.xyz", "frame 1", "NaN", "[3]"]),
    Case("xyz-forces-short-line", ["train", "{d}/data_short.yaml", "--no-progress"],
         ["short.xyz", "frame 1", "atom 3", "line 26", "columns"]),
    Case("xyz-forces-wrong-shape", ["evaluate", "{d}/model.pt", "{d}/forces2.xyz", "--out", "{d}/ev"],
         ["forces2.xyz", "frame 1", "forces have shape"], keep=("ev/metrics.json",)),
    Case("xyz-no-energy", ["evaluate", "{d}/model.pt", "{d}/noenergy.xyz", "--out", "{d}/ev"],
         ["noenergy.xyz", "frame 1", "no energy"], keep=("ev/metrics.json",)),
    Case("xyz-mixed-atom-counts", ["evaluate", "{d}/model.pt", "{d}/mixed.xyz", "--out", "{d}/ev"],
         ["mixed.xyz", "frame 2", "grain 1"], keep=("ev/metrics.json",)),
    # YAML configs
    Case("yaml-not-yaml", ["train", "{d}/notyaml.yaml"], ["notyaml.yaml", "not valid YAML", "line 2"]),
    Case("yaml-list", ["train", "{d}/list.yaml"], ["list.yaml", "mapping", "list"]),
    Case("yaml-unknown-key", ["train", "{d}/unknown.yaml"], ["unknown.yaml", "training.learning_rate"]),
    Case("yaml-wrong-type", ["train", "{d}/epochs.yaml"], ["epochs.yaml", "training.epochs", "'ten'"]),
    Case("yaml-zero", ["train", "{d}/batch.yaml"], ["batch.yaml", "training.batch_size", "got 0"]),
    Case("yaml-negative", ["train", "{d}/lr.yaml"], ["lr.yaml", "training.lr", "got -1"]),
    Case("yaml-missing-data", ["train", "{d}/nodata.yaml"], ["nodata.yaml", "data.train[0]", "missing.xyz"]),
    Case("yaml-missing-start", ["finetune", "{d}/ft_missing.yaml", "--no-progress"],
         ["ft_missing.yaml", "finetune.start", "missing.pt"]),
    Case("yaml-recipe-not-yaml", ["build", "--recipe", "{d}/notyaml.yaml", "-o", "{d}/b.pdb"],
         ["notyaml.yaml", "not valid YAML", "line 2"]),
    Case("yaml-recipe-list", ["build", "--recipe", "{d}/list.yaml", "-o", "{d}/b.pdb"], ["list.yaml", "mapping"]),
    # model files
    Case("model-missing", ["evaluate", "{d}/missing.pt", "{d}/frames.xyz", "--out", "{d}/ev"], ["missing.pt"],
         keep=("ev/metrics.json",)),
    Case("model-empty", ["evaluate", "{d}/empty.pt", "{d}/frames.xyz", "--out", "{d}/ev"], ["empty.pt", "empty"]),
    Case("model-random", ["evaluate", "{d}/random.pt", "{d}/frames.xyz", "--out", "{d}/ev"],
         ["random.pt", "not a cgaa model file"]),
    Case("model-zip", ["evaluate", "{d}/zip.pt", "{d}/frames.xyz", "--out", "{d}/ev"], ["zip.pt", "not a TorchScript"]),
    Case("model-is-checkpoint", ["evaluate", "{d}/run/best.pt", "{d}/frames.xyz", "--out", "{d}/ev"],
         ["best.pt", "training checkpoint", "cgaa deploy"]),
    Case("simulate-model-is-checkpoint", ["simulate", "{d}/box.pdb", "--out", "{d}/sim4", "--model", "{d}/run/best.pt",
                                          "--steps", "2", "--no-progress"], ["best.pt", "cgaa deploy"]),
    Case("deploy-a-deployed-model", ["deploy", "{d}/model.pt", "-o", "{d}/d.pt"], ["model.pt", "already a deployed model"]),
    Case("checkpoint-missing", ["deploy", "{d}/missing.pt", "-o", "{d}/d.pt"], ["missing.pt"]),
    Case("checkpoint-empty", ["deploy", "{d}/empty.pt", "-o", "{d}/d.pt"], ["empty.pt", "empty"]),
    Case("checkpoint-random", ["deploy", "{d}/random.pt", "-o", "{d}/d.pt"], ["random.pt", "not a cgaa training checkpoint"]),
    Case("checkpoint-zip", ["deploy", "{d}/zip.pt", "-o", "{d}/d.pt"], ["zip.pt", "not a torch file"]),
    Case("finetune-start-random", ["finetune", "{d}/ft_random.yaml", "--no-progress"],
         ["finetune.start", "random.pt", "neither a deployed cgaa model nor a training checkpoint"]),
    # outputs and run directories
    Case("out-missing-folder", ["deploy", "{d}/run/best.pt", "-o", "{d}/nofolder/d.pt"], ["-o", "nofolder", "does not exist"]),
    Case("out-is-directory", ["deploy", "{d}/run/best.pt", "-o", "{d}/outdir"], ["-o", "outdir", "is a directory"]),
    Case("out-is-the-checkpoint", ["deploy", "{d}/run/best.pt", "-o", "{d}/run/best.pt"], ["-o", "best.pt", "checkpoint itself"],
         keep=("run/best.pt",)),
    Case("sample-out-is-directory", ["sample", "{d}/box.pdb", "-o", "{d}/outdir", *BOX], ["-o", "outdir", "is a directory"]),
    Case("label-out-missing-folder", ["label", "{d}/frames.xyz", "-o", "{d}/nofolder/l.xyz", *LJ],
         ["-o", "nofolder", "does not exist"]),
    Case("build-out-missing-folder", ["build", "--recipe", "lipf6-ec-emc-1m", "--atoms", "100", "-o", "{d}/nofolder/b.pdb"],
         ["-o", "nofolder", "does not exist"]),
    Case("evaluate-out-is-a-file", ["evaluate", "{d}/model.pt", "{d}/frames.xyz", "--out", "{d}/old.xyz"],
         ["--out", "old.xyz", "is a file"], keep=("old.xyz",)),
    Case("label-fails-on-frame-2", ["label", "{d}/frames.xyz", "-o", "{d}/old.xyz", "-c", "test_bad_input:flaky_lj",
                                    "--max-force", "1e12", "--no-progress"],
         ["frames.xyz frame 2", "SCF did not converge", "old.xyz.partial"], keep=("old.xyz",)),
    Case("train-into-existing-run", ["train", "{d}/cfg.yaml", "--no-progress"],
         ["cfg.yaml", "already holds a training run", "--resume", "--overwrite"],
         keep=("run/last.pt", "run/best.pt", "run/metrics.csv")),
]


def _one_line_error(capsys, argv) -> Tuple[int, str]:
    capsys.readouterr()
    rc = main(list(argv))
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if x.strip()]
    assert "Traceback" not in err, err
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{err}"
    return rc, lines[0]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_gives_one_line_naming_the_culprit(case, d, capsys):
    argv = [a.format(d=d) for a in case.argv]
    before = {k: (d / k).read_bytes() for k in case.keep}
    rc, line = _one_line_error(capsys, argv)
    assert rc == case.code, line
    assert line.startswith(f"cgaa {argv[0]}: error: "), line
    for name in case.names:
        assert name in line, f"{name!r} not in: {line}"
    for k, data in before.items():
        assert (d / k).read_bytes() == data, f"{k} changed"


def test_every_class_of_the_issue_is_in_the_table():
    ids = {c.id for c in CASES}
    for prefix in ("box-", "cif-", "xyz-", "yaml-", "model-", "checkpoint-", "out-"):
        assert any(i.startswith(prefix) for i in ids), prefix
    commands = {c.argv[0] for c in CASES}
    assert {"build", "sample", "label", "train", "evaluate", "finetune", "deploy", "simulate", "analyze"} <= commands


def test_label_resume_refuses_a_partial_file_of_other_frames(d, capsys):
    """A partial file whose frame 1 has another atom count than the input's frame 1 belongs to
    another input: refused, naming it and the frame, and left as it is."""
    import ase.io

    frames = ase.io.read(str(d / "frames.xyz"), index=":2")
    for f in frames:
        f.info["teacher"] = "lj"
    del frames[1][[0]]
    out = d / "resumed.xyz"
    partial = d / "resumed.xyz.partial"
    ase.io.write(str(partial), frames, format="extxyz")
    before = partial.read_bytes()
    rc, line = _one_line_error(capsys, ["label", str(d / "frames.xyz"), "-o", str(out), *LJ])
    assert rc == 2
    assert "resumed.xyz.partial frame 1" in line and "another input" in line
    assert partial.read_bytes() == before and not out.exists()


def test_no_space_left_keeps_the_previous_model(d, capsys, monkeypatch):
    """ENOSPC while `cgaa deploy` writes over an existing model: one line naming the file, and the
    old model byte-identical (the write goes to a temporary file first)."""
    import torch

    target = d / "kept.pt"
    target.write_bytes((d / "model.pt").read_bytes())
    before = target.read_bytes()

    def full_disk(module, path, **kw):
        Path(path).write_bytes(b"partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(torch.jit, "save", full_disk)
    rc, line = _one_line_error(capsys, ["deploy", str(d / "run" / "best.pt"), "-o", str(target)])
    assert rc == 2 and "No space left on device" in line and "kept.pt" in line
    assert target.read_bytes() == before
    assert not [p for p in d.iterdir() if p.name.startswith(".kept.pt.")]  # no temporary file left


def test_debug_reraises_with_the_traceback(d, monkeypatch):
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        main(["--debug", "train", str(d / "missing.yaml")])
    monkeypatch.setenv("CGAA_DEBUG", "1")
    with pytest.raises(ValueError, match=r"training\.epochs must be an integer"):
        main(["train", str(d / "epochs.yaml")])


def test_library_calls_give_the_same_messages(d):
    """The checks live in the library: a notebook gets the CLI's message."""
    from cgaa.core.extxyz import FrameError, read_frames
    from cgaa.core.modelfile import load_model
    from cgaa.systems.boxfile import read_box
    from cgaa.train.config import load_config
    from cgaa.train.trainer import train

    with pytest.raises(FrameError, match=r"count\.xyz: frame 1, atom 18 \(line 41\)"):
        read_frames(d / "count.xyz")
    with pytest.raises(ValueError, match=r"best\.pt is a training checkpoint.*cgaa deploy"):
        load_model(d / "run" / "best.pt")
    with pytest.raises(ValueError, match=r"unkelem\.pdb line \d+, atom \d+ \(C1 of EC \d+\): unknown element 'Xx'"):
        read_box(d / "unkelem.pdb")
    with pytest.raises(ValueError, match=r"training\.lr must be > 0, got -1"):
        load_config(d / "lr.yaml")
    with pytest.raises(FileExistsError, match="already holds a training run"):
        train(load_config(d / "cfg.yaml"), progress=False)
