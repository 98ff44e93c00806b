#!/usr/bin/env bash
# Rebuild the shipped default model for 1 M LiPF6 in EC:EMC 3:7 (w/w): teacher data at four
# temperatures (+ hot and distorted frames), an independent test trajectory, training,
# deployment and the model card. Run from the repository root: `make default-model`.
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
"$cgaa" train "$here/lipf6-ec-emc-1m.train.yaml"
"$cgaa" deploy "$work/run/best.pt" -o "$here/lipf6-ec-emc-1m.pt"
"$cgaa" evaluate "$here/lipf6-ec-emc-1m.pt" "$work/test.xyz" --out "$work/eval"
cp "$work/eval/parity.png" "$here/lipf6-ec-emc-1m.parity.png"
cp "$work/run/learning_curve.png" "$here/lipf6-ec-emc-1m.learning_curve.png"
"${PYTHON:-.venv/bin/python}" -m cgaa.train.modelcard "$here/lipf6-ec-emc-1m.pt" "$work/eval/metrics.json" \
    "$work/run/metrics.csv" "$here/lipf6-ec-emc-1m.md" --command "make default-model" \
    --notes "$here/lipf6-ec-emc-1m.notes.md"
