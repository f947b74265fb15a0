#!/usr/bin/env bash
# Distributed pretraining with torchrun, as MMPretrain's tools/dist_train.sh:
# dist_train.sh CONFIG GPUS [tools/pretrain/train.py arguments...]
# (tools/dist_train.sh with this folder's train.py; NNODES, NODE_RANK,
# MASTER_ADDR and PORT as there.)
TRAIN_SCRIPT="$(dirname "$0")/train.py" exec bash "$(dirname "$0")/../dist_train.sh" "$@"
