"""Would a hand-written lmax-1 tensor product beat e3nn's generated code at the model's sizes?

usage: python tp_l1_ab.py BOX.pdb [MODEL.pt]
For each tensor product of the shipped model (intra-grain layer, pooling, inter-grain layers)
on as many edges as the 1000-atom box gives it, times forward + backward (float32, 1 thread,
interleaved, CPU time) of e3nn's ``TensorProduct`` and of the same "uvu" products written out
by hand (0e x 0e -> 0e, 0e x 1o -> 1o, 1o x 0e -> 1o, 1o x 1o -> 0e; Wigner 3j of the l=1 paths
1/sqrt(3), times e3nn's path weights), after checking the two agree in float64.
"""
import sys

import numpy as np
import torch
from openmm.app import PDBFile

from cgaa.bench.speed import cpu_summary_ms, interleaved_cpu_times
from cgaa.core.modelfile import load_model
from cgaa.core.grains import grains_from_topology
from cgaa.core.inputs import make_inputs
from cgaa.core.model import CGAAModel, intra_pairs
from cgaa.core.neighbors import neighbor_pairs
from cgaa.core.resources import forcefields_dir
from cgaa.core.units import openmm_lengths_A


def by_hand(tp, x1, sh, w):
    """e3nn "uvu" tensor product of n0x0e+n1x1o with 0e+1o, instruction order, by hand."""
    e = x1.shape[0]
    n0 = sum(m for m, ir in tp.irreps_in1 if ir.l == 0)
    s, v = x1[:, :n0], x1[:, n0:].reshape(e, -1, 3)
    y0, y1 = sh[:, :1], sh[:, 1:4]
    outs, k = [], 0
    for ins in tp.instructions:
        l1, l2 = tp.irreps_in1[ins.i_in1].ir.l, tp.irreps_in2[ins.i_in2].ir.l
        mul = tp.irreps_in1[ins.i_in1].mul
        ww = w[:, k:k + mul] * ins.path_weight
        k += mul
        if (l1, l2) == (0, 0):
            outs.append(ww * s * y0)
        elif (l1, l2) == (0, 1):
            outs.append(((ww * s).unsqueeze(-1) * y1.unsqueeze(1) * 3 ** -0.5).reshape(e, -1))
        elif (l1, l2) == (1, 0):
            outs.append((v * (ww * y0).unsqueeze(-1) * 3 ** -0.5).reshape(e, -1))
        else:
            outs.append(ww * (v * y1.unsqueeze(1)).sum(-1) * 3 ** -0.5)
    return torch.cat(outs, dim=1)


def main() -> None:
    torch.set_num_threads(1)
    pdb = PDBFile(sys.argv[1])
    path = sys.argv[2] if len(sys.argv) > 2 else forcefields_dir() / "models" / "lipf6-ec-emc-1m.pt"
    cfg = load_model(path).config
    model = CGAAModel(cfg).double()
    numbers = np.array([a.element.atomic_number for a in pdb.topology.atoms()])
    gm = grains_from_topology(pdb.topology)
    kw = make_inputs(openmm_lengths_A(pdb.getPositions(asNumpy=True)), numbers, gm, cfg,
                     openmm_lengths_A(pdb.topology.getPeriodicBoxVectors()), dtype=torch.float64)
    g = int(kw["grain_type"].shape[0])
    with torch.no_grad():
        r, u, _, _ = model.grain_geometry(kw["pos"], kw["species"], kw["grain_index"], g, kw["cell"])
        p = intra_pairs(kw["grain_index"], g)
        d = u[p[1]] - u[p[0]]
        n_intra = int(((d * d).sum(-1) < cfg.intra_cutoff ** 2).sum())
        n_inter = int(neighbor_pairs(r, kw["cell"], cfg.cutoff)[0].shape[1])
    sizes = {"intra_layers.0.conv.tp": n_intra, "pool.tp": len(numbers), "layers.0.conv.tp": n_inter}
    mods = dict(model.named_modules())
    inputs, errs = {}, {}
    for name, n_edges in sizes.items():  # agreement in float64
        if name not in mods:
            continue
        tp = mods[name]
        gen = torch.Generator().manual_seed(0)
        x, w = (torch.randn(n_edges, d, generator=gen, dtype=torch.float64) for d in (tp.irreps_in1.dim, tp.weight_numel))
        sh = model.sh(torch.nn.functional.normalize(torch.randn(n_edges, 3, generator=gen, dtype=torch.float64), dim=1))[:, :4]
        ref = tp(x, sh, w)
        errs[name] = float((by_hand(tp, x, sh, w) - ref).abs().max() / ref.abs().max())
        inputs[name] = (x, sh, w)
    model.float()  # timings in float32, as deployed
    for name, (x, sh, w) in inputs.items():
        tp, n_edges, err = mods[name], x.shape[0], errs[name]
        xs, shs, ws = (t.float().requires_grad_(True) for t in (x, sh, w))

        def step(f):
            def call():
                out = f(tp, xs, shs, ws) if f is by_hand else tp(xs, shs, ws)
                (out * out).sum().backward()
            return call

        times = interleaved_cpu_times({"e3nn": step(None), "by hand": step(by_hand)}, rounds=8, per_round=25)
        print(f"{name}: {n_edges} edges, {tp.irreps_in1} x {tp.irreps_in2}; relative difference {err:.1e}")
        for k, t in times.items():
            print(f"  {k:8s} forward+backward {cpu_summary_ms(t)}")


if __name__ == "__main__":
    main()
