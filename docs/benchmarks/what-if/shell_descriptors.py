"""Li⁺ shell composition and EC–EC contacts, file by file (docs/benchmarks.md, *What the model gets
wrong between molecules*): per Li⁺, the carbonyl O of EC and of EMC within 2.6 Å; per EC, the
other EC whose centre of mass is within 5 Å. Means over every ``--stride``-th frame, and over
``--blocks`` consecutive blocks of them (to follow a run in time).

Usage (from build/): python ../docs/benchmarks/what-if/shell_descriptors.py TOPOLOGY.pdb FILE [...]
                     [--stride 2] [--blocks 1]
FILE: an extxyz (the atom order of TOPOLOGY) or a DCD/XTC trajectory of TOPOLOGY."""
import argparse

import mdtraj as md
import numpy as np
from ase.io import read

from cgaa.analysis.msd import molecule_centers


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("topology")
    ap.add_argument("files", nargs="+")
    ap.add_argument("--stride", type=int, default=2)
    ap.add_argument("--blocks", type=int, default=1)
    args = ap.parse_args()
    top = md.load_topology(args.topology)
    solvents = [r for r in top.residues if r.name in ("EC", "EMC")]
    is_ec = np.array([r.name == "EC" for r in solvents])
    molecules = [np.array([a.index for a in r.atoms]) for r in solvents]
    li = np.array([r.atom(0).index for r in top.residues if r.name == "LI"])
    masses = np.array([a.element.mass for a in top.atoms])
    bonds = {a.index: set() for a in top.atoms}
    for a, b in top.bonds:
        bonds[a.index].add(b.index)
        bonds[b.index].add(a.index)
    # carbonyl O: the O bonded to one atom only
    carbonyl = np.array([next(a.index for a in r.atoms if a.element.symbol == "O" and len(bonds[a.index]) == 1)
                         for r in solvents])

    def frames(path):
        if path.endswith(".xyz"):
            for at in read(path, f"::{args.stride}"):
                yield at.positions, np.diag(at.cell.array)
        else:
            t = md.load(path, top=top, stride=args.stride)
            for i in range(t.n_frames):
                yield 10.0 * t.xyz[i], 10.0 * t.unitcell_lengths[i]

    def descriptors(x, box):
        def mic(d):
            return d - box * np.round(d / box)

        com = molecule_centers(x[None], molecules, masses, np.diag(box)[None])[0]
        near = np.linalg.norm(mic(x[li][:, None] - x[carbonyl][None]), axis=2) < 2.6
        ec = com[is_ec]
        r = np.linalg.norm(mic(ec[:, None] - ec[None]), axis=2)
        np.fill_diagonal(r, np.inf)
        return near[:, is_ec].sum() / len(li), near[:, ~is_ec].sum() / len(li), (r < 5.0).sum() / len(ec)

    print("file: block: Li-O(EC), Li-O(EMC) per Li+; EC-EC within 5 A per EC")
    for path in args.files:
        values = np.array([descriptors(x, box) for x, box in frames(path)])
        for k, block in enumerate(np.array_split(values, args.blocks)):
            m = block.mean(0)
            print(f"{path}: {k}: {m[0]:.2f} {m[1]:.2f} {m[2]:.2f}   ({len(block)} frames)")


if __name__ == "__main__":
    main()
