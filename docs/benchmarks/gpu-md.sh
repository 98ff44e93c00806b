#!/usr/bin/env bash
# GPU MD check (issue 30): the CUDA tests, then OpenMM MD on the CUDA platform with CUDA graphs on
# and off (docs/benchmarks/gpu_md.py): CGAA at 1k, 10k and 100k atoms (the 100k box is mmCIF),
# r-RESPA 2 fs for CGAA, the all-atom baseline and the classical teacher at 1k and 10k.
# One JSON report: $OUT/gpu-md.json (+ $OUT/log.txt, $OUT/cuda-tests.txt). Time-boxed to 8 minutes.
#
# Prepare here (once; ~36 MB of wheels for Python 3.12, nothing else travels):
#   echo /build/gpu-wheels/ >> .git/info/exclude     # build/ is already ignored in this repo
#   P="--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
#      --platform manylinux2014_x86_64 --platform manylinux_2_34_x86_64 --platform manylinux_2_35_x86_64 \
#      --platform manylinux_2_31_x86_64 --platform any"
#   for w in openmm==8.6.1 openmm-cuda-13==8.6.1 acellera-openmmtorch-cu13==1.10 vesin-torch==0.6.2 \
#            vesin==0.6.2 mdtraj ase packmol openmmml; do
#     python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       $P -d build/gpu-wheels "$w"; done
# Optionally pack the boxes here and carry them (packmol at 100k atoms may take minutes there):
#   python -c "from cgaa.bench.speed import box_for; [box_for('lipf6-ec-emc-1m', n, 'build/gpu-md/boxes', 0) for n in (1000, 10000, 100000)]"
# Then, with the device tool (one call, ~8 min; leaves room for a rerun within 15 min of device time):
#   run(command="bash docs/benchmarks/gpu-md.sh", carry=["build/gpu-wheels", "build/gpu-md/boxes"], timeout_s=540)
# Without a GPU (a dry run of the plumbing only): DEVICE_TESTS=0 SIZES=1000 bash docs/benchmarks/gpu-md.sh
set -uo pipefail
OUT=${OUT:-build/gpu-md/out}
BOXES=${BOXES:-build/gpu-md/boxes}
SIZES=${SIZES:-1000,10000,100000}
DEVICE_TESTS=${DEVICE_TESTS:-1}
mkdir -p "$OUT" "$BOXES"
START=$(date +%s)
if [ -d build/gpu-wheels ] && ls build/gpu-wheels/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    build/gpu-wheels/*.whl || echo "wheel install failed" >> "$OUT"/log.txt
  export PYTHONPATH=/tmp/site:$PWD PATH=/tmp/site/bin:$PATH
else
  export PYTHONPATH=$PWD
fi
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=4
{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true
  python3 -c "import torch, openmm, openmmtorch, vesin_torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, '| openmm', openmm.__version__, '| openmmtorch', getattr(openmmtorch, '__version__', '?'), '| platforms', [openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())])" || true
  if [ "$DEVICE_TESTS" = 1 ]; then
    # CUDA tests: the model on the GPU, the padded sync-free path captured in a CUDA graph
    timeout 150 python3 -m pytest -q -p no:cacheprovider -m cuda tests/test_cuda.py tests/test_padded_neighbors.py \
      tests/test_openmm.py 2>&1 | tail -40 | tee "$OUT"/cuda-tests.txt
  fi
  LEFT=$(( 480 - ($(date +%s) - START) - 30 ))
  [ $LEFT -lt 60 ] && LEFT=60
  timeout $LEFT python3 docs/benchmarks/gpu_md.py --boxes "$BOXES" --out "$OUT"/gpu-md.json --sizes "$SIZES" \
    --budget $(( LEFT - 100 )) --case-timeout 90 --seconds 4
  echo "exit $? after $(( $(date +%s) - START )) s"
} 2>&1 | tee -a "$OUT"/log.txt
