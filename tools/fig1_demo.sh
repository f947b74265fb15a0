#!/usr/bin/env bash
# The paper's Fig. 1 on classifiers (`bash tools/run_demo.sh fig1` runs this):
#   1. set up the environment (tools/setup_env.sh; seconds when ready),
#   2. generate the CIFAR-scale shapes set (data/shapes10: 10 classes,
#      32x32, 20000 train / 2000 val) if it is missing,
#   3. train the Fig. 1 classifiers of configs/fig1/ with MMPretrain's
#      training script (tools/pretrain/train.py): BN, BN+CE, LN, LN+CE, ELU,
#      CE+ELU, LeakyReLU, CE+LeakyReLU at seed 0, and BN, BN+CE at seed 1,
#   4. measure each as soon as it is trained (tools/analysis_tools/
#      fig1_report.py --measure-only): inhibited channels (relative tau, dead,
#      small) and cumulative ablation (top-1 as channels are zeroed), kept in
#      its work dir, and write work_dirs/fig1/report/fig1.{md,png,json}.
# A model already trained (its work dir holds last_checkpoint) is not
# trained again, nor measured again while its checkpoint and the measuring
# settings are those of its fig1_measurement.json: delete
# work_dirs/fig1/<config>_seed<S> to retrain it.
#
# Trainings and measurements run JOBS at a time (default: one per core), each
# on one thread with its output in work_dirs/fig1/logs/: these small networks
# use two single-thread processes better than one two-thread process.
#
# Usage: bash tools/fig1_demo.sh
# Environment: QUICK=1 (BN and BN+CE, seed 0, a few iterations each on a
# small set; checks the pipeline, no meaningful numbers), MODELS (labels, e.g.
# "BN BN+CE"), SEEDS (default "0"), EXTRA_SEEDS (BN and BN+CE only, default
# "1"), JOBS (trainings at once), CE_MMDET_VENV (see tools/setup_env.sh).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"  # the configs' data roots are relative

quick=${QUICK:-0}
jobs=${JOBS:-$(nproc 2>/dev/null || echo 1)}
if ! [[ $jobs =~ ^[1-9][0-9]*$ ]]; then
  echo "fig1_demo.sh: JOBS must be a positive integer, got '$jobs'" >&2
  exit 2
fi
if (( BASH_VERSINFO[0] * 100 + BASH_VERSINFO[1] < 501 )); then
  jobs=1  # 'wait -n -p' (which training ended) needs bash 5.1
fi
models=${MODELS:-"BN BN+CE LN LN+CE ELU CE+ELU LeakyReLU CE+LeakyReLU"}
seeds=${SEEDS:-0}
extra_seeds=${EXTRA_SEEDS:-1}
root=work_dirs/fig1
data=data/shapes10
train_options=()
report_options=()
if [[ $quick == 1 ]]; then
  models=${MODELS:-"BN BN+CE"}
  extra_seeds=${EXTRA_SEEDS:-}
  root=work_dirs/fig1_quick
  data=data/shapes10_quick
  train_options=(train_cfg.max_epochs=1 train_cfg.val_interval=100
                 default_hooks.checkpoint.interval=1
                 default_hooks.logger.interval=1
                 "train_dataloader.dataset.data_root=$data"
                 "val_dataloader.dataset.data_root=$data"
                 "test_dataloader.dataset.data_root=$data")
  report_options=(--analysis-images 20 --ablation-images 20
                  --ablation-seeds 0 --fractions 0 0.5 0.9 --cfg-options
                  "val_dataloader.dataset.data_root=$data"
                  "test_dataloader.dataset.data_root=$data")
fi

