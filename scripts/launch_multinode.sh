#!/usr/bin/env bash
# Multi-node training with torchrun and a c10d rendezvous. Run this same script on every node.
#
#   NNODES=2 GPUS_PER_NODE=8 RDZV_ENDPOINT=node0.cluster:29500 RUN_ID=facades-1 \
#     scripts/launch_multinode.sh configs/pix2pix_facades.yaml --set data.root=/data/facades
#
# RDZV_ENDPOINT is host:port of any one node that every node can reach (the first is usual);
# RUN_ID must be the same on all nodes and unique per job. Under SLURM, the defaults below read
# the allocation. Only global rank 0 writes the run folder, so it must be on storage that rank 0
# can write; to resume, launch again with `--resume RUN_FOLDER` in place of the config.
set -euo pipefail

NNODES=${NNODES:-${SLURM_NNODES:-1}}
GPUS_PER_NODE=${GPUS_PER_NODE:-$(python -c 'import torch; print(max(torch.cuda.device_count(), 1))')}
RDZV_ENDPOINT=${RDZV_ENDPOINT:-$(scontrol show hostnames "${SLURM_JOB_NODELIST:-localhost}" 2>/dev/null | head -n 1 || echo localhost):29500}
RUN_ID=${RUN_ID:-${SLURM_JOB_ID:-i2i}}

if [ "$#" -lt 1 ]; then
  echo "usage: $0 CONFIG [i2i train options...]   (see the header of this script)" >&2
  exit 2
fi

exec torchrun \
  --nnodes "$NNODES" \
  --nproc_per_node "$GPUS_PER_NODE" \
  --rdzv_backend c10d \
  --rdzv_endpoint "$RDZV_ENDPOINT" \
  --rdzv_id "$RUN_ID" \
  -m i2i.cli train "$@"
