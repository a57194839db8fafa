#!/usr/bin/env bash
# One-shot GPU check for a lent device machine (it has torch, CuPy and pytest, no
# internet): install the distributions without dependencies, run every gpu-marked test
# and the GPU benchmark, and leave the results under $OUT. Fits one 10-minute call.
#   OUT=/tmp/out bash .ci/gpu_check.sh
# To compare with SpikingJelly there, first run `bash .ci/fetch_gpu_wheels.sh` on a
# machine with the package registry and carry the .gpu-wheels folder along.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/snetx-gpu}
mkdir -p "$OUT"
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
python -c "import torch, cupy; print(torch.__version__, cupy.__version__, torch.cuda.get_device_name())" \
  > "$OUT/versions.txt" 2>&1
if ! python -m pip install -q --no-deps --no-build-isolation \
    -e packages/snetx-core -e packages/snetx-cuda -e packages/snetx-vision > "$OUT/install.txt" 2>&1; then
  # no hatchling offline: the src folders on sys.path are the same code (namespace merges)
  export PYTHONPATH="$PWD/packages/snetx-core/src:$PWD/packages/snetx-cuda/src:$PWD/packages/snetx-vision/src"
  echo "pip install failed; using PYTHONPATH=$PYTHONPATH" >> "$OUT/install.txt"
fi
timeout 330 python -m pytest -m gpu -q -rs -p no:cacheprovider --durations=5 \
  packages/snetx-core/tests packages/snetx-cuda/tests packages/snetx-vision/tests \
  > "$OUT/gpu-tests.txt" 2>&1
echo "pytest exit $?" >> "$OUT/gpu-tests.txt"
BENCH_PATH=${PYTHONPATH:-}
if ls .gpu-wheels/*.whl > /dev/null 2>&1; then
  extra=$(mktemp -d)
  python -m pip install -q --no-deps --no-index --target "$extra" .gpu-wheels/*.whl >> "$OUT/install.txt" 2>&1 \
    && BENCH_PATH="$extra${BENCH_PATH:+:$BENCH_PATH}"
fi
PYTHONPATH="$BENCH_PATH" timeout 130 python benchmarks/lif_gpu.py --max-log2 27 \
  --out "$OUT/lif_gpu.md" > "$OUT/lif_gpu.log" 2>&1
echo "benchmark exit $?" >> "$OUT/lif_gpu.log"
# training memory on the device (kept / peak torch.cuda bytes vs SpikingJelly's GPU kernels)
PYTHONPATH="$BENCH_PATH" timeout 100 python benchmarks/memory.py --device cuda \
  > "$OUT/memory_gpu.md" 2>&1
echo "memory benchmark exit $?" >> "$OUT/memory_gpu.md"
tail -3 "$OUT/gpu-tests.txt"
tail -5 "$OUT/lif_gpu.log"
grep "|" "$OUT/memory_gpu.md" | head -40
