#!/usr/bin/env bash
# Rebuild the quantum-level CGAA model forcefields/models/lipf6-ec-emc-1m-sevennet.pt (1 M LiPF6 in
# EC:EMC 3:7, SevenNet-0 + D3(BJ) labels) from the shipped data (forcefields/data/sevennet/, made by
# make_sevennet_data.sh). Run from the repository root: `make sevennet-model`.
#
# The training data: classical-sampled configurations (sevenn-*.xyz.xz) plus two rounds of active
# learning, each NPT MD of an earlier model on fresh 449-atom boxes (two runs whose frames are trained
# on, one independent run whose frames are held out as own-MD test frames) labelled by SevenNet-0 +
# D3(BJ). Those earlier models are stage 1 (classical frames only) and stage 2 (its fine-tune on round
# 1); they are trained only when a round's labelled frames are missing: the shipped al*.xyz.xz are used
# as is, so a rebuild from the shipped data skips straight to the final stage.
# The final stage is the shipped model: lipf6-ec-emc-1m-sevennet.train.yaml from scratch on every
# training file, deployed; its per-grain-type reference energies refitted on the training frames plus
# the composition anchors comp-*.xyz.xz (make_sevennet_compositions.sh; python -m cgaa.train.reference);
# evaluated on the held-out classical trajectory plus both rounds' own-MD test runs (the card's test
# set), on those own-MD runs alone, and on the 1001-atom own-MD frames own-md-1000-test.xyz.xz when
# shipped; a model card.
#
# Resumable: a finished step is skipped, an interrupted training continues from its last.pt, an
# interrupted MD run from its checkpoint, an interrupted labelling from OUTPUT.partial. Labelled
# frames made here are written to DATA (default forcefields/data/sevennet/; shipped, so a later rebuild
# trains on the same frames). Everything else goes to WORK (default build/sevennet-model; the training
# configs write there too). The model is NOT copied to forcefields/models/: compare its card
# ($WORK/lipf6-ec-emc-1m-sevennet.md) with the shipped one first. Labelling needs
# `pip install "cgaa[sevenn]"` (only when a labelled file is missing).
set -euo pipefail
here=forcefields/models
data=${DATA:-forcefields/data/sevennet}   # shipped labelled frames (DATA: elsewhere, for tests)
WORK=${WORK:-build/sevennet-model}
CGAA=${CGAA:-cgaa}
PYTHON=${PYTHON:-python3}
mkdir -p "$WORK/al"
step() { echo "[$(date -u +%FT%TZ)] make_sevennet_model: $*"; }

