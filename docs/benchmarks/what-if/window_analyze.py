"""`cgaa analyze` over a time window of several replica runs: frames [start, end) ps of each
run's traj.dcd are cut out (mdtraj) and analysed as independent replicas, with a common MSD fit
window. Compares runs whose analysed stretches start at different times (a teacher run continued
past the state the CGAA runs started from).

Usage: python window_analyze.py OUT --start-ps 80 --end-ps 140 RUN_DIR [RUN_DIR ...]
                                [--dt-ps 0.1] [--fit-window 5 30]
(--dt-ps: the runs' time between saved frames, the benchmark's --report-ps.)
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import mdtraj as md


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--start-ps", type=float, required=True)
    ap.add_argument("--end-ps", type=float, required=True)
    ap.add_argument("--dt-ps", type=float, default=0.1, help="time between saved frames (ps)")
    ap.add_argument("--fit-window", type=float, nargs=2, default=(5.0, 30.0))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    dt = args.dt_ps
    cut = []
    for i, run in enumerate(args.runs):
        t = md.load(f"{run}/traj.dcd", top=f"{run}/topology.pdb")
        times = [k * dt for k in range(t.n_frames)]  # from the first saved frame, as cgaa.analysis
        keep = [k for k, x in enumerate(times) if args.start_ps - 1e-9 <= x < args.end_ps - 1e-9]
        path = out / f"replica{i}.dcd"
        t[keep].save_dcd(str(path))
        cut.append(str(path))
        print(f"{run}: frames {keep[0]}-{keep[-1]} of {t.n_frames} ({len(keep)})")
    subprocess.run([sys.executable, "-m", "cgaa", "analyze", "--traj", *cut, "--top", f"{args.runs[0]}/topology.pdb",
                    "--out", str(out / "analysis"), "--dt-ps", f"{dt:g}", "--fit-window",
                    *(f"{x:g}" for x in args.fit_window), "--temperature", "298.15", "--no-plots"], check=True)


if __name__ == "__main__":
    main()
