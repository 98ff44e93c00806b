"""The model on a CUDA GPU computes what it computes on the CPU (skipped without CUDA).

The OpenMM CUDA-platform tests (test_openmm, test_simulate) also need openmmtorch; these
need torch and vesin-torch only, so they run wherever torch sees a GPU.
"""
from __future__ import annotations

import pytest
import torch

from core_utils import build, rel_err, run

pytestmark = pytest.mark.cuda


def _pair_set(pairs: torch.Tensor, shifts: torch.Tensor) -> set:
    return {(int(i), int(j), *(int(round(float(s))) for s in sh))
            for (i, j), sh in zip(pairs.t().cpu(), shifts.cpu())}


def test_neighbor_pairs_on_cuda_match_cpu(triclinic_electrolyte_box):
    """vesin's CUDA cell list finds the same (i, j, lattice shift) pairs as its CPU one."""
    from cgaa.core.neighbors import neighbor_pairs

    atoms, _ = triclinic_electrolyte_box
    pos = torch.tensor(atoms.positions, dtype=torch.float64)
    cell = torch.tensor(atoms.cell[:], dtype=torch.float64)
    cpu = neighbor_pairs(pos, cell, 5.0)
    gpu = neighbor_pairs(pos.cuda(), cell.cuda(), 5.0)
    assert gpu[0].device.type == "cuda"
    assert cpu[0].shape[1] > 0
    assert _pair_set(*gpu) == _pair_set(*cpu)


@pytest.mark.parametrize("all_atom", [False, True], ids=["cg", "allatom"])
def test_model_on_cuda_matches_cpu_float64(triclinic_electrolyte_box, all_atom):
    """Energy, forces (inter + intra) and virial of the float64 model agree to rounding."""
    atoms, _ = triclinic_electrolyte_box
    model, _, kw = build(atoms, "conservative", all_atom)
    ref = run(model, kw, compute_virial=True)
    gpu_model = model.to("cuda")
    gkw = {k: (v.cuda() if isinstance(v, torch.Tensor) else v) for k, v in kw.items()}
    out = run(gpu_model, gkw, compute_virial=True)
    assert out["forces"].device.type == "cuda"
    assert rel_err(out["energy"].cpu(), ref["energy"]) < 1e-10
    for key in ("forces", "virial"):
        assert rel_err(out[key].cpu(), ref[key]) < 1e-9, key


def test_shipped_model_on_cuda_matches_cpu(electrolyte_box):
    """The deployed (TorchScript) shipped model loaded onto the GPU gives the CPU's energy
    and forces to float32 rounding."""
    from cgaa.core.modelfile import load_model
    from cgaa.core.inputs import inputs_from_atoms
    from cgaa.core.resources import forcefields_dir

    atoms, _ = electrolyte_box
    path = forcefields_dir() / "models" / "lipf6-ec-emc-1m.pt"
    outs = {}
    for dev in ("cpu", "cuda"):
        deployed = load_model(path, dev)
        kw = inputs_from_atoms(atoms, deployed.config, device=dev)
        out = deployed.module(kw["pos"], kw["species"], kw["grain_index"], kw["grain_type"], kw["cell"], True, False)
        outs[dev] = {k: out[k].detach().cpu().double() for k in ("energy", "forces")}
    assert torch.isfinite(outs["cuda"]["forces"]).all()
    assert abs(float(outs["cuda"]["energy"] - outs["cpu"]["energy"])) < 1e-4 * len(atoms)
    assert rel_err(outs["cuda"]["forces"], outs["cpu"]["forces"]) < 1e-4


def test_bench_speed_runs_untrained_models_on_cuda(tmp_path):
    """`cgaa bench speed --device cuda`: the untrained CGAA and all-atom models are built on
    the GPU (they were once left on the CPU: 'indices should be ... on the same device'),
    and the report gives CUDA max allocated memory."""
    from cgaa.bench.speed import run_speed

    rep = run_speed([400], tmp_path, engines=("cgaa", "allatom"), tasks=("eval",), model="untrained",
                    cutoff=5.0, allatom_cutoff=4.0, device="cuda", threads=1, warmup=1, repeats=3,
                    budget_s=0.1, command="pytest", progress=False)
    for e in rep["results"]:
        assert e["status"] == "ok", e
        assert e["energy_finite"] and e["forces_finite"]
        assert e["cuda_max_allocated_MiB"] > 0
        assert e["profile"]["cuda_kernels_per_call"] > 0 and e["profile"]["cuda_busy_ms_per_call"] > 0


def test_training_on_cuda_matches_cpu_and_deploys_for_the_cpu(tmp_path):
    """`training.device: cuda` trains the float64 model to the CPU's weights (two epochs,
    rounding-level differences only), and its checkpoint deploys to a model that runs on a
    machine without a GPU."""
    import yaml

    from cgaa.train.deploy import deploy_checkpoint
    from cgaa.core.modelfile import load_model
    from cgaa.core.inputs import inputs_from_atoms
    from cgaa.train.config import load_config
    from cgaa.train.trainer import load_checkpoint, train
    from toy_teacher import write_dataset

    data = write_dataset(tmp_path / "frames.xyz", {"Li": 2, "PF6": 2, "EC": 4, "EMC": 3}, 10, seed=1)
    weights, losses = {}, {}
    for dev in ("cpu", "cuda"):
        cfg = {"data": {"train": [str(data)], "val_fraction": 0.2, "test_fraction": 0.2},
               "model": {"cutoff": 5.0, "channels": 8, "num_layers": 1, "num_basis": 6,
                         "radial_hidden": 16, "lmax": 1},
               "training": {"epochs": 2, "batch_size": 2, "lr": 0.01, "ema_decay": 0.5, "seed": 3,
                            "dtype": "float64", "device": dev, "early_stopping_patience": 0},
               "output": {"dir": str(tmp_path / dev)}}
        path = tmp_path / f"{dev}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        res = train(load_config(path), progress=False)
        ckpt = load_checkpoint(res.last_checkpoint)
        weights[dev] = ckpt["model"]
        losses[dev] = [h["val_loss"] for h in ckpt["history"]]
    assert all(w.device.type == "cpu" for w in weights["cuda"].values())   # checkpoints load anywhere
    assert losses["cuda"] == pytest.approx(losses["cpu"], rel=1e-6)
    for k, w in weights["cpu"].items():
        if w.numel():
            assert rel_err(weights["cuda"][k].double(), w.double()) < 1e-6, k
    out_path, _ = deploy_checkpoint(tmp_path / "cuda" / "best.pt", tmp_path / "gpu-trained.pt")
    deployed = load_model(out_path, "cpu")
    from ase.io import read

    atoms = read(data, index=0)
    kw = inputs_from_atoms(atoms, deployed.config, device="cpu")
    out = deployed.module(kw["pos"], kw["species"], kw["grain_index"], kw["grain_type"], kw["cell"], True, False)
    assert torch.isfinite(out["forces"]).all() and out["forces"].device.type == "cpu"
