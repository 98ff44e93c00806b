#!/usr/bin/env bash
# Forgetting-aware fine-tuning of the quantum-level model (issue: a shipped model that learns what its
# prior does not, item 6): start from forcefields/models/lipf6-ec-emc-1m-sevennet.pt (1 M LiPF6 in
# EC:EMC 3:7), fine-tune it to 1 M LiPF6 in EC:DMC 1:1 (w/w, "LP30"; DMC is a new grain type) labelled
# by the same teacher (SevenNet-0 + D3(BJ)), once plainly and once with experience replay + EWC, and
# report the error on the ORIGINAL test set (the classical test trajectory and the held-out own-MD
# frames, never trained on or replayed) before and after, and on held-out EC:DMC frames.
# Run from the repository root: `make sevennet-finetune`.
#
# Resumable: a finished step is skipped; `cgaa label` continues an interrupted file (OUTPUT.partial);
# an interrupted fine-tune continues from its last.pt. The labelled EC:DMC frames ship as
# forcefields/data/sevennet/ecdmc-*.xyz.xz (an existing shipped file is used as is, so a rerun needs
# no labelling; labelling needs `pip install "cgaa[sevenn]"`). Everything else goes to WORK (default
# build/sevennet-finetune; the two configs write their runs to build/sevennet-finetune/{plain,guarded},
# so keep the default unless they are changed too). The shipped models are not touched.
set -euo pipefail
here=forcefields/models
data=${DATA:-forcefields/data/sevennet}
WORK=${WORK:-build/sevennet-finetune}
CGAA=${CGAA:-cgaa}
PYTHON=${PYTHON:-python3}
export OMP_NUM_THREADS=1 OPENMM_CPU_THREADS=1
mkdir -p "$WORK"
step() { echo "[$(date -u +%FT%TZ)] make_sevennet_finetune: $*"; }

# sample_label NAME BOX_SEED SAMPLE_SEED TEMPERATURES FRAMES: a 449-atom-class EC:DMC box (above twice
# the 8 A cutoff), classical configurations (the OPLS-type teacher only chooses them), quantum labels
sample_label() {
    local name=$1 b=$2 s=$3 temps=$4 frames=$5 box=$WORK/box-$1.pdb
    [ -s "$data/ecdmc-$name.xyz.xz" ] && return 0
    [ -s "$box" ] || "$CGAA" build --recipe lipf6-ec-dmc-1m --atoms 450 --seed "$b" --density 1.30 -o "$box"
    [ -s "$WORK/sample-$name.xyz" ] || { step "sample $name"; "$CGAA" sample "$box" --temperatures "$temps" \
        --frames "$frames" --stride 500 --equil-steps 5000 --cutoff 0.8 --seed "$s" --no-stress --no-progress \
        -o "$WORK/sample-$name.xyz"; }
    [ -s "$WORK/sevenn-$name.xyz" ] || { step "label $name"; "$CGAA" label "$WORK/sample-$name.xyz" -c sevenn \
        --stress --no-keep-previous --name sevennet-0+d3bj --no-progress -o "$WORK/sevenn-$name.xyz"; }
    xz -9 -c "$WORK/sevenn-$name.xyz" > "$data/ecdmc-$name.xyz.xz.tmp"
    mv "$data/ecdmc-$name.xyz.xz.tmp" "$data/ecdmc-$name.xyz.xz"
}
sample_label train 41 43 298,318 40 & p1=$!   # 80 equilibrium + 8 hot + 8 distorted frames
sample_label test 42 44 298 20 & p2=$!        # an independent box and trajectory: 20 + 2 + 2
wait "$p1"; wait "$p2"

# finetune NAME: plain (no replay, no EWC) or guarded (replay 0.25 + EWC); one after the other
for name in plain guarded; do
    run=$WORK/$name
    [ -e "$run/finetune_report.json" ] && continue
    step "fine-tune $name"
    if [ -e "$run/last.pt" ]; then "$CGAA" finetune --resume --no-progress "$here/lipf6-ec-dmc-1m-sevennet.$name.finetune.yaml"
    else "$CGAA" finetune --overwrite --no-progress "$here/lipf6-ec-dmc-1m-sevennet.$name.finetune.yaml"; fi
done
"$PYTHON" -c 'import sys; from pathlib import Path; from cgaa.train.finetune import finetune_table
Path(sys.argv[3]).write_text(finetune_table(sys.argv[1:3], ["plain fine-tuning", "replay + EWC"]))' \
    "$WORK/plain" "$WORK/guarded" "$WORK/finetune-table.md"
cat "$WORK/finetune-table.md"
step "done: $WORK/finetune-table.md"