# train_run CONFIG RUN_DIR COMMAND: train or fine-tune (or continue an interrupted run)
train_run() {
    local config=$1 run=$2 cmd=$3
    local done=test_metrics.json
    [ "$cmd" = train ] || done=finetune_report.json
    if [ -e "$run/$done" ]; then return 0; fi
    step "$cmd $config"
    if [ -e "$run/last.pt" ]; then "$CGAA" "$cmd" --resume --no-progress "$config"
    else "$CGAA" "$cmd" --no-progress "$config"; fi
}
# run_finished RUN_DIR: the last segment of the cgaa simulate run in RUN_DIR finished (run.json)
run_finished() {
    "$PYTHON" -c 'import json, sys; h = json.load(open(sys.argv[1])).get("history") or [{}]; sys.exit(h[-1].get("status") != "finished")' "$1/run.json" 2>/dev/null
}
# al_md MODEL BOX_SEED T SEED: one 12 ps NPT run of MODEL at T kelvin on a fresh 449-atom box (one thread)
al_md() {
    local model=$1 b=$2 temp=$3 s=$4 run=$WORK/al/run-$4 box=$WORK/al/box-$2.pdb
    [ -s "$box" ] || "$CGAA" build --recipe lipf6-ec-emc-1m --atoms 450 --seed "$b" --density 1.20 -o "$box"
    if run_finished "$run"; then return 0
    elif [ -e "$run/checkpoint.chk" ]; then
        OMP_NUM_THREADS=1 "$CGAA" simulate --restart --time-ps 12 --threads 1 --no-progress -o "$run"
    else
        OMP_NUM_THREADS=1 "$CGAA" simulate "$box" --model "$model" --ensemble npt --temperature "$temp" \
            --time-ps 12 --report-interval 100 --seed "$s" --threads 1 --overwrite --no-progress -o "$run"
    fi
}
# al_label SEED EVERY_PS NAME: SevenNet-0 + D3(BJ) labels of run-SEED from 2 ps on -> $data/NAME.xyz.xz
al_label() {
    local s=$1 every=$2 name=$3
    [ -s "$data/$name.xyz.xz" ] && return 0
    [ -s "$WORK/al/$name.xyz" ] || OMP_NUM_THREADS=1 "$CGAA" label "$WORK/al/run-$s" -c sevenn --stress \
        --no-keep-previous --start-ps 2 --every-ps "$every" --name sevennet-0+d3bj --no-progress \
        -o "$WORK/al/$name.xyz"
    xz -9 -c "$WORK/al/$name.xyz" > "$data/$name.xyz.xz.tmp" && mv "$data/$name.xyz.xz.tmp" "$data/$name.xyz.xz"
}
# al_round MODEL ROUND T1,S1 T2,S2 TT,ST: MD (three runs at once) then labels: runs 1 and 2 every
# 0.5 ps (trained on), run 3 every 1 ps (held out)
al_round() {
    local model=$1 r=$2 pair temp s pids=() need=0
    shift 2
    for n in "al$r-md-$(echo "$1" | cut -d, -f1)" "al$r-md-$(echo "$2" | cut -d, -f1)" "al$r-test"; do
        [ -s "$data/$n.xyz.xz" ] || need=1
    done
    [ "$need" = 1 ] || { step "round $r: shipped labels exist, skipped"; return 0; }
    step "round $r: NPT MD of $model"
    for pair in "$@"; do
        temp=${pair%,*} s=${pair#*,}
        al_md "$model" "$s" "$temp" "$s" &
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p"; done   # set -e: a failed run stops the recipe
    step "round $r: labels"
    al_label "${1#*,}" 0.5 "al$r-md-${1%,*}" & pids=($!)
    al_label "${2#*,}" 0.5 "al$r-md-${2%,*}" & pids+=($!)
    for p in "${pids[@]}"; do wait "$p"; done
    al_label "${3#*,}" 1 "al$r-test"
}
deploy() {  # RUN_DIR MODEL
    [ -e "$2" ] || "$CGAA" deploy "$1/best.pt" -o "$2"
}

# round_missing R: some of active-learning round R's labelled frames are not in $data
round_missing() {
    local n
    for n in $(al_names "$1"); do [ -s "$data/$n.xyz.xz" ] || return 0; done
    return 1
}
al_names() {  # the labelled files of round R
    case $1 in 1) echo al1-md-298 al1-md-338 al1-test ;; 2) echo al2-md-298 al2-md-318 al2-test ;; esac
}

# stage 1 (classical-sampled frames only) and active-learning round 1, when round 1 or 2 is missing
if round_missing 1 || round_missing 2; then
    train_run "$here/lipf6-ec-emc-1m-sevennet.stage1.train.yaml" "$WORK/run-stage1" train
    deploy "$WORK/run-stage1" "$WORK/stage1.pt"
fi
round_missing 1 && al_round "$WORK/stage1.pt" 1 298,21 338,22 298,23
# stage 2 (stage 1 fine-tuned on round 1) and active-learning round 2, when round 2 is missing
if round_missing 2; then
    train_run "$here/lipf6-ec-emc-1m-sevennet.stage2.finetune.yaml" "$WORK/run-stage2" finetune
    deploy "$WORK/run-stage2" "$WORK/stage2.pt"
    al_round "$WORK/stage2.pt" 2 298,31 318,32 298,33
