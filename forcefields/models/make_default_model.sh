#!/usr/bin/env bash
# Rebuild the shipped default model for 1 M LiPF6 in EC:EMC 3:7 (w/w): teacher data at four
# temperatures (+ hot and distorted frames) and three lower densities, an independent test
# trajectory, a stage-1 model trained on them, two rounds of active learning (NPT runs of the stage-1
# and stage-2 models, relabelled by the teacher), the stage-3 (shipped) model, deployment and
# the model card. Run from the repository root: `make default-model` (~4 h on 2 CPU cores).
set -euo pipefail
here=forcefields/models
work=build/default-model
mkdir -p "$work"
cgaa=${CGAA:-.venv/bin/cgaa}
"$cgaa" sample lipf6-ec-emc-1m --atoms 1000 --temperatures 278,298,318,338 --frames 45 --stride 250 \
    --equil-steps 4000 --hot-fraction 0.1 --distorted-fraction 0.1 --seed 1 -o "$work/train.xyz"
"$cgaa" sample lipf6-ec-emc-1m --atoms 1000 --temperatures 298 --frames 24 --stride 250 \
    --equil-steps 4000 --hot-fraction 0.1 --distorted-fraction 0.1 --seed 2 -o "$work/test.xyz"
# lower densities: the energy's dependence on volume (NPT), which thermal frames at one density do not show
mkdir -p "$work/dens"
for d in 0.90 1.00 1.10; do
    "$cgaa" build --recipe lipf6-ec-emc-1m --atoms 1000 --density "$d" --seed 3 -o "$work/dens/box-$d.pdb"
    "$cgaa" sample "$work/dens/box-$d.pdb" --temperatures 298,338 --frames 25 --stride 250 --equil-steps 4000 \
        --hot-fraction 0.1 --distorted-fraction 0.1 --seed 4 -o "$work/dens/train-$d.xyz"
done
# stage 1: teacher MD data only
"$cgaa" train "$here/lipf6-ec-emc-1m.stage1.train.yaml"
"$cgaa" deploy "$work/run-stage1/best.pt" -o "$work/stage1.pt"
# active learning: NPT MD with the previous stage's model (the model drifts off the teacher's data
# there), relabelled with the teacher's energy, forces and stress
mkdir -p "$work/al"
al_round() {  # al_round MODEL PREFIX PS EVERY_PS BOX_SEED,RUN_SEED...  (one 1000-atom NPT run per pair)
    local model=$1 prefix=$2 ps=$3 every=$4 pair b s
    shift 4
    for pair in "$@"; do
        b=${pair%,*} s=${pair#*,}
        # one box per packing seed (build is deterministic: pairs sharing a box seed reuse it)
        [ -f "$work/al/box-$b.pdb" ] || "$cgaa" build --recipe lipf6-ec-emc-1m --atoms 1000 --seed "$b" -o "$work/al/box-$b.pdb"
        "$cgaa" simulate "$work/al/box-$b.pdb" --model "$model" --ensemble npt --time-ps "$ps" \
            --report-interval 100 --seed "$s" --overwrite --no-progress -o "$work/al/$prefix-run-$s"
        "$cgaa" label "$work/al/$prefix-run-$s" -c teacher --stress --no-keep-previous --start-ps 1 \
            --every-ps "$every" -o "$work/al/$prefix-$s.xyz"
    done
}
al_round "$work/stage1.pt" md 70 0.5 0,0 0,1
# stage 2: + the first round
"$cgaa" train "$here/lipf6-ec-emc-1m.stage2.train.yaml"
"$cgaa" deploy "$work/run-stage2/best.pt" -o "$work/stage2.pt"
al_round "$work/stage2.pt" md2 15 0.2 5,5 6,6
# stage 3 (shipped): + the second round, over the prior teacher_intra (stages 1-2: teacher_valence;
# stage 2's MD folded EMC into intramolecular contacts its network had never seen)
"$cgaa" train "$here/lipf6-ec-emc-1m.train.yaml"
"$cgaa" deploy "$work/run/best.pt" -o "$here/lipf6-ec-emc-1m.pt"
"$cgaa" evaluate "$here/lipf6-ec-emc-1m.pt" "$work/test.xyz" --out "$work/eval"
cp "$work/eval/parity.png" "$here/lipf6-ec-emc-1m.parity.png"
cp "$work/run/learning_curve.png" "$here/lipf6-ec-emc-1m.learning_curve.png"
"${PYTHON:-.venv/bin/python}" -m cgaa.train.modelcard "$here/lipf6-ec-emc-1m.pt" "$work/eval/metrics.json" \
    "$work/run/metrics.csv" "$here/lipf6-ec-emc-1m.md" --command "make default-model" \
    --notes "$here/lipf6-ec-emc-1m.notes.md"
