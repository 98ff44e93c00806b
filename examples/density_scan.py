"""Energy vs density, molecules rigid: the shipped model (+ prior) vs the teacher
(docs/benchmarks.md, Density). Usage: python examples/density_scan.py MODEL.pt [TEST.xyz]
(TEST.xyz: teacher frames from cgaa sample; the first frame is scanned)"""
import json
import sys

import numpy as np

from cgaa.bench.observables import density_scan
from cgaa.data.extxyz import read_frames
from cgaa.teacher import topology_from_residues

model = sys.argv[1]
data = sys.argv[2] if len(sys.argv) > 2 else "build/default-model/test.xyz"
at = read_frames(data, index="0")[0]
top = topology_from_residues(at.arrays["resname"], at.arrays["grain"], np.asarray(at.cell[:]))
print(json.dumps(density_scan(model, top, at.positions, np.asarray(at.cell[:])), indent=1))
