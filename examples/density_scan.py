"""Energy vs density, molecules rigid: a CGAA model (+ its prior) vs the teacher
(docs/benchmarks.md, *Density*): box and molecular centres of teacher-labelled frames scaled
to other densities, each potential's energy in eV per molecule relative to the listed density
closest to the frame's own (cgaa.bench.observables.density_scan).

usage: python examples/density_scan.py MODEL.pt [FRAMES.xyz] [--frames 0,10,20]
           [--densities 0.8,0.9,1.0,1.1,1.2,1.3] [--teacher-cutoff 0.8] [--json]
FRAMES.xyz: frames with per-atom grain/resname (cgaa sample, cgaa label); default
build/default-model/test.xyz, its first frame. Prints one row per frame of the model's minus
the teacher's energy (meV per molecule) and their mean; --json prints the scans themselves.
"""
import argparse
import json

import numpy as np

from cgaa.bench.observables import density_scan
from cgaa.core.extxyz import read_frames
from cgaa.systems.topology import topology_from_residues


def _floats(text):
    return [float(x) for x in text.split(",")]


ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
ap.add_argument("model")
ap.add_argument("frames_file", nargs="?", default="build/default-model/test.xyz")
ap.add_argument("--frames", default="0", help="frame indices, comma-separated")
ap.add_argument("--densities", type=_floats, default=[0.8, 0.9, 1.0, 1.1, 1.2, 1.3], help="g/cm3")
ap.add_argument("--teacher-cutoff", type=float, default=0.8, help="teacher cutoff, nm (its labels: 1.0)")
ap.add_argument("--json", action="store_true", help="print the scans as JSON")
args = ap.parse_args()

frames = read_frames(args.frames_file)
scans, diffs = [], []
for i in (int(x) for x in args.frames.split(",")):
    at = frames[i]
    cell = np.asarray(at.cell[:])
    top = topology_from_residues(at.arrays["resname"], at.arrays["grain"], cell)
    s = density_scan(args.model, top, at.positions, cell, args.densities, teacher_cutoff_nm=args.teacher_cutoff)
    scans.append({"frame": i, **s})
    diffs.append(1000.0 * (np.array(s["model_eV_per_molecule"]) - np.array(s["teacher_eV_per_molecule"])))
    if not args.json:
        print(f"frame {i} ({s['reference_density_g_cm3']:.3f} g/cm3): model - teacher, meV/molecule: "
              + " ".join(f"{d:+.2f}" for d in diffs[-1]), flush=True)
if args.json:
    print(json.dumps(scans, indent=1))
else:
    print("mean: " + " ".join(f"{d:+.2f}" for d in np.mean(diffs, axis=0)) + " at "
          + ", ".join(f"{r:g}" for r in args.densities) + " g/cm3")
