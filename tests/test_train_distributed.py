"""Data-parallel training (torchrun, gloo, 2 CPU processes) equals one process with the same global batch."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
import yaml

from cgaa.train.trainer import load_checkpoint
from toy_teacher import write_dataset

MODEL = {"cutoff": 5.0, "channels": 8, "num_layers": 1, "num_basis": 6, "radial_hidden": 16, "lmax": 1,
         "intra_num_basis": 8}


def _run(cmd, cwd):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


@pytest.mark.slow
def test_two_process_gloo_matches_single_process(tmp_path):
    data = write_dataset(tmp_path / "frames.xyz", {"Li": 1, "PF6": 1, "EC": 3, "EMC": 2}, 10, seed=5)
    weights = {}
    for name, launcher in (("single", [sys.executable, "-m", "cgaa"]),
                           ("dist", [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                     "--nproc_per_node", "2", "-m", "cgaa"])):
        cfg = {"data": {"train": [str(data)], "val_fraction": 0.2, "test_fraction": 0.0},
               "model": MODEL,
               "training": {"epochs": 2, "batch_size": 4, "lr": 0.01, "seed": 1, "ema_decay": 0.5,
                            "dtype": "float64", "grad_clip": 0.0},
               "output": {"dir": str(tmp_path / name)}}
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        _run(launcher + ["train", str(path), "--no-progress"], tmp_path)
        weights[name] = load_checkpoint(tmp_path / name / "last.pt")["model"]
    a, b = weights["single"], weights["dist"]
    for k in a:
        if a[k].is_floating_point():
            assert torch.allclose(a[k], b[k], rtol=1e-9, atol=1e-10), k
