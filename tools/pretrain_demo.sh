#!/usr/bin/env bash
# Pretrain, then detect, on the embedded defaults (`bash tools/run_demo.sh
# pretrain [ce|plain]` runs this):
#   1. set up the environment (tools/setup_env.sh; seconds when ready),
#   2. generate the shapes classification set (data/shapes_cls) and the
#      shapes detection set (data/shapes) if they are missing,
#   3. pretrain (CE-)ResNet-18 as a 4-class classifier with MMPretrain's
#      training script (tools/pretrain/train.py),
#   4. evaluate its top-1 on the classification val split (tools/pretrain/test.py),
#   5. train the shapes Mask R-CNN initialised from that checkpoint, on the
#      embedded default's schedule (tools/train.py), and evaluate it
#      (tools/test.py: COCO bbox and segm AP),
#   6. print one table: with pretraining against from scratch, and the time
#      of each step. The from-scratch result is `bash tools/run_demo.sh
#      [ce|plain]`'s (same config and seed) when it is in work_dirs;
#      otherwise it is trained here too.
#
# Usage: bash tools/pretrain_demo.sh [ce|plain]
# Environment: SEED (default 0: pretraining and detection), QUICK=1 (a few
# iterations of each step and no detection from scratch, to check the
# pipeline; no meaningful numbers),
# CE_MMDET_VENV (see tools/setup_env.sh).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"  # the configs' data roots and checkpoint paths are relative

model=${1:-ce}
case $model in
  ce) prefix=ce- ; detector=mask_rcnn_ce_r18_fpn_shapes ;;
  plain) prefix= ; detector=mask_rcnn_r18_fpn_shapes ;;
  *) echo "usage: bash tools/run_demo.sh pretrain [ce|plain]  (got '$model')" >&2
     exit 2 ;;
esac
seed=${SEED:-0}
quick=${QUICK:-0}
classifier=${prefix}resnet18_shapes-cls
pretrain_config=configs/pretrain/shapes/$classifier.py
detect_config=configs/shapes/${detector}_pretrained.py
scratch_config=configs/shapes/$detector.py
run_dir=work_dirs/pretrain_demo/${model}_seed$seed
[[ $quick == 1 ]] && run_dir=${run_dir}_quick

say() { printf '\n[pretrain_demo %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
minutes() { printf '%d min %02d s' $(($1 / 60)) $(($1 % 60)); }

bash tools/setup_env.sh
py=${CE_MMDET_VENV:-$repo/.venv}/bin/python

options=(randomness.seed=$seed)
pretrain_options=()
pretrain_test_options=(randomness.seed=$seed)
detect_options=(train_cfg.val_begin=1000000)
if [[ $quick == 1 ]]; then
  # a handful of iterations per step: checks the pipeline, not the method
  pretrain_options=(train_cfg.max_epochs=1 train_dataloader.dataset.indices=64
                    default_hooks.logger.interval=1)
  pretrain_test_options+=(test_dataloader.dataset.indices=20)
  detect_options+=(train_cfg.max_iters=4 train_cfg.val_interval=4
                   default_hooks.checkpoint.interval=4 custom_hooks=[]
                   test_dataloader.dataset.indices=4)
fi

# From scratch: run_demo.sh's result for seed 0 if present, else train here.
scratch_dir=$run_dir/scratch
if [[ $seed == 0 && $quick == 0 && -f work_dirs/$detector/eval_val.log ]]; then
  scratch_dir=work_dirs/$detector
  scratch_reused=1
else
  scratch_reused=0
fi
# measured on 2 CPU cores (docs/en/benchmarks.md): 14 min 37 s (Intel Xeon)
# to 23 min 42 s with the from-scratch run reused, 30 min 44 s (AMD EPYC)
# without
expected='15-24'
[[ $scratch_reused == 0 ]] && expected='25-35'
[[ $quick == 1 ]] && expected='1-3'
say "expected: $expected minutes on 2 otherwise idle CPU cores (measured; \
pretraining 5-9 minutes, detection 9-14$([[ $scratch_reused == 0 ]] && \
echo ', from scratch 10-18 more')).$(
  [[ $scratch_reused == 1 ]] && echo " From scratch: reusing $scratch_dir.") \
Each training log prints the estimate measured here ('Expected duration')."

declare -A took
step() {  # step NAME COMMAND...: run, time it
  local name=$1 start=$SECONDS
  shift
  "$@"
  took[$name]=$((SECONDS - start))
}

