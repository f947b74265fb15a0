#!/usr/bin/env bash
# GPU check: CE, BNCE, CE-ResNet-50 and SyncCE on CUDA, then the CE and
# backbone benchmarks on CUDA, in under 8 minutes, as one Markdown report.
#
#   tools/gpu_check.sh                  # on a machine with a CUDA GPU
#   PYTHON=/path/to/python OUT_DIR=work_dirs/gpu_check tools/gpu_check.sh
#
# Steps (each under `timeout`, 460 s in all):
#   tests               tests/test_gpu.py with CE_MMDET_TEST_DEVICE=cuda
#                       (float32 against the float64 reference, the folded
#                       path, fp16/bf16 autocast, CE-ResNet-50 against the
#                       CPU, SyncCE over one NCCL process)         270 s
#   benchmark_ce        CE vs BatchNorm2d, default shapes, 5 repeats  90 s
#   benchmark_backbone  CE-ResNet-50 vs ResNet-50, default shapes,
#                       5 repeats                                   100 s
# The report goes to stdout and to $OUT_DIR/report.md, each step's output to
# $OUT_DIR/<step>.log (progress lines go to stderr).
# Exit status: 0 every step passed; 1 a step failed or timed out; 2 Python
# or torch could not be run; 3 no CUDA device (torch.cuda.is_available() is
# false): nothing was checked.
#
# Self-test of this script on a machine without a GPU: GPU_CHECK_DEVICE=cpu
# runs the same steps on the CPU with small benchmark inputs (no memory
# column) and writes the same report; GPU_CHECK_TESTS (space-separated pytest
# node ids, default tests/test_gpu.py) narrows the tests.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 2
PY=${PYTHON:-python}
OUT_DIR=${OUT_DIR:-work_dirs/gpu_check}
DEVICE=${GPU_CHECK_DEVICE:-cuda}
read -ra TESTS <<< "${GPU_CHECK_TESTS:-tests/test_gpu.py}"
# The checkout's ce_mmdet, whatever else is installed.
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"

case $DEVICE in
    cuda)
        MODE='CUDA'
        TEST_LIMIT=270 CE_LIMIT=90 BACKBONE_LIMIT=100
        CE_ARGS=(--device cuda --repeats 5)
        BACKBONE_ARGS=(--device cuda --variants ce --repeats 5) ;;
    cpu)
        MODE='CPU self-test (no GPU used: checks this script, not CUDA)'
        TEST_LIMIT=270 CE_LIMIT=90 BACKBONE_LIMIT=100
        CE_ARGS=(--device cpu --quick --no-memory)
        BACKBONE_ARGS=(--device cpu --variants ce --quick --no-memory --depth 18) ;;
    *)
        echo "gpu_check: GPU_CHECK_DEVICE must be cuda or cpu, got '$DEVICE'" >&2
        exit 2 ;;
esac

mkdir -p "$OUT_DIR" || exit 2

# ------------------------------------------------------------ environment
ENV_SCRIPT='
import sys
import torch
device = sys.argv[1]
cuda = torch.cuda.is_available()
print("cuda_available=%d" % cuda)
if device == "cuda" and cuda:
    props = torch.cuda.get_device_properties(0)
    print("- GPU: %s (compute capability %d.%d, %.0f GiB), %d visible"
          % (props.name, props.major, props.minor,
             props.total_memory / 2**30, torch.cuda.device_count()))
else:
    print("- GPU: none used (CPU self-test)")
print("- torch %s, CUDA %s, cuDNN %s, Python %s"
      % (torch.__version__, torch.version.cuda,
         torch.backends.cudnn.version(), sys.version.split()[0]))
'
if ! ENV_INFO=$(timeout 120 "$PY" -c "$ENV_SCRIPT" "$DEVICE" 2>"$OUT_DIR/env.log"); then
    echo "gpu_check: could not run torch with '$PY' (see $OUT_DIR/env.log):" >&2
    tail -n 5 "$OUT_DIR/env.log" >&2
    exit 2
fi
if [[ $DEVICE == cuda && $ENV_INFO != *cuda_available=1* ]]; then
    echo "gpu_check: torch.cuda.is_available() is false with '$PY': no CUDA" \
        "device, nothing checked (GPU_CHECK_DEVICE=cpu self-tests this" \
        "script on the CPU)" >&2
    exit 3
fi
MACHINE=$(grep -v '^cuda_available=' <<< "$ENV_INFO")

