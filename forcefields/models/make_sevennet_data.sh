#!/usr/bin/env bash
# Data for the quantum-level model (issue: a shipped model that learns what its prior does not):
# teacher-independent labels. Classical MD of small 1 M LiPF6 EC:EMC 3:7 boxes (449 atoms, above
# twice the 8 Å grain cutoff) samples configurations at four temperatures and three densities,
# plus hot and distorted frames; SevenNet-0 + D3(BJ) (`cgaa label -c sevenn`, needs
# `pip install "cgaa[sevenn]"`) labels every frame; GFN2-xTB (`-c xtb`, "cgaa[xtb]") labels a small
# validation set. The classical force field only chooses the configurations here: its energies
# and forces are replaced.
#
# Resumable: a step whose output exists is skipped and `cgaa label` continues an interrupted file
# (OUTPUT.partial), so the script can be stopped and started again. Run from the repository root;
# WORK (default build/sevennet-model) holds everything; THREADS (default 1) threads per step.
set -euo pipefail
WORK=${WORK:-build/sevennet-model}
THREADS=${THREADS:-1}
CGAA=${CGAA:-cgaa}
export OMP_NUM_THREADS=$THREADS OPENMM_CPU_THREADS=$THREADS
mkdir -p "$WORK"
step() { echo "[$(date -u +%FT%TZ)] $*"; }

# boxes: the recipe's density and ±6 % (the model must hold the barostat's range)
for spec in "1.20:3" "1.13:4" "1.27:5"; do
  dens=${spec%%:*}; seed=${spec##*:}
  box="$WORK/box-$dens.pdb"
  [ -s "$box" ] || { step "build $box"; $CGAA build --recipe lipf6-ec-emc-1m --atoms 450 --seed "$seed" \
                     --density "$dens" -o "$box"; }
done
# classical sampling (configurations only); 0.8 nm cutoff: the 17 Å boxes allow no more
sample() {  # box temperatures frames seed output
  [ -s "$5" ] || { step "sample $5"; $CGAA sample "$1" --temperatures "$2" --frames "$3" --stride 500 \
                   --equil-steps 5000 --cutoff 0.8 --seed "$4" --no-stress --no-progress -o "$5"; }
}
sample "$WORK/box-1.20.pdb" 278,298,318,338 40 11 "$WORK/sample-1.20.xyz"
sample "$WORK/box-1.13.pdb" 298,338 20 12 "$WORK/sample-1.13.xyz"
sample "$WORK/box-1.27.pdb" 298,338 20 13 "$WORK/sample-1.27.xyz"
sample "$WORK/box-1.20.pdb" 298 24 14 "$WORK/test-sample.xyz"   # independent test trajectory
# quantum-level labels (resumable)
for f in sample-1.20 sample-1.13 sample-1.27 test-sample; do
  out="$WORK/${f/sample/sevenn}.xyz"
  [ -s "$out" ] || { step "label $out"; $CGAA label "$WORK/$f.xyz" -c sevenn --stress --no-keep-previous \
                     --name sevennet-0+d3bj -o "$out"; }
done
# GFN2-xTB validation labels of the test frames
out="$WORK/test-xtb.xyz"
[ -s "$out" ] || { step "label $out"; $CGAA label "$WORK/test-sample.xyz" -c xtb --no-keep-previous \
                   --name gfn2-xtb -o "$out"; }
# the shipped copies (xz) that make_sevennet_model.sh trains from (an existing one is kept)
ship=forcefields/data/sevennet
mkdir -p "$ship"
for f in sevenn-1.20 sevenn-1.13 sevenn-1.27 test-sevenn test-xtb; do
  [ -s "$ship/$f.xyz.xz" ] || xz -9 -c "$WORK/$f.xyz" > "$ship/$f.xyz.xz"
done
step "done: $(ls "$ship")"
