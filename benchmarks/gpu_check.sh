#!/usr/bin/env bash
# The GPU check, in one run on a lent accelerator (the `device` tool's machine): the GPU test
# tier, stage two at the real size, stage one's throughput. It uses what that machine has
# (python3 with torch, timm, scikit-learn, h5py; no dask, nothing installed) and the tree as
# it is (PYTHONPATH=.). Figures go to $OUT (default ./gpu-check); budget: under 8 minutes.
# The exit status counts the steps that failed (0: every step ran to the end).
#
#   device: run  bash benchmarks/gpu_check.sh   (timeout_s 540)
#
# `--smoke` runs the same steps, tiny and on the CPU, to check the script itself before the
# device's minutes are spent on it (tests/test_benchmarks.py does, in the slow tier).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-gpu-check}"
PYTHON="${PYTHON:-python3}"
DEVICE=cuda N_TRAIN=50000 N_TEST=10000 DIMS="2048 4096" N_IMAGES=60000 BATCH=256 PRECISION=bf16
FIT_LIMIT=170 THROUGHPUT_LIMIT=60 TEST_LIMIT=150
if [ "${1:-}" = "--smoke" ]; then
  DEVICE=cpu N_TRAIN=1500 N_TEST=300 DIMS="24 48" N_IMAGES=8 BATCH=4 PRECISION=fp32
fi
mkdir -p "$OUT"
export PYTHONPATH=. HF_HUB_OFFLINE=1 FEATX_CACHE_DIR="$OUT/features" FEATX_REPORTS_DIR="$OUT/reports"
say() { echo "== $(date +%T) $*" | tee -a "$OUT/log.txt"; }
failed=0
# run NAME LIMIT COMMAND...: the command's last lines into $OUT/NAME.txt; a failure is counted and said
run() {
  local name=$1 limit=$2
  shift 2
  timeout "$limit" "$@" > "$OUT/$name.full" 2>&1
  local status=$?
  tail -8 "$OUT/$name.full" | tee "$OUT/$name.txt"
  if [ "$status" -ne 0 ]; then
    failed=$((failed + 1))
    if [ "$status" -eq 124 ]; then say "FAILED (out of its $limit s): $name"; else say "FAILED (status $status): $name"; fi
  fi
}

say "machine"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || echo "no nvidia-smi"
  "$PYTHON" -c "import torch, timm, sklearn; print('torch', torch.__version__, 'timm', timm.__version__, 'sklearn', sklearn.__version__)"
  nproc; } 2>&1 | tee "$OUT/machine.txt"

say "GPU test tier"
run gpu_tests "$TEST_LIMIT" "$PYTHON" -m pytest -m gpu -q -p no:cacheprovider tests/test_solvers.py tests/test_extract_gpu.py

# stage two at the real size: synthetic features, the classic pipeline's grids, the torch solvers
for dim in $DIMS; do
  say "stage two, $N_TRAIN x $dim, classic grids, --solver torch --device $DEVICE"
  run "fit_$dim" "$FIT_LIMIT" "$PYTHON" benchmarks/fit_bench.py --n-train "$N_TRAIN" --n-test "$N_TEST" --dim "$dim" \
    --grids classic --solver torch --device "$DEVICE" --skip-reference --json "$OUT/fit_$dim.json"
done

# stage one: 32-px uint8 images resized to 224 on the device
for model in resnet50 vgg16; do
  say "stage one, $model at 224, $PRECISION, $N_IMAGES images"
  run "throughput_$model" "$THROUGHPUT_LIMIT" "$PYTHON" benchmarks/throughput_bench.py --model "$model" --image-size 224 \
    --n-images "$N_IMAGES" --batch-size "$BATCH" --device "$DEVICE" --precision "$PRECISION" --json "$OUT/throughput_$model.json"
done
say "done: $failed step(s) failed"
exit "$failed"
