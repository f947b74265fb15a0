#!/usr/bin/env bash
# The main job on the embedded default dataset, from a fresh checkout:
#   1. set up the environment (tools/setup_env.sh; seconds when ready),
#   2. generate the synthetic shapes set into data/shapes if it is missing,
#   3. train Mask R-CNN + FPN with CE-ResNet-18 from scratch (tools/train.py),
#   4. evaluate the final checkpoint on the val split (tools/test.py: COCO
#      bbox and segm AP) and draw its predictions on a few val images,
#   5. plot the training loss curve.
# Steps 3 and 4 are the steps detect-ce-scratch and eval-ce-scratch of
# `tools/reproduce_table3.py --preset shapes`: a finished run is reused
# (by its fingerprint), an interrupted one resumes, and `run_demo.sh table3`
# reuses this run for its from-scratch row.
# 7-13 minutes on 2 otherwise idle CPU cores (measured 6 min 44 s to 12 min
# 41 s; up to 23 on the slowest machine seen: docs/en/benchmarks.md); the
# training log prints the estimate measured on this machine after 30
# iterations ("Expected duration: ...").
#
# Usage: bash tools/run_demo.sh [ce|plain]
#   ce     CE-ResNet-18 (default)
#   plain  the same job with mmdet's plain ResNet-18, for comparison
#        bash tools/run_demo.sh table3 [reproduce_table3.py options]
#   Table 3 on the embedded default: CE-ResNet-18 and ResNet-18 pretrained
#   with MMPretrain on a generated classification set, detection from that
#   checkpoint and from scratch, one table (tools/reproduce_table3.py
#   --preset shapes)
#        bash tools/run_demo.sh pretrain [ce|plain]
#   the same for one backbone
#        bash tools/run_demo.sh fig1
#   the paper's Fig. 1 on classifiers: inhibited channels and cumulative
#   ablation of VGG pairs without / with CE (tools/fig1_demo.sh)
#        bash tools/run_demo.sh compare [VARIANT ...]   (compare_blocks.py)
# Environment: MODEL (instead of the argument), NUM_VIS (val images drawn,
# default 8), CE_MMDET_VENV (see tools/setup_env.sh).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"  # the configs' data_root (data/shapes/) is relative to the checkout

# `compare [VARIANT ...] [options]`: train, evaluate and analyse several
# blocks one after another (see tools/analysis_tools/compare_blocks.py -h).
if [[ ${1:-} == compare ]]; then
  shift
  bash tools/setup_env.sh
  exec "${CE_MMDET_VENV:-$repo/.venv}/bin/python" \
    tools/analysis_tools/compare_blocks.py "$@"
fi

# `table3 [options]`, `pretrain [ce|plain]`: Table 3 on the embedded default
# (tools/reproduce_table3.py --preset shapes; QUICK=1: --quick).
if [[ ${1:-} == table3 || ${1:-} == pretrain ]]; then
  job=$1
  shift
  options=()
  if [[ $job == pretrain ]]; then
    model=${1:-ce}
    case $model in
      ce|plain) shift || true ;;
      *) echo "usage: bash tools/run_demo.sh pretrain [ce|plain]  (got '$model')" >&2
         exit 2 ;;
    esac
    options=(--models "$model")
  fi
  [[ ${QUICK:-0} == 1 ]] && options+=(--quick)
  [[ -n ${SEED:-} ]] && options+=(--seed "$SEED")
  bash tools/setup_env.sh
  exec "${CE_MMDET_VENV:-$repo/.venv}/bin/python" tools/reproduce_table3.py \
    --preset shapes "${options[@]}" "$@"
fi

# `fig1`: the paper's Fig. 1 on classifiers: train the pairs without / with
# CE, measure inhibited channels and cumulative ablation (see
# tools/fig1_demo.sh).
if [[ ${1:-} == fig1 ]]; then
  shift
  exec bash tools/fig1_demo.sh "$@"
fi

model=${1:-${MODEL:-ce}}
case $model in
  ce) config=configs/shapes/mask_rcnn_ce_r18_fpn_shapes.py ;;
  plain) config=configs/shapes/mask_rcnn_r18_fpn_shapes.py ;;
  *) echo "usage: bash tools/run_demo.sh [ce|plain]  (got '$model')" >&2; exit 2 ;;
esac
num_vis=${NUM_VIS:-8}
name=$(basename "$config" .py)
work_dir=work_dirs/$name

say() { printf '\n[run_demo %s] %s\n' "$(date +%H:%M:%S)" "$*"; }

bash tools/setup_env.sh
py=${CE_MMDET_VENV:-$repo/.venv}/bin/python
say "expected: 7-13 minutes on 2 otherwise idle CPU cores (measured; up to 23 \
on the slowest machine seen). After 30 training iterations the log prints the \
estimate measured here ('Expected duration: ...')."

say "training $config into $work_dir, then evaluating it (the steps \
detect-$model-scratch and eval-$model-scratch of the shapes preset)"
# (No validation inside the training: the evaluation is its own step.)
"$py" tools/reproduce_table3.py --preset shapes --models "$model" \
  --steps "eval-$model-scratch" --no-probe --show-logs
checkpoint=$(cat "$work_dir/last_checkpoint")
eval_log=$work_dir/test/eval-$model-scratch.log
# The newest run folder of train.py (<timestamp>/ with its logs).
train_run=$(ls -td "$work_dir"/[0-9]*_[0-9]*/ | head -n1)
train_run=${train_run%/}

say "drawing predictions on $num_vis val images"
# Predictions only (format_only: no second AP table on the subset).
vis_dir=$work_dir/vis
"$py" tools/test.py "$config" "$checkpoint" --work-dir "$work_dir/vis_run" \
  --show-dir "$repo/$vis_dir" \
  --cfg-options "test_dataloader.dataset.indices=$num_vis" \
  test_evaluator.format_only=True \
  "test_evaluator.outfile_prefix=$work_dir/vis_run/predictions" \
  >"$work_dir/vis_run.log" 2>&1

say "plotting the training loss"
loss_png=$work_dir/loss_curve.png
"$py" - "$train_run/vis_data/scalars.json" "$loss_png" "$name" <<'EOF'
"""Plot the loss terms of an MMEngine scalars.json against the iteration."""
import json
import sys

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402

scalars, out, title = sys.argv[1:]
with open(scalars) as f:
    records = [json.loads(line) for line in f]
train = [r for r in records if 'loss' in r]  # val records carry no loss
keys = [k for k in train[0] if k.startswith('loss')]
fig, ax = plt.subplots(figsize=(9, 5))
for key in keys:
    ax.plot([r['step'] for r in train], [r[key] for r in train], label=key,
            linewidth=2 if key == 'loss' else 1)
ax.set(xlabel='iteration', ylabel='loss', yscale='log', title=title)
ax.grid(True, which='both', alpha=0.3)
ax.legend(loc='upper left', bbox_to_anchor=(1.01, 1))
fig.tight_layout()
fig.savefig(out, dpi=100)
print(f'wrote {out}')
EOF

say "done"
echo "AP table (bbox, segm):  $eval_log"
grep -E '(bbox|segm)_mAP_copypaste' "$eval_log" | sed 's/^.*INFO - /    /'
echo "    (order: AP, AP50, AP75, AP_small, AP_medium, AP_large)"
echo "predictions drawn:      $vis_dir/ ($num_vis val images)"
echo "loss curve:             $loss_png"
echo "training log:           $train_run/$(basename "$train_run").log"
echo "final checkpoint:       $checkpoint"