# ------------------------------------------------------------------ steps
STEP_NAMES=() STEP_COMMANDS=() STEP_STATUS=() STEP_TIMES=() STEP_LIMITS=()

# run_step NAME LIMIT_S CMD...: CMD under `timeout`, output to NAME.log.
run_step() {
    local name=$1 limit=$2 start=$SECONDS status
    shift 2
    echo "gpu_check: $name (limit ${limit} s) ..." >&2
    timeout --kill-after=10 "$limit" "$@" >"$OUT_DIR/$name.log" 2>&1
    status=$?
    local command="$*"
    STEP_NAMES+=("$name") STEP_COMMANDS+=("${command//"$PY"/python}")
    STEP_STATUS+=("$status")
    STEP_TIMES+=($((SECONDS - start))) STEP_LIMITS+=("$limit")
}

run_step tests "$TEST_LIMIT" env CE_MMDET_TEST_DEVICE="$DEVICE" \
    "$PY" -m pytest -q -p no:cacheprovider -rfE "${TESTS[@]}"
run_step benchmark_ce "$CE_LIMIT" \
    "$PY" tools/analysis_tools/benchmark_ce.py "${CE_ARGS[@]}"
run_step benchmark_backbone "$BACKBONE_LIMIT" \
    "$PY" tools/analysis_tools/benchmark_backbone.py "${BACKBONE_ARGS[@]}"

# ----------------------------------------------------------------- report
describe_status() {  # exit status -> words
    case $1 in
        0) echo '0 (passed)' ;;
        124|137) echo "$1 (timed out)" ;;
        *) echo "$1 (failed)" ;;
    esac
}

log_tail() {  # the end of a step's log, fenced
    echo '```'
    tail -n "${2:-20}" "$OUT_DIR/$1.log"
    echo '```'
}

benchmark_section() {  # NAME INDEX: its table (stdout lines), or its log's end
    echo
    echo "## $1"
    echo
    if [[ ${STEP_STATUS[$2]} == 0 ]]; then
        # The tools print a title line, a Markdown table and a summary line;
        # warnings (stderr, same log) start otherwise.
        grep -E '^(\||CE vs|ResNet-|worst )' "$OUT_DIR/$1.log"
    else
        echo "$(describe_status "${STEP_STATUS[$2]}"); end of $OUT_DIR/$1.log:"
        echo
        log_tail "$1"
    fi
}

failed=0
for status in "${STEP_STATUS[@]}"; do
    [[ $status == 0 ]] || failed=$((failed + 1))
done

{
    echo '# ce_mmdet GPU check'
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(hostname), commit" \
        "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)." \
        "Mode: $MODE."
    echo
    echo '## Machine'
    echo
    echo "$MACHINE"
    echo
    echo '## Steps'
    echo
    echo '| step | command | exit status | time s | limit s |'
    echo '|---|---|---|---|---|'
    for i in "${!STEP_NAMES[@]}"; do
        echo "| ${STEP_NAMES[$i]} | \`${STEP_COMMANDS[$i]}\` |" \
            "$(describe_status "${STEP_STATUS[$i]}") | ${STEP_TIMES[$i]} |" \
            "${STEP_LIMITS[$i]} |"
    done
    echo
    echo "Result: $([[ $failed == 0 ]] && echo PASSED || echo "FAILED ($failed of ${#STEP_NAMES[@]} steps)")."
    echo "Logs: $OUT_DIR/<step>.log; this report: $OUT_DIR/report.md."
    echo
    echo "## Tests (${TESTS[*]})"
    echo
    summary=$(grep -E '[0-9]+ (passed|failed|skipped|errors?|deselected)|no tests ran' \
        "$OUT_DIR/tests.log" | tail -n 1)
    echo "Summary: ${summary:-none (see below)}"
    echo
    failures=$(grep -E '^(FAILED|ERROR) ' "$OUT_DIR/tests.log")
    if [[ -n $failures ]]; then
        echo 'Failures:'
        echo
        echo '```'
        echo "$failures"
        echo '```'
    elif [[ ${STEP_STATUS[0]} == 0 ]]; then
        echo 'Failures: none.'
    else
        echo "$(describe_status "${STEP_STATUS[0]}"); end of $OUT_DIR/tests.log:"
        echo
        log_tail tests
    fi
    benchmark_section benchmark_ce 1
    benchmark_section benchmark_backbone 2
} > "$OUT_DIR/report.md"

cat "$OUT_DIR/report.md"
[[ $failed == 0 ]]