say() { printf '\n[fig1_demo %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
minutes() { printf '%d min %02d s' $(($1 / 60)) $(($1 % 60)); }

bash tools/setup_env.sh
py=${CE_MMDET_VENV:-$repo/.venv}/bin/python

# label -> config stem, from the one table of them (ce_mmdet.analysis.fig1)
declare -A config_of
while read -r label stem; do config_of[$label]=$stem; done < <(
  "$py" -c "from ce_mmdet.analysis.fig1 import FIG1_MODELS
for label, (stem, _, _) in FIG1_MODELS.items(): print(label, stem)")
for model in $models; do
  if [[ -z ${config_of[$model]:-} ]]; then
    echo "fig1_demo.sh: unknown model '$model'; known: ${!config_of[*]}" >&2
    exit 2
  fi
done

runs=()
for model in $models; do
  for seed in $seeds; do runs+=("$model:$seed"); done
  if [[ $model == BN || $model == BN+CE ]]; then
    for seed in $extra_seeds; do
      [[ " $seeds " == *" $seed "* ]] || runs+=("$model:$seed")
    done
  fi
done
say "expected: 50-70 minutes on 2 otherwise idle CPU cores (49 min 46 s on an \
AMD EPYC with data generation, 70 min 12 s on an Intel machine without): the ${#runs[@]} trainings ($jobs at a time, 6-8 minutes \
each without CE and 8-10 with, on one thread) and their measurements (1.5-2 \
minutes each, as soon as each model is trained)$([[ $quick == 1 ]] && \
echo '; QUICK: 1-2 minutes'). Each training log prints the estimate \
measured here ('Expected duration')."

start=$SECONDS
if [[ -d $data/train && -d $data/val ]]; then
  say "using the existing $data"
elif [[ $quick == 1 ]]; then
  "$py" tools/generate_shapes_classification_set.py --set cifar \
    --out-dir "$data" --num-train 200 --num-val 50 --no-progress
else
  say "generating the CIFAR-scale shapes set into $data"
  "$py" tools/generate_shapes_classification_set.py --set cifar \
    --out-dir "$data" --no-progress
fi
generate_time=$((SECONDS - start))

# Trainings and measurements share the JOBS slots: a model is measured
# (fig1_report.py --measure-only, kept in its work dir) as soon as it is
# trained, ahead of the next training, so that no core idles while the last
# trainings finish; the report then reads the kept measurements.
declare -A took measure_took started run_of kind_of log_of
work_dir_of() {  # work_dir_of MODEL:SEED
  echo "$root/${config_of[${1%:*}]}_seed${1#*:}"
}
to_train=() to_measure=()
for run in "${runs[@]}"; do
  if [[ -f $(work_dir_of "$run")/last_checkpoint ]]; then
    say "${run%:*} seed ${run#*:}: trained already ($(work_dir_of "$run"))"
    to_measure+=("$run")
  else
    to_train+=("$run")
  fi
done
mkdir -p "$root/logs"
start_next() {  # start the next measurement, else the next training
  local run kind model seed stem work_dir
  if (( ${#to_measure[@]} > 0 )); then
    run=${to_measure[0]} kind=measure
    to_measure=("${to_measure[@]:1}")
  else
    run=${to_train[0]} kind=train
    to_train=("${to_train[@]:1}")
  fi
  model=${run%:*} seed=${run#*:}
  stem=${config_of[$model]} work_dir=$(work_dir_of "$run")
  log_of[$kind:$run]=$root/logs/${stem}_seed${seed}_$kind.log
  started[$kind:$run]=$SECONDS
  if [[ $kind == train ]]; then
    say "training $model seed $seed: configs/fig1/$stem.py into $work_dir (log: ${log_of[$kind:$run]})"
    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 "$py" tools/pretrain/train.py \
      "configs/fig1/$stem.py" --work-dir "$work_dir" \
      --cfg-options "randomness.seed=$seed" "${train_options[@]}" \
      >"${log_of[$kind:$run]}" 2>&1 &
  else
    say "measuring $model seed $seed (log: ${log_of[$kind:$run]})"
    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 "$py" \
      tools/analysis_tools/fig1_report.py --measure-only --models "$model" \
      --seeds "$seed" --work-root "$root" "${report_options[@]}" \
      >"${log_of[$kind:$run]}" 2>&1 &
  fi
  run_of[$!]=$run kind_of[$!]=$kind
}
finish_one() {  # wait for any job; stop everything if it failed
  local pid status=0
  wait -n -p pid || status=$?
  local run=${run_of[$pid]} kind=${kind_of[$pid]}
  local seconds=$((SECONDS - started[$kind:$run]))
  if [[ $status -ne 0 ]]; then
    tail -n 30 "${log_of[$kind:$run]}" >&2
    say "${kind}ing $run failed (exit $status); its log: ${log_of[$kind:$run]}"
    kill $(jobs -p) 2>/dev/null || true
    exit 1
  fi
  if [[ $kind == train ]]; then
    took[$run]=$seconds
    to_measure+=("$run")
    say "trained $run in $(minutes "$seconds") ($(grep -o 'accuracy/top1: [0-9.]*' "${log_of[$kind:$run]}" | tail -n 1))"
  else
    measure_took[$run]=$seconds
    say "measured $run in $(minutes "$seconds")"
  fi
}
running=0
jobs_start=$SECONDS
while :; do
  if (( running < jobs && ${#to_measure[@]} + ${#to_train[@]} > 0 )); then
    start_next
    running=$((running + 1))
  elif (( running > 0 )); then
    finish_one
    running=$((running - 1))
  else
    break
  fi
done
jobs_time=$((SECONDS - jobs_start))

say "writing the report from the kept measurements"
start=$SECONDS
seed_list=($seeds)
extra_list=($extra_seeds)
"$py" tools/analysis_tools/fig1_report.py --models $models \
  --seeds "${seed_list[@]}" ${extra_list[@]:+--extra-seeds "${extra_list[@]}"} \
  --work-root "$root" --out-dir "$root/report" "${report_options[@]}"
report_time=$((SECONDS - start))

{
  echo
  echo "Data: $(minutes "$generate_time"); trainings and measurements: $(minutes "$jobs_time") ($jobs at a time); report: $(minutes "$report_time");"
  for run in "${runs[@]}"; do
    echo "$run: training $(minutes "${took[$run]:-0}")$([[ -z ${took[$run]:-} ]] && echo ' (trained before)'), measurement $(minutes "${measure_took[$run]:-0}")"
  done
  echo "whole command: $(minutes "$SECONDS")."
} | tee -a "$root/report/fig1.md"
say "done: $root/report/fig1.md, $root/report/fig1.png"
