"""One training step (energy + forces with create_graph, loss backward) of a deployed model's
architecture and weights on a box, interleaved: Gaussian basis with its subnormal tails (the code
before 2026-11-29) and cut below exp(-30). usage: python train_basis_ab.py MODEL.pt BOX.pdb"""
import sys

import torch
from openmm import app

from cgaa.bench.speed import cpu_summary_ms, interleaved_cpu_times
from cgaa.core.modelfile import load_model
from cgaa.core.grains import grains_from_topology
from cgaa.core.inputs import make_inputs
from cgaa.core.nn import radial
from cgaa.core.units import openmm_lengths_A


def old_forward(self, r):
    x = (r.unsqueeze(-1) - self.centers) / self.width
    return torch.exp(-x * x)


def main() -> None:
    torch.set_num_threads(1)
    pdb = app.PDBFile(sys.argv[2])
    dep = load_model(sys.argv[1])
    gm = grains_from_topology(pdb.topology)
    numbers = [a.element.atomic_number for a in pdb.topology.atoms()]
    kw = make_inputs(openmm_lengths_A(pdb.getPositions(asNumpy=True)), numbers, gm, dep.config,
                     openmm_lengths_A(pdb.topology.getPeriodicBoxVectors()), dtype=torch.float32)
    new_forward = radial.GaussianBasis.forward
    model = dep.to_eager().train()

    def step_with(forward):
        def step():
            radial.GaussianBasis.forward = forward
            out = model(**kw, compute_forces=True, create_graph=True)
            loss = out["energy"] ** 2 * 1e-6 + out["forces"].pow(2).mean()
            loss.backward()
            model.zero_grad(set_to_none=True)
        return step

    calls = {"uncut Gaussian tails (old)": step_with(old_forward), "cut below 9e-14 (new)": step_with(new_forward)}
    times = interleaved_cpu_times(calls, rounds=4, per_round=3, warmup=2)
    for k, ts in times.items():
        print(f"{k:28s} {cpu_summary_ms(ts)} per training step (1 frame)")


if __name__ == "__main__":
    main()
