#!/usr/bin/env bash
# Two-composition fine-tuning scenario (docs/training.md, "Forgetting"):
# start from the shipped LiPF6 EC/EMC model, fine-tune on LiPF6 in EC/DMC teacher data,
# once plainly and once with experience replay + EWC, and compare the error on held-out
# EC/EMC teacher frames before and after. Run from the repository root; needs the
# default-model data (make default-model, or its first two steps) in build/default-model/.
set -euo pipefail
cgaa=${CGAA:-.venv/bin/cgaa}
work=build/finetune-scenario
mkdir -p "$work"
[ -f "$work/new.xyz" ] || "$cgaa" sample lipf6-ec-dmc-1m --atoms 1000 --temperatures 298,318 --frames 24 \
    --stride 250 --equil-steps 3000 --hot-fraction 0.1 --distorted-fraction 0.1 --seed 3 -o "$work/new.xyz"
for name in plain guarded; do
    "$cgaa" finetune --overwrite "examples/finetune/$name.yaml"
done
"${PYTHON:-.venv/bin/python}" - <<'PY'
import json
for name in ("plain", "guarded"):
    r = json.load(open(f"build/finetune-scenario/{name}/finetune_report.json"))
    b, a, n = r["old_data_before"], r["old_data_after"], r["new_data_test_after"]
    print(f"{name:8s} replay={r['replay_fraction']} ewc_lambda={r['ewc_lambda']}: old EC/EMC force RMSE "
          f"{b['forces_rmse_eV_per_A']:.3f} -> {a['forces_rmse_eV_per_A']:.3f} eV/A, energy "
          f"{b['energy_rmse_meV_per_atom']:.2f} -> {a['energy_rmse_meV_per_atom']:.2f} meV/atom; new EC/DMC test "
          f"force RMSE {n['forces_rmse_eV_per_A']:.3f} eV/A")
PY