generate_sets() {
  if [[ -d data/shapes_cls/train && -d data/shapes_cls/val ]]; then
    say "using the existing data/shapes_cls"
  else
    say "generating the shapes classification set into data/shapes_cls"
    "$py" tools/generate_shapes_classification_set.py --out-dir data/shapes_cls \
      --no-progress
  fi
  if [[ -f data/shapes/annotations/instances_train.json &&
        -f data/shapes/annotations/instances_val.json ]]; then
    say "using the existing data/shapes"
  else
    say "generating the shapes detection set into data/shapes"
    "$py" tools/generate_shapes_dataset.py --out-dir data/shapes --no-progress
  fi
}
step generate generate_sets

say "pretraining: $pretrain_config into $run_dir/pretrain"
step pretrain "$py" tools/pretrain/train.py "$pretrain_config" \
  --work-dir "$run_dir/pretrain" --no-validate \
  --cfg-options "${options[@]}" "${pretrain_options[@]}"
checkpoint=$(cat "$run_dir/pretrain/last_checkpoint")

say "top-1 of $checkpoint on the classification val split"
evaluate_classifier() {
  "$py" tools/pretrain/test.py "$pretrain_config" "$checkpoint" \
    --work-dir "$run_dir/pretrain_test" \
    --cfg-options "${pretrain_test_options[@]}" 2>&1 |
    tee "$run_dir/pretrain_test.log"
}
step top1 evaluate_classifier
top1=$(grep -oE 'accuracy/top1: [0-9.]+' "$run_dir/pretrain_test.log" |
       tail -n1 | cut -d' ' -f2)

detect() {  # detect CONFIG WORK_DIR [cfg-options...]: train, then evaluate
  local config=$1 work_dir=$2
  shift 2
  "$py" tools/train.py "$config" --work-dir "$work_dir" \
    --cfg-options "${options[@]}" "${detect_options[@]}" "$@"
  "$py" tools/test.py "$config" "$(cat "$work_dir/last_checkpoint")" \
    --work-dir "$work_dir/test" --cfg-options "${detect_options[@]}" 2>&1 |
    tee "$work_dir/eval_val.log"
}
say "detection from the pretrained backbone: $detect_config into $run_dir/detect"
step detect detect "$detect_config" "$run_dir/detect" \
  "model.backbone.init_cfg.checkpoint=$checkpoint"

if [[ $quick == 1 ]]; then
  say "QUICK: no detection from scratch (the same steps as above)"
elif [[ $scratch_reused == 0 ]]; then
  say "detection from scratch: $scratch_config into $scratch_dir"
  step scratch detect "$scratch_config" "$scratch_dir"
fi

ap() {  # ap EVAL_LOG bbox|segm: the COCO AP of a tools/test.py log
  grep -oE "coco/${2}_mAP: [0-9.]+" "$1" | tail -n1 | cut -d' ' -f2
}
name=$([[ $model == ce ]] && echo CE-ResNet-18 || echo ResNet-18)
scratch_time=$([[ $scratch_reused == 1 ]] && echo "(run_demo.sh's run)" ||
               minutes "${took[scratch]:-0}")
summary=$run_dir/summary.md
{
  echo "$name, seed $seed$([[ $quick == 1 ]] && echo ', QUICK (not meaningful)')"
  echo
  echo "| $name | top-1 (shapes-cls val) | bbox AP | segm AP | training + evaluation time |"
  echo "|---|---|---|---|---|"
  echo "| pretrained on shapes-cls | ${top1:-?} | $(ap "$run_dir/detect/eval_val.log" bbox) \
| $(ap "$run_dir/detect/eval_val.log" segm) | pretrain $(minutes "${took[pretrain]}") \
+ top-1 $(minutes "${took[top1]}") + detect $(minutes "${took[detect]}") |"
  if [[ $quick == 1 ]]; then
    echo "| from scratch | - | not run (QUICK) | | |"
  else
    echo "| from scratch | - | $(ap "$scratch_dir/eval_val.log" bbox) \
| $(ap "$scratch_dir/eval_val.log" segm) | $scratch_time |"
  fi
  echo
  echo "Data generation: $(minutes "${took[generate]}"); whole command: $(minutes "$SECONDS")."
  echo "Pretrained checkpoint: $checkpoint; detection logs: $run_dir/detect, $scratch_dir."
} | tee "$summary"
say "done; this table: $summary"