fi

# the final stage: every training file, from scratch
train_run "$here/lipf6-ec-emc-1m-sevennet.train.yaml" "$WORK/run-all" train
deploy "$WORK/run-all" "$WORK/run-all.pt"
# composition anchors for the reference energies (shipped; made when missing)
for c in 0.5m 2m ecemc11; do
    [ -s "$data/comp-$c.xyz.xz" ] || { DATA="$data" WORK="$WORK/compositions" CGAA="$CGAA" \
        bash "$here/make_sevennet_compositions.sh"; break; }
done
model=$WORK/lipf6-ec-emc-1m-sevennet.pt
train_files=""
for n in sevenn-1.20 sevenn-1.13 sevenn-1.27 al1-md-298 al1-md-338 al2-md-298 al2-md-318; do
    train_files="$train_files $data/$n.xyz.xz"
done
if [ ! -e "$model" ]; then
    step "reference energies refitted on the training frames and the composition anchors"
    # shellcheck disable=SC2086
    "$PYTHON" -m cgaa.train.reference "$WORK/run-all.pt" $train_files "$data"/comp-{0.5m,2m,ecemc11}.xyz.xz -o "$model"
fi
# held-out frames: the classical test trajectory and both rounds' independent own-MD runs (the card's
# test set); the own-MD runs alone; the 1001-atom own-MD frames of the shipped model, when shipped
[ -e "$WORK/eval/metrics.json" ] || "$CGAA" evaluate "$model" "$data/test-sevenn.xyz.xz" \
    "$data/al1-test.xyz.xz" "$data/al2-test.xyz.xz" --out "$WORK/eval"
[ -e "$WORK/eval-own-md/metrics.json" ] || "$CGAA" evaluate "$model" "$data/al1-test.xyz.xz" \
    "$data/al2-test.xyz.xz" --out "$WORK/eval-own-md"
also=(--also "own MD of the stage-1 and stage-2 models (449 atoms)=$WORK/eval-own-md/metrics.json")
if [ -s "$data/own-md-1000-test.xyz.xz" ]; then
    [ -e "$WORK/eval-own-md-1000/metrics.json" ] || "$CGAA" evaluate "$model" "$data/own-md-1000-test.xyz.xz" \
        --out "$WORK/eval-own-md-1000"
    also+=(--also "own NPT MD of the shipped model (1001 atoms)=$WORK/eval-own-md-1000/metrics.json")
fi
"$PYTHON" -m cgaa.train.modelcard "$model" "$WORK/eval/metrics.json" "$WORK/run-all/metrics.csv" \
    "$WORK/lipf6-ec-emc-1m-sevennet.md" --command "make sevennet-model" --targets 0.10,2 "${also[@]}" \
    --teacher "SevenNet-0 + D3(BJ) labels (the quantum-level teacher, \`cgaa label -c sevenn\`; forcefields/data/sevennet/README.md) over the classical prior \`teacher_bonded\`" \
    --frames "449-atom boxes: classical MD at 278-338 K and 1.13-1.27 g/cm³ (+ hot and distorted frames; forcefields/models/make_sevennet_data.sh), then two active-learning rounds of earlier models' own NPT MD at 298-338 K; reference energies refitted with three further compositions (0.5 M, 2 M, EC:EMC 1:1); test: an independent classical trajectory plus one independent own-MD run per round"
[ -e "$WORK/run-all/learning_curve.png" ] && cp "$WORK/run-all/learning_curve.png" "$WORK/lipf6-ec-emc-1m-sevennet.learning_curve.png"
[ -e "$WORK/eval/parity.png" ] && cp "$WORK/eval/parity.png" "$WORK/lipf6-ec-emc-1m-sevennet.parity.png"
echo "make_sevennet_model: $model, card $WORK/lipf6-ec-emc-1m-sevennet.md"
