#!/usr/bin/env bash
# Distributed training on one or more nodes with torchrun, as MMDetection's
# tools/dist_train.sh: dist_train.sh CONFIG GPUS [train.py arguments...]
# Multi-node: set NNODES, NODE_RANK, MASTER_ADDR (and PORT) on every node.
# TRAIN_SCRIPT: the training script (default: train.py beside this file).

CONFIG=$1
GPUS=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}

# python -m torch.distributed.run is torchrun, run by this python
PYTHONPATH="$(dirname "$0")/..":$PYTHONPATH \
python -m torch.distributed.run \
    --nnodes=$NNODES \
    --node_rank=$NODE_RANK \
    --master_addr=$MASTER_ADDR \
    --nproc_per_node=$GPUS \
    --master_port=$PORT \
    "${TRAIN_SCRIPT:-$(dirname "$0")/train.py}" \
    "$CONFIG" \
    --launcher pytorch "${@:3}"
