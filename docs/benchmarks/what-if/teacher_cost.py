"""Cost per frame of a quantum-level teacher on a box file: seconds per energy + forces (+ stress)
call and the peak RSS, one thread (docs/data.md, *Cost of the quantum-level teachers*).

    cgaa build --recipe lipf6-ec-emc-1m --atoms 450 --seed 3 -o box450.pdb
    OMP_NUM_THREADS=1 python docs/benchmarks/what-if/teacher_cost.py box450.pdb sevenn   # or: d3, xtb
"""
import resource
import sys
import time

import numpy as np


def main(argv=None):
    import torch
    from ase import Atoms

    from cgaa.systems.boxfile import read_box
    from cgaa.core.units import openmm_lengths_A
    from cgaa.teacher.quantum import gfn2_xtb, sevennet_d3

    path, which = (argv or sys.argv[1:])[:2]
    torch.set_num_threads(1)
    box = read_box(path)
    pos = openmm_lengths_A(box.positions)
    cell = openmm_lengths_A(box.topology.getPeriodicBoxVectors())
    atoms = Atoms([a.element.symbol for a in box.topology.atoms()], positions=pos, cell=cell, pbc=True)
    if which == "d3":
        from dftd3.ase import DFTD3
        calc = DFTD3(method="PBE", damping="d3bj")
    else:
        calc = {"sevenn": lambda: sevennet_d3(d3=False), "sevenn-d3": sevennet_d3, "xtb": gfn2_xtb}[which]()
    print(f"{len(atoms)} atoms, cell {np.diag(cell)} A")
    for k in range(2):
        a = atoms.copy()
        a.positions += np.random.default_rng(k).normal(scale=0.01, size=a.positions.shape)
        a.calc = calc
        t = time.perf_counter()
        e, f = a.get_potential_energy(), a.get_forces()
        if which != "xtb":
            a.get_stress()
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{which}: {time.perf_counter() - t:.1f} s, E {e:.3f} eV, max |F| {np.abs(f).max():.2f} eV/A, "
              f"peak RSS {rss:.0f} MiB")


if __name__ == "__main__":
    main()
