#!/usr/bin/env bash
# Take a fresh machine (Python 3.11 + pip) to a working .venv in the checkout:
# torch, mmengine, mmcv (built from source with its ops), mmdet, pycocotools,
# pytest and ce_mmdet itself in editable mode, pinned by tools/constraints.txt.
#
# Idempotent: a second run on a ready .venv only checks it (seconds).
# Environment: CE_MMDET_VENV (default: <checkout>/.venv), PYTHON (default:
# python3.11 or python3), MAX_JOBS (parallel compile jobs for mmcv).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${CE_MMDET_VENV:-$repo/.venv}
constraints=$repo/tools/constraints.txt
stamp=$venv/.ce_mmdet_env
py=$venv/bin/python

say() { printf '[setup_env %s] %s\n' "$(date +%H:%M:%S)" "$*"; }

# The stamp ties a ready venv to the pins and the package metadata it was built from.
fingerprint=$(cat "$constraints" "$repo/setup.py" | sha256sum | cut -d' ' -f1)
check_ready() {
  "$py" - <<'EOF' 2>/dev/null
import mmcv, mmdet, mmengine, pycocotools, pytest, ce_mmdet  # noqa: F401
from mmcv.ops import RoIAlign, nms  # noqa: F401  (compiled ops present)
EOF
}
if [[ -f $stamp && $(cat "$stamp") == "$fingerprint" ]] && check_ready; then
  say "environment ready: $venv"
  exit 0
fi

pin() { grep -E "^$1([=<>!~ ]|$)" "$constraints" | head -n1; }

if [[ ! -x $py ]]; then
  base=${PYTHON:-$(command -v python3.11 || command -v python3)}
  say "creating $venv with $($base --version)"
  "$base" -m venv "$venv"
fi
# (sed drops pip's noise about this machine's unused local index folders.)
pip_install() {
  "$py" -m pip install --disable-pip-version-check -c "$constraints" "$@" 2>&1 |
    sed '/is ignored: it is neither a file nor a directory/d'
}

if "$py" -c 'import torch' 2>/dev/null; then
  say "keeping torch $("$py" -c 'import torch; print(torch.__version__)')"
else
  say "installing $(pin torch)"
  pip_install -q "$(pin torch)"
fi

say "installing build tools, mmengine and the pinned runtime libraries"
pip_install -q setuptools wheel ninja psutil numpy opencv-python matplotlib mmengine

mmcv_ok() {
  "$py" - <<EOF 2>/dev/null
import mmcv
from mmcv.ops import nms  # noqa: F401
assert mmcv.__version__ == "$(pin mmcv | cut -d= -f3)", mmcv.__version__
EOF
}
if mmcv_ok; then
  say "keeping mmcv $("$py" -c 'import mmcv; print(mmcv.__version__)') (ops compiled)"
else
  # CUDA ops are built when the torch in the venv sees a GPU, CPU ops otherwise.
  log=$venv/mmcv-build.log
  say "building $(pin mmcv) from source with its ops (10-30 minutes on 2 cores); log: $log"
  MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} \
    "$py" -m pip install -v --no-build-isolation -c "$constraints" "$(pin mmcv)" >"$log" 2>&1 &
  build=$!
  start=$SECONDS
  while kill -0 "$build" 2>/dev/null; do
    sleep 30
    step=$(grep -oE '\[[0-9]+/[0-9]+\]' "$log" | tail -n1 || true)
    say "  mmcv build: $(( (SECONDS - start) / 60 )) min ${step:+, compile step $step}"
  done
  if ! wait "$build"; then
    tail -n 40 "$log" >&2
    say "mmcv build failed; see $log"
    exit 1
  fi
  mmcv_ok || { say "mmcv installed but its ops do not import; see $log"; exit 1; }
fi

say "installing mmdet, pycocotools, pytest, ruff, onnx(runtime, script) and ce_mmdet (editable)"
pip_install -q -e "$repo[tests]"

check_ready || { say "environment check failed"; exit 1; }
echo "$fingerprint" >"$stamp"
say "environment ready: $venv"
