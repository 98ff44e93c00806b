#!/usr/bin/env bash
# `cgaa simulate` from the command line: build a box, equilibrate, produce (NVT),
# continue the production run, analyse. Pass a deployed model as $1 (default: the
# shipped model). Small numbers so it finishes quickly on a CPU; scale them up for real
# transport (tens of ns) and use --platform CUDA on a GPU.
set -euo pipefail
MODEL=${1:+--model "$1"}

cgaa build --recipe lipf6-ec-emc-1m --atoms 1500 -o box.pdb

# Equilibration: minimise, thermalise (1 ps of Langevin dynamics at 10/ps before step 0, the
# default), then 20 ps at 298.15 K at the recipe's density (1.20 g/cm3). NVT here; --ensemble
# npt works too: under a barostat the shipped model's density is within 0.1 ± 0.2 % of the
# teacher's (docs/benchmarks.md).
cgaa simulate box.pdb $MODEL --ensemble nvt --temperature 298.15 \
    --timestep 1 --time-ps 20 --report-interval 500 --checkpoint-interval 5000 --out equil/

# NVT production from the equilibrated state: --continue-from starts a new run directory from
# equil/final_state.xml (positions, velocities and box) with equil's model and dynamics
# settings; no minimisation, no new velocities, so production starts where equilibration ended.
cgaa simulate --continue-from equil/ --ensemble nvt --time-ps 50 --report-interval 1000 --out prod/

# Ctrl-C at any time saves a checkpoint (exit code 130); continue and extend with:
cgaa simulate --restart --out prod/ --time-ps 100

# transport and structure from the unwrapped trajectory
cgaa analyze prod/
