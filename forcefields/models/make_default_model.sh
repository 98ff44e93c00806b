#!/usr/bin/env bash
# Rebuild the shipped default model for 1 M LiPF6 in EC:EMC 3:7 (w/w): teacher data at four
# temperatures (+ hot and distorted frames) and three lower densities, an independent test
# trajectory, a stage-1 model trained on them, two rounds of active learning (NPT runs of the stage-1
# and stage-2 models, relabelled by the teacher), the stage-3 model, its NPT comparison with the
# teacher from the teacher's equilibrated states (relabelled), the stage-4 (shipped) model,
# deployment and the model card. Run from the repository root: `make default-model` (~10 h on 2
# Intel Xeon cores).
#
# Resumable: a step whose output exists is skipped, an interrupted training continues from its
# last.pt (`cgaa train --resume`) and an interrupted MD run from its checkpoint (`cgaa simulate
# --restart`), so the recipe can be stopped and started again. Delete $WORK to start afresh.
#
# The same recipe trains variants with other stage configs (environment variables):
#   CONFIGS  prefix of the three configs $CONFIGS.stage1.train.yaml, $CONFIGS.stage2.train.yaml and
#            $CONFIGS.train.yaml (default forcefields/models/lipf6-ec-emc-1m); their data and
#            output.dir paths must lie in WORK
#   WORK     working folder (default build/default-model)
#   MODEL    deployed last-stage model (default forcefields/models/lipf6-ec-emc-1m.pt); its parity plot,
#            learning curve and model card are written next to it
#   NOTES    Markdown added to the model card (default forcefields/models/lipf6-ec-emc-1m.notes.md;
#            empty: none)
#   AL_PARALLEL=1  run the two MD runs of each active-learning round at once, one thread each
#   FINAL    config of stage 4 (default with the default CONFIGS: $CONFIGS.stage4.train.yaml, else
#            none; empty: none), trained on the stage-3 data plus an NPT comparison from the
#            teacher's equilibrated states (`cgaa bench observables --start teacher` in
#            $WORK/npt3): the stage-3 model's own NPT MD and the teacher's, relabelled by the
#            teacher ($WORK/al/md3-*.xyz, $WORK/al/teacher-npt-*.xyz). With a stage 4 the stage-3
#            model goes to $WORK/stage3.pt and the stage-4 model to MODEL.
# e.g. the Coulomb-prior candidate (docs/benchmarks.md, *Long-range electrostatics*; stages 1-3 of
# the shipped recipe, in build/coulomb-model):
#   CONFIGS=docs/benchmarks/what-if/coulomb-model/lipf6-ec-emc-1m-coulomb WORK=build/coulomb-model \
#   MODEL=build/coulomb-model/lipf6-ec-emc-1m-coulomb.pt NOTES= bash forcefields/models/make_default_model.sh
# and the dispersion-prior candidate (*The dispersion-prior candidate*; the shipped model's stage 4)
# on top of it: the same with
#   FINAL=docs/benchmarks/what-if/dispersion-model/lipf6-ec-emc-1m-dispersion.train.yaml
#   MODEL=build/coulomb-model/lipf6-ec-emc-1m-dispersion.pt
set -euo pipefail
here=forcefields/models
configs=${CONFIGS:-$here/lipf6-ec-emc-1m}
work=${WORK:-build/default-model}
model=${MODEL:-$here/lipf6-ec-emc-1m.pt}
notes=${NOTES-$here/lipf6-ec-emc-1m.notes.md}
mkdir -p "$work"
cgaa=${CGAA:-.venv/bin/cgaa}
python=${PYTHON:-.venv/bin/python}
if [ "$configs" = "$here/lipf6-ec-emc-1m" ]; then
    final=${FINAL-$configs.stage4.train.yaml}
    card_command="make default-model"
else
    final=${FINAL-}
    card_command="CONFIGS=$configs WORK=$work MODEL=$model${final:+ FINAL=$final} bash $here/make_default_model.sh"
fi

