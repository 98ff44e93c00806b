"""One training step (energy + forces with create_graph, loss backward) of a deployed model's
architecture and weights on a box, interleaved: Gaussian basis with its subnormal tails (the code
before 2026-11-29) and cut below exp(-30). usage: python train_basis_ab.py MODEL.pt BOX.pdb"""
import sys, time
import numpy as np
import torch
from openmm import app, unit
from cgaa.deploy import load_model
from cgaa.grains import grains_from_topology
from cgaa.inputs import make_inputs
from cgaa.nn import radial
torch.set_num_threads(1)
pdb = app.PDBFile(sys.argv[2])
dep = load_model(sys.argv[1])
gm = grains_from_topology(pdb.topology)
numbers = [a.element.atomic_number for a in pdb.topology.atoms()]
pos = pdb.getPositions(asNumpy=True).value_in_unit(unit.angstrom)
cell = np.array([list(v) for v in pdb.topology.getPeriodicBoxVectors().value_in_unit(unit.angstrom)])
kw = make_inputs(pos, numbers, gm, dep.config, cell, dtype=torch.float32)
new_forward = radial.GaussianBasis.forward
def old_forward(self, r):
    x = (r.unsqueeze(-1) - self.centers) / self.width
    return torch.exp(-x * x)
model = dep.to_eager().train()
def step():
    out = model(**kw, compute_forces=True, create_graph=True)
    loss = out["energy"] ** 2 * 1e-6 + out["forces"].pow(2).mean()
    loss.backward()
    model.zero_grad(set_to_none=True)
times = {"uncut Gaussian tails (old)": [], "cut below 9e-14 (new)": []}
fwd = {"uncut Gaussian tails (old)": old_forward, "cut below 9e-14 (new)": new_forward}
for k in times:
    radial.GaussianBasis.forward = fwd[k]; step(); step()
for _ in range(4):
    for k in times:
        radial.GaussianBasis.forward = fwd[k]
        for _ in range(3):
            t = time.process_time(); step(); times[k].append(time.process_time() - t)
for k, ts in times.items():
    print(f"{k:28s} median {1000*np.median(ts):.0f} ms per training step (1 frame, 1000 atoms)")
