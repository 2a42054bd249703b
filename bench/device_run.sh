#!/usr/bin/env bash
# One device call: build the extension for the local GPU, run the test suite (CUDA tests included),
# compute-sanitizer on the CUDA tests, then the benchmarks. Logs and results go to $OUT.
# Usage (device machine, repo root):  bash bench/device_run.sh [build|test|sanitize|bench|pipeline|all] ...
set -uo pipefail
# everything is written under $RES and packed into one archive in $OUT at the end (the device tool
# brings back at most 8 files)
FINAL_OUT=${OUT:-/tmp/out}
RES=/tmp/awq_results
rm -rf "$RES"; mkdir -p "$RES" "$FINAL_OUT"
OUT=$RES
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 MAX_JOBS=${MAX_JOBS:-16}
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
  python3 -m pytest tests -q -ra -p no:cacheprovider --ignore=tests/test_smollm2.py --ignore=tests/test_pipeline.py > "$OUT/pytest.log" 2>&1
  echo "pytest rc=$?"; tail -15 "$OUT/pytest.log"
fi
if has sanitize; then
  stamp sanitize
  for tool in memcheck racecheck; do
    compute-sanitizer --tool $tool --error-exitcode 9 python3 -m pytest -q -x -p no:cacheprovider \
      tests/test_ops.py -k "cuda and dtype0" \
      > "$OUT/sanitize_$tool.log" 2>&1
    echo "compute-sanitizer $tool rc=$?"; grep -E "ERROR SUMMARY|passed|failed" "$OUT/sanitize_$tool.log" | tail -3
  done
fi
if has bench; then
  stamp bench
  mkdir -p "$OUT/bench"
  python3 bench/bench_linear.py --out "$OUT/bench" > "$OUT/bench_linear_fp16.log" 2>&1; echo "bench_linear fp16 rc=$?"
  python3 bench/bench_linear.py --dtype bfloat16 --m 1,4,16,32,64,256,1024,4096 --out "$OUT/bench_bf16" --no-plot \
    > "$OUT/bench_linear_bf16.log" 2>&1; echo "bench_linear bf16 rc=$?"
  python3 bench/bench_quant.py --out "$OUT/bench/quant_ops.md" > "$OUT/bench_quant.log" 2>&1; echo "bench_quant rc=$?"
  tail -45 "$OUT/bench_linear_fp16.log"
fi
if has pipeline; then
  stamp pipeline
  python3 -m pytest tests/test_pipeline.py -q -p no:cacheprovider > "$OUT/pytest_pipeline.log" 2>&1
  echo "pytest pipeline (quantizes on CUDA) rc=$?"; tail -3 "$OUT/pytest_pipeline.log"
  mkdir -p "$OUT/bench"
  timeout ${PIPELINE_TIMEOUT:-400} python3 bench/bench_pipeline.py --out "$OUT/bench/pipeline_7b.md" \
    > "$OUT/bench_pipeline.log" 2>&1
  echo "bench_pipeline rc=$?"; tail -32 "$OUT/bench_pipeline.log"
fi
stamp done
tar -czf "$FINAL_OUT/results.tar.gz" -C "$RES" .
ls -la "$FINAL_OUT"