# once OUT CMD...: run CMD unless OUT exists (every cgaa output file is written atomically)
once() {
    local out=$1
    shift
    if [ -e "$out" ]; then echo "make_default_model: $out exists, skipped"; else "$@"; fi
}
# train_stage CONFIG RUN_DIR DEPLOYED: train (or continue an interrupted training), then deploy best.pt
# (called through `once DEPLOYED`)
train_stage() {
    local config=$1 run=$2 deployed=$3
    if [ -e "$run/last.pt" ] && [ ! -e "$run/test_metrics.json" ]; then
        "$cgaa" train --resume --no-progress "$config"
    elif [ ! -e "$run/test_metrics.json" ]; then
        "$cgaa" train --no-progress "$config"
    fi
    "$cgaa" deploy "$run/best.pt" -o "$deployed"
}

once "$work/train.xyz" "$cgaa" sample lipf6-ec-emc-1m --atoms 1000 --temperatures 278,298,318,338 \
    --frames 45 --stride 250 --equil-steps 4000 --hot-fraction 0.1 --distorted-fraction 0.1 --seed 1 \
    --no-progress -o "$work/train.xyz"
once "$work/test.xyz" "$cgaa" sample lipf6-ec-emc-1m --atoms 1000 --temperatures 298 --frames 24 \
    --stride 250 --equil-steps 4000 --hot-fraction 0.1 --distorted-fraction 0.1 --seed 2 \
    --no-progress -o "$work/test.xyz"
# lower densities: the energy's dependence on volume (NPT), which thermal frames at one density do not show
mkdir -p "$work/dens"
for d in 0.90 1.00 1.10; do
    once "$work/dens/box-$d.pdb" "$cgaa" build --recipe lipf6-ec-emc-1m --atoms 1000 --density "$d" \
        --seed 3 -o "$work/dens/box-$d.pdb"
    once "$work/dens/train-$d.xyz" "$cgaa" sample "$work/dens/box-$d.pdb" --temperatures 298,338 \
        --frames 25 --stride 250 --equil-steps 4000 --hot-fraction 0.1 --distorted-fraction 0.1 \
        --seed 4 --no-progress -o "$work/dens/train-$d.xyz"
