"""What a model gets wrong between molecules, pair by pair (docs/benchmarks.md, *What the model gets
wrong between molecules*).

For every pair of molecules (i, j) at centre-of-mass distance r (minimum image) it bins
  error(r)   = ½ (ΔF_j − ΔF_i)·û_ij, ΔF = model − teacher net force on a molecule (eV/Å),
  teacher(r) = the teacher's Lennard-Jones force between the two molecules along û_ij (its atom pairs
               within its 1 nm cutoff, OPLS geometric mixing),
by the sorted pair of residue names; > 0 pushes the pair apart. ΔF sums the errors of all
interactions, but its mean over many pairs at one r is the pair's own error (the others average
out). Every ``--stride``-th frame.

Usage (from build/): python ../docs/benchmarks/what-if/pair_force_errors.py MODEL.pt FRAMES.xyz [...]
                     [--stride 2] [--json OUT]"""
import argparse
import json

import numpy as np
from ase.data import atomic_masses
from ase.io import read

from cgaa.data.dataset import frame_tensors, load_frames
from cgaa.core.modelfile import load_model
from cgaa.priors import topology_for_atoms
from cgaa.teacher.forcefield import create_system
from cgaa.train.loss import predict
from cgaa.core.units import kjmol_to_ev, nm_to_angstrom

edges = np.arange(2.0, 10.51, 0.5)  # bins of the centre-of-mass distance (Å)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("frames", nargs="+")
    ap.add_argument("--stride", type=int, default=2)
    ap.add_argument("--json", help="write the curves here")
    args = ap.parse_args()
    dep = load_model(args.model)
    acc = {}

    def add(key, b, err, lj):
        a = acc.setdefault(key, np.zeros((len(edges) - 1, 4)))
        a[b] += (1.0, err, err * err, lj)

    for path in args.frames:
        frames = load_frames(path, all_atom=False, prior=dep.config.prior)[::args.stride]
        first = read(path, 0)  # residue names for the teacher's topology
        top = topology_for_atoms(first)
        system = create_system(top, cutoff=1.0)
        lj = next(f for f in system.getForces() if f.getName() == "LennardJonesOPLS")
        par = np.array([lj.getParticleParameters(i) for i in range(lj.getNumParticles())])
        sig, eps = nm_to_angstrom(par[:, 0]), kjmol_to_ev(par[:, 1])
        residues = [[a.index for a in r.atoms()] for r in top.residues()]
        names = [r.name for r in top.residues()]
        m = atomic_masses[first.numbers]
        for f in frames:
            ref = frame_tensors(f, dep.config, dep.module.masses.dtype)
            out = predict(dep.module, ref)
            dg = (out["grain_forces"].detach() - ref["grain_forces"]).double().numpy()  # grain g = residue g
            box = np.diag(f.cell)
            whole = []
            for idx in residues:  # molecules made whole around their first atom
                d = f.positions[idx] - f.positions[idx[0]]
                whole.append(f.positions[idx[0]] + d - box * np.round(d / box))
            com = np.array([(m[idx, None] * w).sum(0) / m[idx].sum() for idx, w in zip(residues, whole)])
            for i in range(len(residues)):
                for j in range(i + 1, len(residues)):
                    d = com[j] - com[i]
                    shift = -box * np.round(d / box)
                    d = d + shift
                    r = float(np.linalg.norm(d))
                    if not edges[0] <= r < edges[-1]:
                        continue
                    u = d / r
                    rv = (whole[j] + shift)[None] - whole[i][:, None]  # atom of i → atom of j (Å)
                    ra = np.linalg.norm(rv, axis=2)
                    s = np.sqrt(sig[residues[i]][:, None] * sig[residues[j]][None])
                    e = np.sqrt(eps[residues[i]][:, None] * eps[residues[j]][None])
                    fmag = np.where(ra < 10.0, 24 * e * (2 * (s / ra) ** 12 - (s / ra) ** 6) / ra, 0.0)
                    f_lj = float(((fmag / ra)[..., None] * rv).sum((0, 1)) @ u)  # on j along û, eV/Å
                    add("-".join(sorted((names[i], names[j]))), int((r - edges[0]) // 0.5),
                        0.5 * float((dg[j] - dg[i]) @ u), f_lj)
        print(f"{path}: {len(frames)} frames", flush=True)

    centres = 0.5 * (edges[1:] + edges[:-1])
    table = {}
    for key in sorted(acc):
        n, s1, s2, lj = acc[key].T
        nn = np.maximum(n, 1)
        mean = s1 / nn
        se = np.sqrt(np.maximum(s2 / nn - mean ** 2, 0.0) / nn)
        table[key] = {"r_A": centres.tolist(), "pairs": n.tolist(), "error_meV_per_A": (1e3 * mean).tolist(),
                      "error_se_meV_per_A": (1e3 * se).tolist(), "teacher_lj_meV_per_A": (1e3 * lj / nn).tolist()}
        print(f"{key:9s} r (Å): error ± se / teacher LJ (meV/Å)")
        print("   " + "  ".join(f"{c:.2f}: {a:+.1f}±{b:.1f}/{t:+.1f}" for c, a, b, t, k in
                              zip(centres, 1e3 * mean, 1e3 * se, 1e3 * lj / nn, n) if k >= 20))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"model": args.model, "frames": args.frames, "stride": args.stride, "pairs": table}, fh, indent=1)


if __name__ == "__main__":
    main()
