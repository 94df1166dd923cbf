#!/usr/bin/env bash
# One command for a GPU machine (one H100/H200; about 8 minutes): the CUDA-marked tests, one AMP
# training step per task with a NaN check, 2-process NCCL DDP through torchrun, the SR inference
# FLOP fraction against the GPU's fp16 tensor-core peak, and video end-to-end vs model-only vs
# encoder-only. Writes one Markdown table to the file given by --out (default gpu_check.md) and to
# stdout. --cpu-smoke runs the same code on the CPU with tiny sizes (tests its plumbing).
#
#   scripts/gpu_check.sh
#   scripts/gpu_check.sh --out results/gpu_check_h200.md
#   scripts/gpu_check.sh --cpu-smoke --out /tmp/smoke.md
#   scripts/gpu_check.sh --sections flops,video
set -euo pipefail
cd "$(dirname "$0")/.."
# The GPU run is held to 8 minutes (the table is rewritten after each section, so a cut keeps what
# is done); the CPU smoke run is not, as a shared CPU can be arbitrarily slow.
limit=480
for arg in "$@"; do [[ "$arg" == "--cpu-smoke" ]] && limit=0; done
exec timeout "$limit" "${PYTHON:-python}" scripts/peers/gpu_check.py "$@"
