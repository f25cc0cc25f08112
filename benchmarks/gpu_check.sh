#!/usr/bin/env bash
# The GPU check, in one run on a lent accelerator (the `device` tool's machine): the GPU test
# tier, stage two at the real size, stage one's throughput. It uses what that machine has
# (python3 with torch, timm, scikit-learn, h5py; no dask, nothing installed) and the tree as
# it is (PYTHONPATH=.). Figures go to $OUT (default ./gpu-check); budget: under 8 minutes.
#
#   device: run  bash benchmarks/gpu_check.sh   (timeout_s 540)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-gpu-check}"
mkdir -p "$OUT"
export PYTHONPATH=. HF_HUB_OFFLINE=1 FEATX_CACHE_DIR="$OUT/features" FEATX_REPORTS_DIR="$OUT/reports"
say() { echo "== $(date +%T) $*" | tee -a "$OUT/log.txt"; }

say "machine"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; python3 -c "import torch, timm, sklearn; print('torch', torch.__version__, 'timm', timm.__version__, 'sklearn', sklearn.__version__)"; nproc; } 2>&1 | tee "$OUT/machine.txt"

say "GPU test tier"
timeout 150 python3 -m pytest -m gpu -q -p no:cacheprovider tests/test_solvers.py tests/test_extract_gpu.py 2>&1 | tail -15 | tee "$OUT/gpu_tests.txt"

# stage two at the real size: synthetic features, the classic pipeline's grids, torch on CUDA
for dim in 2048 4096; do
  say "stage two, 50,000 x $dim, classic grids, --solver torch --device cuda"
  timeout 170 python3 benchmarks/fit_bench.py --n-train 50000 --n-test 10000 --dim "$dim" --grids classic --solver torch \
    --device cuda --skip-reference --json "$OUT/fit_${dim}.json" 2>&1 | tail -8 | tee "$OUT/fit_${dim}.txt"
done

# stage one: 60,000 32-px uint8 images resized to 224 on the device, bf16
for model in resnet50 vgg16; do
  say "stage one, $model at 224, bf16, 60,000 images"
  timeout 60 python3 benchmarks/throughput_bench.py --model "$model" --image-size 224 --n-images 60000 --device cuda \
    --precision bf16 --json "$OUT/throughput_${model}.json" 2>&1 | tail -3 | tee "$OUT/throughput_${model}.txt"
done
say "done"
