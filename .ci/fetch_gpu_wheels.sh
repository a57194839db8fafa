#!/usr/bin/env bash
# Wheels the offline GPU machine lacks for the SpikingJelly comparison of
# benchmarks/lif_gpu.py (pure Python, ~1 MB); .ci/gpu_check.sh installs them if present.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip download -q --no-deps -d .gpu-wheels spikingjelly==2.0.0 "loguru>=0.7,<1"
ls .gpu-wheels
