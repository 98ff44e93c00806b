"""How much of a teacher's forces each classical prior already holds: for labelled frames, the RMS
of the teacher's forces and of the residual (teacher − prior) per prior, and the residual's share
of the teacher's force variance. Chooses the Δ-prior of a model honestly (issue: the quantum-level
teacher; the model card states the residual's RMS force).

    python docs/benchmarks/what-if/prior_residuals.py build/sevennet-model/sevenn-1.20.xyz [max_frames]
"""
import sys

import numpy as np

PRIORS = ("none", "teacher_bonded", "teacher_valence", "teacher_intra", "teacher_coulomb", "teacher_dispersion",
          "bonds+angles+dispersion", "bonds+angles+coulomb+dispersion")


def main(argv=None):
    import ase.io

    from cgaa.priors import PriorEvaluator, topology_for_atoms

    args = argv or sys.argv[1:]
    path, n = args[0], int(args[1]) if len(args) > 1 else 20
    frames = []
    for k, at in enumerate(ase.io.iread(path, index=":", format="extxyz")):
        if k >= n:
            break
        frames.append(at)
    f_ref = np.concatenate([np.asarray(a.arrays["REF_forces"]) for a in frames])
    grain = np.concatenate([np.asarray(a.arrays["grain"]) + 100000 * k for k, a in enumerate(frames)])
    _, gidx = np.unique(grain, return_inverse=True)

    def net(f):  # net force of each grain (molecule), eV/Å
        out = np.zeros((gidx.max() + 1, 3))
        np.add.at(out, gidx, f)
        return out

    print(f"{len(frames)} frames of {path}: teacher RMS force {np.sqrt(np.mean(f_ref ** 2)):.3f} eV/A")
    top = topology_for_atoms(frames[0])
    for name in PRIORS:
        if name == "none":
            res = f_ref
        else:
            ev = PriorEvaluator(top, name)
            res = np.concatenate([np.asarray(a.arrays["REF_forces"]) - ev.compute(a.positions, a.cell[:])[1]
                                  for a in frames])
        rms = np.sqrt(np.mean(res ** 2))
        print(f"  {name:32s} residual RMS force {rms:.3f} eV/A ({100 * np.mean(res ** 2) / np.mean(f_ref ** 2):.0f} % "
              f"of the teacher's force variance); net molecular force {np.sqrt(np.mean(net(res) ** 2)):.3f} eV/A "
              f"(teacher's {np.sqrt(np.mean(net(f_ref) ** 2)):.3f})")


if __name__ == "__main__":
    main()