done
# stage 1: teacher MD data only
once "$work/stage1.pt" train_stage "$configs.stage1.train.yaml" "$work/run-stage1" "$work/stage1.pt"
# run_finished RUN_DIR: the last segment of the cgaa simulate run in RUN_DIR finished (run.json)
run_finished() {
    "$python" -c 'import json, sys; h = json.load(open(sys.argv[1])).get("history") or [{}]; sys.exit(h[-1].get("status") != "finished")' "$1/run.json" 2>/dev/null
}
# active learning: NPT MD with the previous stage's model (the model drifts off the teacher's data
# there), relabelled with the teacher's energy, forces and stress
mkdir -p "$work/al"
# al_md MODEL PS BOX RUN SEED [ARG...]: one 1000-atom NPT run, or the rest of an interrupted one
al_md() {
    local model=$1 ps=$2 box=$3 run=$4 seed=$5
    shift 5
    if run_finished "$run"; then
        echo "make_default_model: $run finished, skipped"
    elif [ -e "$run/checkpoint.chk" ]; then
        "$cgaa" simulate --restart --time-ps "$ps" --no-progress -o "$run" "$@"
    else
        "$cgaa" simulate "$box" --model "$model" --ensemble npt --time-ps "$ps" \
            --report-interval 100 --seed "$seed" --overwrite --no-progress -o "$run" "$@"
    fi
}
# al_round MODEL PREFIX PS EVERY_PS BOX_SEED,RUN_SEED...: one NPT run per pair, then the teacher's
# labels of its frames. AL_PARALLEL=1 runs a round's MD runs at once, one CPU thread each.
al_round() {
    local model=$1 prefix=$2 ps=$3 every=$4 pair b s pids=()
    shift 4
    for pair in "$@"; do
        b=${pair%,*} s=${pair#*,}
        [ -e "$work/al/$prefix-$s.xyz" ] && continue
        # one box per packing seed (build is deterministic: pairs sharing a box seed reuse it)
        once "$work/al/box-$b.pdb" "$cgaa" build --recipe lipf6-ec-emc-1m --atoms 1000 --seed "$b" \
            -o "$work/al/box-$b.pdb"
        if [ "${AL_PARALLEL:-0}" = 1 ]; then
            OMP_NUM_THREADS=1 OPENMM_CPU_THREADS=1 al_md "$model" "$ps" "$work/al/box-$b.pdb" \
                "$work/al/$prefix-run-$s" "$s" --threads 1 &
            pids+=($!)
        else
            al_md "$model" "$ps" "$work/al/box-$b.pdb" "$work/al/$prefix-run-$s" "$s"
        fi
    done
    for b in ${pids[@]+"${pids[@]}"}; do wait "$b"; done  # set -e: a failed run stops the recipe
    for pair in "$@"; do
        s=${pair#*,}
        once "$work/al/$prefix-$s.xyz" "$cgaa" label "$work/al/$prefix-run-$s" -c teacher --stress --no-progress \
            --no-keep-previous --start-ps 1 --every-ps "$every" -o "$work/al/$prefix-$s.xyz"
    done
}
al_round "$work/stage1.pt" md 70 0.5 0,0 0,1
# stage 2: + the first round
once "$work/stage2.pt" train_stage "$configs.stage2.train.yaml" "$work/run-stage2" "$work/stage2.pt"
al_round "$work/stage2.pt" md2 15 0.2 5,5 6,6
# stage 3: + the second round
final_run=$work/run
if [ -z "$final" ]; then
    once "$model" train_stage "$configs.train.yaml" "$work/run" "$model"
else
    once "$work/stage3.pt" train_stage "$configs.train.yaml" "$work/run" "$work/stage3.pt"
    # stage 4 (shipped): + the teacher's and the stage-3 model's NPT states at 298 K (the stage-3
    # data hold teacher MD at the packed density only): 10 + 60 ps per run, the CGAA runs
    # continuing from the teacher's final states; 1 frame per ps (the CGAA's from 1 ps on, its
    # drift included; the teacher's after its 10 ps of equilibration), relabelled by the teacher
    for k in 0 1; do
        if [ ! -e "$work/al/md3-$k.xyz" ] || [ ! -e "$work/al/teacher-npt-$k.xyz" ]; then
            once "$work/npt3/observables.json" "$cgaa" bench observables --atoms 1000 --replicas 2 \
                --ensemble npt --equil-ps 10 --time-ps 60 --report-ps 0.1 --fit-window 5,30 --threads 1 \
                --jobs 2 --resume --start teacher --model "$work/stage3.pt" --out "$work/npt3"
        fi
        once "$work/al/md3-$k.xyz" "$cgaa" label "$work/npt3/cgaa/rep$k" -c teacher --stress --no-progress \
            --no-keep-previous --start-ps 1 --every-ps 1 -o "$work/al/md3-$k.xyz"
        once "$work/al/teacher-npt-$k.xyz" "$cgaa" label "$work/npt3/teacher/rep$k" -c teacher --stress \
            --no-progress --no-keep-previous --start-ps 11 --every-ps 1 -o "$work/al/teacher-npt-$k.xyz"
    done
    final_run=$("$python" -c 'import sys; from cgaa.train.config import load_config; c = load_config(sys.argv[1]); print(c.resolve(c.output.dir))' "$final")
    once "$model" train_stage "$final" "$final_run" "$model"
fi
"$cgaa" evaluate "$model" "$work/test.xyz" --out "$work/eval"
cp "$work/eval/parity.png" "${model%.pt}.parity.png"
cp "$final_run/learning_curve.png" "${model%.pt}.learning_curve.png"
"$python" -m cgaa.train.modelcard "$model" "$work/eval/metrics.json" \
    "$final_run/metrics.csv" "${model%.pt}.md" --command "$card_command" \
    ${notes:+--notes "$notes"}
