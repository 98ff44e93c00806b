"""Continue teacher replica runs of `cgaa bench observables` (the same settings, the teacher's
forces swapped in as the benchmark does) to a longer total time: the teacher reference for CGAA
replicas that started from the teacher's final states (`--cgaa-start teacher`).

Usage (copy the replica first; the run is continued in place, resumable):
    cp -r bench/disp30-npt/teacher/rep0 bench/teacher-ext/teacher/rep0
    python extend_teacher.py bench/teacher-ext/teacher/rep0 --total-ps 140 [--cutoff-nm 1.0]
"""
from __future__ import annotations

import argparse

from cgaa.bench.observables import teacher_customizer
from cgaa.md.run import run_simulation


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dir", help="a teacher replica directory (checkpoint.chk, run.json)")
    ap.add_argument("--total-ps", type=float, required=True, help="total length of the run (ps, 1 fs steps)")
    ap.add_argument("--cutoff-nm", type=float, default=1.0, help="the teacher's cutoff, as in the benchmark")
    args = ap.parse_args()
    run_simulation(None, None, args.run_dir, steps=int(round(args.total_ps * 1000)), restart=True,
                   progress=False, customize_system=teacher_customizer(args.cutoff_nm))


if __name__ == "__main__":
    main()
