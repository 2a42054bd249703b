#!/usr/bin/env bash
# One device call: build the extension for the local GPU, run the test suite (CUDA tests included),
# compute-sanitizer on the CUDA tests, then the benchmarks. Logs and results go to $OUT.
# Usage (device machine, repo root):  bash bench/device_run.sh [build|test|sanitize|bench|all] ...
set -uo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 MAX_JOBS=${MAX_JOBS:-16}
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0a}
steps=${*:-all}
has() { [[ " $steps " == *" $1 "* || " $steps " == *" all "* ]]; }
t0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - t0 ))s] $*"; }

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/device.txt"
if has build; then
  stamp build
  python3 setup.py build_ext --inplace > "$OUT/build.log" 2>&1 || { tail -60 "$OUT/build.log"; exit 1; }
  python3 -c "import awq_ext; print(awq_ext.build_info())"
fi
if has test; then
  stamp test
  python3 -m pytest tests -q -x -ra -p no:cacheprovider --deselect tests/test_smollm2.py > "$OUT/pytest.log" 2>&1
  echo "pytest rc=$?"; tail -15 "$OUT/pytest.log"
fi
if has sanitize; then
  stamp sanitize
  for tool in memcheck racecheck; do
    compute-sanitizer --tool $tool --error-exitcode 9 python3 -m pytest -q -x -p no:cacheprovider \
      tests/test_ops.py -k "cuda and (pseudo or quantize or act_stats or clip or awq_layout or int4_linear_accuracy)" \
      > "$OUT/sanitize_$tool.log" 2>&1
    echo "compute-sanitizer $tool rc=$?"; grep -E "ERROR SUMMARY|passed|failed" "$OUT/sanitize_$tool.log" | tail -3
  done
fi
stamp done
