#!/usr/bin/env bash
# Take a fresh machine (Python 3.11 + pip) to a working .venv in the checkout:
# torch + torchvision, mmengine, mmcv (built from source with its ops, patched
# for torch 2.14's C++20 headers), mmdet, mmpretrain, pycocotools, pytest and
# ce_mmdet itself in editable mode, pinned by tools/constraints.txt.
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
import mmcv, mmdet, mmengine, mmpretrain, pycocotools, pytest, ce_mmdet  # noqa: F401
import xdist  # noqa: F401  (pytest-xdist: tools/run_tests.sh)
import sphinx, myst_parser, furo, modelindex  # noqa: F401,E401  (tests/test_docs.py)
from mmcv.ops import RoIAlign, nms  # noqa: F401  (compiled ops present)
import torchvision.ops  # noqa: F401  (torchvision's ops fit this torch)
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

torch_version=$(pin torch | cut -d= -f3)
if "$py" -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$torch_version')" 2>/dev/null; then
  say "keeping torch $("$py" -c 'import torch; print(torch.__version__)')"
else
  # a CUDA build of several GB from PyPI; on this kind of machine pip takes
  # it from the local disk in about a minute
  say "installing $(pin torch) and $(pin torchvision)"
  pip_install -q "$(pin torch)" "$(pin torchvision)"
fi

say "installing build tools, mmengine and the pinned runtime libraries"
pip_install -q setuptools wheel ninja psutil numpy opencv-python matplotlib mmengine

# mmcv's compiled ops are tied to the torch they were built against: the
# build records it, and another torch means another build.
built_against=$venv/.mmcv_built_against_torch
mmcv_ok() {
  [[ -f $built_against && $(cat "$built_against") == "$torch_version" ]] || return 1
  "$py" - <<EOF 2>/dev/null
import mmcv
from mmcv.ops import nms  # noqa: F401
assert mmcv.__version__ == "$(pin mmcv | cut -d= -f3)", mmcv.__version__
EOF
}
# mmcv 2.1.0's setup.py compiles its ops with -std=c++17, and torch 2.14's
# headers require C++20 ("C++20 or later compatible compiler is required to
# use ATen"). Build from the sdist with exactly the two non-Windows flags
# (host compiler, nvcc) changed; a different sdist stops the build here.
MMCV_SDIST_SHA256=d387bcab66b467479b6660310e23746cfc79c6e57acf04094680adb499a5cd3f
STD_FLAG="(cxx'\\] = |nvcc'\\] \\+= )\\['-std=c\\+\\+"
patched_mmcv_source() {
  local work=$1 sdist setup_py
  "$py" -m pip download --disable-pip-version-check --no-deps --no-binary :all: \
    --no-build-isolation -d "$work" "$(pin mmcv)" >/dev/null 2>&1 || {
    say "could not download the $(pin mmcv) sdist" >&2; return 1; }
  sdist=$(ls "$work"/mmcv-*.tar.gz)
  if [[ $(sha256sum "$sdist" | cut -d' ' -f1) != "$MMCV_SDIST_SHA256" ]]; then
    say "$(basename "$sdist") is not the sdist the C++20 patch was written for (sha256 differs)" >&2
    return 1
  fi
  tar xzf "$sdist" -C "$work"
  setup_py=$work/mmcv-$(pin mmcv | cut -d= -f3)/setup.py
  if [[ $(grep -cE "${STD_FLAG}17'\\]" "$setup_py") != 2 ]]; then
    say "mmcv's setup.py does not hold the 2 expected -std=c++17 flags; not patching" >&2
    return 1
  fi
  sed -i -E "s/(${STD_FLAG})17'\\]/\\120']/" "$setup_py"
  if [[ $(grep -cE "${STD_FLAG}20'\\]" "$setup_py") != 2 ]]; then
    say "patching mmcv's setup.py failed" >&2
    return 1
  fi
  dirname "$setup_py"
}

if mmcv_ok; then
  say "keeping mmcv $("$py" -c 'import mmcv; print(mmcv.__version__)') (ops compiled)"
else
  # CUDA ops are built when the torch in the venv sees a GPU, CPU ops otherwise.
  log=$venv/mmcv-build.log
  work=$(mktemp -d)
  source_dir=$(patched_mmcv_source "$work") || exit 1
  say "building $(pin mmcv) (C++20) from source with its ops (9-33 minutes measured on 2 cores); log: $log"
  # --no-cache-dir: pip's wheel cache is keyed by the sdist, not by the
  # torch a wheel was built against
  MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} \
    "$py" -m pip install -v --no-cache-dir --no-build-isolation -c "$constraints" \
    "$source_dir" >"$log" 2>&1 &
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
  rm -rf "$work"
  echo "$torch_version" >"$built_against"
  mmcv_ok || { say "mmcv installed but its ops do not import; see $log"; exit 1; }
fi

say "installing mmdet, mmpretrain, pycocotools, pytest(-xdist), ruff, onnx(runtime, script), atheris, model-index, sphinx (myst-parser, furo) and ce_mmdet (editable)"
pip_install -q -e "$repo[tests,docs]"

check_ready || { say "environment check failed"; exit 1; }
echo "$fingerprint" >"$stamp"
say "environment ready: $venv"
