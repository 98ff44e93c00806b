"""Interleaved timing of frozen, untrained variants of the shipped architecture (the OpenMM-facing
module, 1 thread). usage: python variants_ab.py BOX.pdb NAME=KEY:VALUE[,KEY:VALUE] ...
e.g. nointra=intra_layers:0 nopair=pair_cutoff:0 (values are JSON; "shipped" is always timed)."""
import json
import sys

import numpy as np
import torch
from openmm import app

from cgaa.bench.speed import box_tensors_nm, cpu_summary_ms, interleaved_cpu_times
from cgaa.core.modelfile import inference_only, read_metadata
from cgaa.core.grains import grains_from_topology
from cgaa.core.inputs import grain_type_indices, species_indices
from cgaa.core.model import CGAAModel, ModelConfig
from cgaa.openmm.torchforce import default_model_path
from cgaa.openmm.wrapper import script_force_module


def main() -> None:
    torch.set_num_threads(1)
    pdb = app.PDBFile(sys.argv[1])
    base = read_metadata(default_model_path())["config"]
    gm = grains_from_topology(pdb.topology)
    numbers = [a.element.atomic_number for a in pdb.topology.atoms()]
    pos, box = box_tensors_nm(pdb)
    variants = {"shipped": {}}
    for arg in sys.argv[2:]:
        name, kv = arg.split("=", 1)
        variants[name] = {k: json.loads(v) for k, v in (x.split(":", 1) for x in kv.split(","))}
    mods = {}
    for name, over in variants.items():
        cfg = ModelConfig.from_dict({**base, **over})
        torch.manual_seed(0)
        m = inference_only(torch.jit.script(CGAAModel(cfg).eval()))
        sp = species_indices(numbers, cfg.elements)
        gt = grain_type_indices(gm, cfg.grain_types)
        mods[name] = script_force_module(m, sp, gm.grain_index, gt, None, True, True)
    rng = np.random.default_rng(0)

    def jittered():
        return pos + torch.tensor(rng.normal(scale=1e-3, size=pos.shape), dtype=torch.float32), box

    times = interleaved_cpu_times(mods, rounds=6, per_round=5, warmup=5, make_args=jittered)
    for k, ts in times.items():
        print(f"{k:20s} {variants[k]} {cpu_summary_ms(ts)}")


if __name__ == "__main__":
    main()
