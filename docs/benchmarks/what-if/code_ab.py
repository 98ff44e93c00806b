"""Energy+forces of two deployed model files, interleaved in one process (1 thread): the
OpenMM-facing module of each (cgaa.openmm.wrapper) with trainable and with frozen weights.

usage: python code_ab.py OLD.pt NEW.pt BOX.pdb
The two files hold the same weights scripted by different cgaa code (``cgaa deploy OLD.pt
--rescript -o NEW.pt``), so the difference is the code's. Prints the median CPU time of 40 calls
each (8 rounds x 5, positions jittered by 1e-3 nm) and the largest force difference.
"""
import sys

import numpy as np
import torch
from openmm import app

from cgaa.bench.speed import box_tensors_nm, cpu_summary_ms, interleaved_cpu_times
from cgaa.openmm.torchforce import resolve_model, topology_inputs
from cgaa.openmm.wrapper import script_force_module


def main() -> None:
    torch.set_num_threads(1)
    old_path, new_path, box_path = sys.argv[1:4]
    pdb = app.PDBFile(box_path)
    _, _, sp, gidx, gt = topology_inputs(pdb.topology, resolve_model(old_path), None)
    pos, box = box_tensors_nm(pdb)
    mods = {}
    for tag, path in (("old code", old_path), ("new code", new_path)):
        for frozen in (False, True):
            core = torch.jit.load(path)
            for p in core.parameters():
                p.requires_grad_(not frozen)
            mods[f"{tag}, {'frozen' if frozen else 'trainable'} weights"] = script_force_module(core, sp, gidx, gt)
    rng = np.random.default_rng(0)

    def jittered():
        return pos + torch.tensor(rng.normal(scale=1e-3, size=pos.shape), dtype=torch.float32), box

    times = interleaved_cpu_times(mods, rounds=8, per_round=5, warmup=5, make_args=jittered)
    for k, ts in times.items():
        print(f"{k:32s} {cpu_summary_ms(ts)}")
    f = [list(mods.values())[i](pos, box)[1] for i in (1, 3)]
    print(f"max |F_old - F_new| {float((f[0] - f[1]).abs().max()):.3g} kJ/mol/nm (max |F| {float(f[0].abs().max()):.3g})")


if __name__ == "__main__":
    main()
