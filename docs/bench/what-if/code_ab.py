"""Energy+forces of two deployed model files, interleaved in one process (1 thread): the
OpenMM-facing module of each (cgaa.openmm.wrapper) with trainable and with frozen weights.

usage: python code_ab.py OLD.pt NEW.pt BOX.pdb
The two files hold the same weights scripted by different cgaa code (``cgaa deploy OLD.pt
--rescript -o NEW.pt``), so the difference is the code's. Prints the median CPU time of 40 calls
each (8 rounds x 5, positions jittered by 1e-3 nm) and the largest force difference.
"""
import sys
import time

import numpy as np
import torch
from openmm import app, unit

from cgaa.openmm.system import _topology_inputs, resolve_model
from cgaa.openmm.wrapper import script_force_module

torch.set_num_threads(1)
old_path, new_path, box_path = sys.argv[1:4]
pdb = app.PDBFile(box_path)
_, _, sp, gidx, gt = _topology_inputs(pdb.topology, resolve_model(old_path), None)
pos = torch.tensor(pdb.getPositions(asNumpy=True).value_in_unit(unit.nanometer), dtype=torch.float32)
box = torch.tensor([[float(x) for x in v] for v in pdb.topology.getPeriodicBoxVectors().value_in_unit(unit.nanometer)])
mods = {}
for tag, path in (("old code", old_path), ("new code", new_path)):
    for frozen in (False, True):
        core = torch.jit.load(path)
        for p in core.parameters():
            p.requires_grad_(not frozen)
        mods[f"{tag}, {'frozen' if frozen else 'trainable'} weights"] = script_force_module(core, sp, gidx, gt)
rng = np.random.default_rng(0)
for m in mods.values():
    for _ in range(5):
        m(pos, box)
times = {k: [] for k in mods}
for _ in range(8):
    for k, m in mods.items():
        for _ in range(5):
            p = pos + torch.tensor(rng.normal(scale=1e-3, size=pos.shape), dtype=torch.float32)
            t = time.process_time()
            m(p, box)
            times[k].append(time.process_time() - t)
for k, ts in times.items():
    print(f"{k:32s} median {1000 * np.median(ts):.1f} ms CPU (quartiles {1000 * np.percentile(ts, 25):.1f}-"
          f"{1000 * np.percentile(ts, 75):.1f})")
f = [list(mods.values())[i](pos, box)[1] for i in (1, 3)]
print(f"max |F_old - F_new| {float((f[0] - f[1]).abs().max()):.3g} kJ/mol/nm (max |F| {float(f[0].abs().max()):.3g})")
