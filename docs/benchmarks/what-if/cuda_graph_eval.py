"""What a fixed-shape, sync-free evaluation would buy on a GPU: the network on fixed edges,
captured once as a CUDA graph and replayed.

For each box: the shipped model's weights in an eager ``CGAAModel``; its edges found once
(``CGAAModel.edges``: the neighbour search and the input checks, which read sizes back to the
host, stay outside); then energy + forces (autograd) on those edges

* ``deployed``: the deployed TorchScript model's whole evaluation, as ``cgaa bench speed`` times it;
* ``eager``: the eager model on the fixed edges (``grain_centers`` + ``energy_from_edges`` + grad);
* ``graph``: the same captured as one CUDA graph (``torch.cuda.graph``) and replayed, positions
  copied into its static input first (CUDA only).

Energies and forces of ``eager`` and ``graph`` are checked against ``deployed``. An MD engine
would also need the edges to stay valid between rebuilds (a skin, lists padded to a capacity
with masked entries), which this measures no cost for: it is the ceiling of that design.

    python docs/benchmarks/what-if/cuda_graph_eval.py BOX.pdb [BOX.pdb ...] [--device cuda] [--calls 30]
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from cgaa.systems.boxfile import read_box
from cgaa.core.modelfile import load_model
from cgaa.core.grains import grains_from_topology
from cgaa.core.inputs import make_inputs
from cgaa.core.model import grain_centers
from cgaa.core.resources import forcefields_dir
from cgaa.core.units import openmm_lengths_A


def median_ms(fn, calls: int, cuda: bool) -> float:
    """Median wall milliseconds of ``calls`` calls after 5 untimed ones (synchronised on CUDA)."""
    for _ in range(5):
        fn()
    out = []
    for _ in range(calls):
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if cuda:
            torch.cuda.synchronize()
        out.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(out))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("boxes", nargs="+")
    ap.add_argument("--model", default=str(forcefields_dir() / "models" / "lipf6-ec-emc-1m.pt"))
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--calls", type=int, default=30)
    ap.add_argument("--json", help="write the results here")
    a = ap.parse_args()
    cuda = a.device.startswith("cuda")
    dep = load_model(a.model, a.device)
    model = dep.to_eager().to(a.device).eval()
    results = []
    for path in a.boxes:
        box = read_box(path)
        numbers = np.array([x.element.atomic_number for x in box.topology.atoms()])
        gm = grains_from_topology(box.topology)
        kw = make_inputs(openmm_lengths_A(box.getPositions(asNumpy=True)), numbers, gm, dep.config,
                         openmm_lengths_A(box.topology.getPeriodicBoxVectors()), dtype=torch.float32,
                         device=a.device)
        species, gi, gt, cell = kw["species"], kw["grain_index"], kw["grain_type"], kw["cell"]
        g = int(gt.shape[0])
        masses = model.masses[species]

        def deployed():
            out = dep.module(kw["pos"], species, gi, gt, cell, True, False)
            return out["energy"].detach(), out["forces"]

        with torch.no_grad():
            r0, u0, _ = grain_centers(kw["pos"], masses, gi, g, cell)
            edges = model.edges(r0, u0, gi, g, cell)
        pos = kw["pos"].clone().requires_grad_(True)  # the graph's static input

        def eager():
            r, u, _ = grain_centers(pos, masses, gi, g, cell)
            e, _, _ = model.energy_from_edges(r, u, species, gi, gt, cell, *edges)
            energy = e.sum()
            (grad,) = torch.autograd.grad(energy, pos)
            return energy.detach(), -grad

        e_ref, f_ref = deployed()
        e_eager, f_eager = eager()
        row = {"box": path, "atoms": len(numbers), "grains": g,
               "edges": {"intra": edges[0].shape[1], "inter": edges[1].shape[1], "contact": edges[3].shape[1]},
               "energy_eV": float(e_ref), "eager_energy_diff_eV": float(e_eager - e_ref),
               "eager_force_max_diff_eV_A": float((f_eager - f_ref).abs().max()),
               "deployed_ms": median_ms(deployed, a.calls, cuda), "eager_ms": median_ms(eager, a.calls, cuda)}
        if cuda:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):  # warm-up on a side stream, as capture requires
                for _ in range(3):
                    eager()
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                static_e, static_f = eager()
            new = kw["pos"] + 0.01 * torch.randn_like(kw["pos"])  # a displaced frame, same edges

            def replay():
                with torch.no_grad():
                    pos.copy_(new)
                graph.replay()
                return static_e, static_f

            replay()
            with torch.no_grad():
                pos_ref = new.clone()
            out = dep.module(pos_ref, species, gi, gt, cell, True, False)
            torch.cuda.synchronize()
            row["graph_energy_diff_eV"] = float(static_e - out["energy"])
            row["graph_force_max_diff_eV_A"] = float((static_f - out["forces"]).abs().max())
            row["graph_ms"] = median_ms(replay, a.calls, cuda)
        results.append(row)
        print(json.dumps(row), flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"device": torch.cuda.get_device_name(0) if cuda else "cpu", "torch": torch.__version__,
                       "model": a.model, "calls": a.calls, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
