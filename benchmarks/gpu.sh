#!/usr/bin/env bash
# Every GPU measurement of the performance work, on one CUDA device; prints the table last.
#
#   bash benchmarks/gpu.sh            # about 15 minutes on one H100 (150k steps extrapolated)
#   FULL=1 bash benchmarks/gpu.sh     # also trains the whole 150k-step budget
#
# Needs the package installed with a CUDA build of torch (pip install -e . in an
# environment whose torch sees the GPU). Writes benchmarks/results/*_cuda*.json.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
"$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device visible to torch')"
"$PYTHON" -c "import torch; print(torch.__version__, torch.cuda.get_device_name())"

run() { echo "== $*"; "$PYTHON" "$@" | tail -n 6; }
run benchmarks/nb_kernel.py --device cuda --compile
run benchmarks/train_speed.py --device cuda
run benchmarks/loader_speed.py --device cuda --cells 200000
run benchmarks/train_budget.py --device cuda
run benchmarks/train_budget.py --device cuda --compile-kernels
if [[ -n "${FULL:-}" ]]; then
  run benchmarks/train_budget.py --device cuda --compile-kernels --full --out benchmarks/results/train_budget_cuda_full.json
fi
run benchmarks/predict_speed.py --device cuda
run benchmarks/transformer_speed.py --out benchmarks/results/transformer_speed_cuda.json
"$PYTHON" benchmarks/gpu_table.py
