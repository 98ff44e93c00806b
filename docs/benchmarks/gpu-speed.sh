#!/usr/bin/env bash
# GPU check and speed/memory benchmark of CGAA vs the all-atom baseline (energy+force
# evaluations) on one CUDA GPU, as run for docs/benchmarks.md ("On a GPU").
#
# Needs: python3 with torch (CUDA), e3nn, vesin-torch, openmm (PDB reading only), ase,
# packmol (one test packs a small box) and pytest, and this repository on PYTHONPATH (or cgaa
# installed). On a machine where they are not installed, put their wheels in .whl/: they are
# installed to /tmp/site first. The benchmark boxes are read from $BOXES, packed beforehand with
#   python -c "from cgaa.bench.speed import box_for; box_for('lipf6-ec-emc-1m', N, 'build/gpu-speed/boxes', 0)"
# for N in 1000 3000 10000 30000 (seed 0: the boxes of the CPU runs).
# OpenMM MD steps (--tasks md) are not timed here: they need openmmtorch built against the
# machine's torch.
set -uo pipefail
OUT=${OUT:-build/gpu-out}
BOXES=${BOXES:-build/gpu-speed/boxes}
CANDIDATE=${CANDIDATE:-build/coulomb-model/lipf6-ec-emc-1m-coulomb.pt}
SIZES=${SIZES:-1000,3000,10000,30000}
DEVICE=${DEVICE:-cuda}   # DEVICE=cpu SIZES=1000: a dry run of this script without a GPU
PROFILE=${PROFILE:-1}    # 0: skip the profile (step 2)
mkdir -p "$OUT"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD PATH=/tmp/site/bin:$PATH
fi
export PYTHONUNBUFFERED=1
{
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv
  python3 -c "import torch, e3nn, openmm, vesin_torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda, torch.cuda.is_available() and torch.cuda.get_device_name(0), '| e3nn', e3nn.__version__, '| openmm', openmm.__version__)"
  # 1. correctness: the model on the GPU computes what it computes on the CPU
  timeout 300 python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py
  # 2. where the time goes (kernel launches, syncs, top ops), smallest and largest box
  if [ "$PROFILE" = 1 ]; then
    python3 docs/benchmarks/gpu-profile.py --device $DEVICE "$BOXES"/lipf6-ec-emc-1m-1000-s0.pdb \
      "$BOXES"/lipf6-ec-emc-1m-30000-s0.pdb > "$OUT"/profile.txt 2>&1
    grep -h "atoms," "$OUT"/profile.txt
  fi
  # 3. speed and memory, shipped model vs the all-atom baseline
  W=/tmp/gpu-speed
  for d in shipped candidate; do mkdir -p $W/$d/boxes && cp "$BOXES"/*.pdb $W/$d/boxes/; done
  python3 -m cgaa bench speed --device $DEVICE --engines cgaa,allatom --tasks eval \
    --sizes $SIZES --warmup 10 --repeats 30 --budget 5 --timeout 180 --out $W/shipped
  cp $W/shipped/speed.json "$OUT"/speed-gpu.json; cp $W/shipped/speed.md "$OUT"/speed-gpu.md
  cp $W/shipped/speed.png "$OUT"/speed-gpu.png
  # 4. the Coulomb-prior candidate model (same network as the shipped one; its prior is an OpenMM
  #    force, not part of this evaluation, so about the same time is expected: a check)
  if [ -f "$CANDIDATE" ]; then
    python3 -m cgaa bench speed --device $DEVICE --engines cgaa --tasks eval --model "$CANDIDATE" \
      --sizes $SIZES --warmup 10 --repeats 30 --budget 5 --timeout 180 --out $W/candidate
    cp $W/candidate/speed.json "$OUT"/speed-gpu-candidate.json
  fi
} 2>&1 | tee "$OUT"/log.txt
