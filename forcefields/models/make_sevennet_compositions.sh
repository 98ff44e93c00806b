#!/usr/bin/env bash
# Composition anchors for the quantum-level model: SevenNet-0 + D3(BJ) labels of small boxes whose
# salt concentration or solvent ratio differs from 1 M LiPF6 in EC:EMC 3:7 (w/w). Every other
# training box of lipf6-ec-emc-1m-sevennet has the same molecule counts (3 LiPF6, 11 EC, 21 EMC),
# so its per-grain-type reference energies are fixed only in that combination: a box of another
# composition (the 1001-atom box: 7 : 24 : 47) gets an energy offset (issue 27, model card). These
# frames pin the types apart. Classical NVT at 298 K chooses the configurations (its labels are
# replaced); ~450 atoms each (above twice the 8 Å cutoff).
#
# Resumable like make_sevennet_data.sh. Run from the repository root; WORK (default
# build/sevennet-model/compositions); needs `pip install "cgaa[sevenn]"` unless the shipped
# forcefields/data/sevennet/comp-*.xyz.xz exist.
set -euo pipefail
WORK=${WORK:-build/sevennet-model/compositions}
THREADS=${THREADS:-1}
CGAA=${CGAA:-cgaa}
FRAMES=${FRAMES:-6}
export OMP_NUM_THREADS=$THREADS OPENMM_CPU_THREADS=$THREADS
mkdir -p "$WORK"
ship=${DATA:-forcefields/data/sevennet}   # where the labelled frames are shipped (DATA: elsewhere, for tests)
step() { echo "[$(date -u +%FT%TZ)] $*"; }

# name  salt-molarity  solvents  density (g/cm3)  seed
while read -r name molar solvents dens seed; do
  [ -s "$ship/comp-$name.xyz.xz" ] && continue
  box="$WORK/box-$name.pdb"
  [ -s "$box" ] || { step "build $box"; $CGAA build --salt LiPF6 --molarity "$molar" --solvents "$solvents" \
                     --density "$dens" --atoms 450 --seed "$seed" -o "$box"; }
  [ -s "$WORK/sample-$name.xyz" ] || { step "sample $name"; $CGAA sample "$box" --temperatures 298 \
      --frames "$FRAMES" --stride 500 --equil-steps 5000 --cutoff 0.8 --seed "$seed" --no-stress --no-progress \
      -o "$WORK/sample-$name.xyz"; }
  [ -s "$WORK/comp-$name.xyz" ] || { step "label $name"; $CGAA label "$WORK/sample-$name.xyz" -c sevenn --stress \
      --no-keep-previous --name sevennet-0+d3bj --no-progress -o "$WORK/comp-$name.xyz"; }
  xz -9 -c "$WORK/comp-$name.xyz" > "$ship/comp-$name.xyz.xz.tmp" && mv "$ship/comp-$name.xyz.xz.tmp" "$ship/comp-$name.xyz.xz"
done <<'LIST'
0.5m 0.5 EC:3,EMC:7 1.16 21
2m 2.0 EC:3,EMC:7 1.31 22
ecemc11 1.0 EC:1,EMC:1 1.26 23
LIST
step "done: $(ls "$ship"/comp-*.xyz.xz)"
