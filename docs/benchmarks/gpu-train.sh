#!/usr/bin/env bash
# Training on one CUDA GPU against the CPU, as run for docs/training.md ("Training on a GPU"):
# the CUDA tests (tests/test_cuda.py, training on cuda included), then epochs of `cgaa train` on
# 212 teacher frames of 1001 atoms (build/coulomb-model/train.xyz, the Coulomb-prior recipe's
# thermal frames) with the Coulomb-prior candidate's network (2 layers, 16 channels, l_max 1,
# intra layer 4 Å) on the GPU and on the machine's CPU cores. Prior `none`: the prior changes the
# labels, not the cost of a step, and subtracting teacher_coulomb takes ~0.4 s per frame.
#
# Needs what docs/benchmarks/gpu-speed.sh needs; the frames are read from $FRAMES (an .xz file is
# unpacked first). Epoch times are the `seconds` column of each run's metrics.csv.
# WHEELS= DEVICES="cpu" EPOCHS=1 dry-runs it on a machine without a GPU.
set -uo pipefail
OUT=${OUT:-build/gpu-out}
FRAMES=${FRAMES:-build/coulomb-model/train.xyz}
DEVICES=${DEVICES:-cuda cpu}
EPOCHS=${EPOCHS:-3}
TESTS=${TESTS:-1}       # 0: skip the CUDA tests
mkdir -p "$OUT"
WHEELS=${WHEELS-.whl}    # WHEELS= : use the installed packages even where .whl/ exists
if [ -n "$WHEELS" ] && [ -d "$WHEELS" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$WHEELS"/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD PATH=/tmp/site/bin:$PATH
fi
export PYTHONUNBUFFERED=1
W=/tmp/gpu-train
mkdir -p $W
FRAMES=$(realpath "$FRAMES")
case "$FRAMES" in *.xz) xz -dc "$FRAMES" > $W/train.xyz; FRAMES=$W/train.xyz ;; esac
{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>/dev/null
  python3 -c "import torch, e3nn; print('torch', torch.__version__, 'CUDA', torch.version.cuda, torch.cuda.is_available() and torch.cuda.get_device_name(0), '| e3nn', e3nn.__version__, '| CPU threads', torch.get_num_threads())"
  if [ "$TESTS" = 1 ] && [[ " $DEVICES " == *" cuda "* ]]; then
    timeout 300 python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py
  fi
  for dev in $DEVICES; do
    python3 - "$dev" "$FRAMES" "$W/$dev" "$EPOCHS" <<'PY'
import sys, yaml
dev, frames, run, epochs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
cfg = {"data": {"train": [frames], "val_fraction": 0.1, "split_seed": 0},
       "model": {"cutoff": 8.0, "num_layers": 2, "channels": 16, "lmax": 1, "num_basis": 8,
                 "radial_hidden": 32, "intra_layers": 1, "intra_cutoff": 4.0, "intra_num_basis": 16,
                 "force_mode": "conservative", "pair_cutoff": 5.0, "prior": "none"},
       "training": {"epochs": epochs, "batch_size": 2, "lr": 0.005, "ema_decay": 0.99, "seed": 0,
                    "dtype": "float32", "device": dev, "early_stopping_patience": 0,
                    "loss": {"energy": 200.0, "forces_inter": 1.0, "forces_intra": 1.0, "virial": 100.0}},
       "output": {"dir": run}}
yaml.safe_dump(cfg, open(run + ".yaml", "w"))
PY
    python3 -m cgaa train --overwrite --no-progress "$W/$dev.yaml"
    cp "$W/$dev/metrics.csv" "$OUT/train-metrics-$dev.csv"
    echo "$dev epoch seconds: $(cut -d, -f10 "$W/$dev/metrics.csv" | tail -n +2 | tr -d '\r' | tr '\n' ' ')"
  done
} 2>&1 | tee "$OUT"/train-log.txt
