#!/usr/bin/env bash
# One device call for the prefill GEMMs (int4_gemm.cu mma.sync, int4_gemm_sm90.cu wgmma): link the
# objects built on the dev machine (carry .gemv2/gobj) or build them here, then run the steps named
# on the command line:
#   check      correctness suite (bench_gemm --check)
#   sanitize   compute-sanitizer memcheck and racecheck on the small cases
#   ncu        Nsight Compute of single launches; NCU_CASES="N,K,M,cfg,splits;..." (cfg -1: dispatcher)
#   tune       every wgmma configuration x split count, fp16, at TUNE_MS (default 64,256,1024)
#   bench      fp16 and bf16, automatic path, at BENCH_MS (default 64,256,1024,4096,8192)
# Logs go to $OUT. Build command (the same flags on either machine):
#   F="-O3 -std=c++17 -Icsrc/include -Icsrc/kernels/cuda -gencode arch=compute_90a,code=sm_90a"
#   nvcc $F -c csrc/kernels/cuda/int4_gemm.cu -o g.o; nvcc $F -c csrc/kernels/cuda/int4_gemm_sm90.cu -o s.o
#   nvcc $F -c bench/cpp/bench_gemm.cu -o b.o; nvcc g.o s.o b.o -lcublas -o bench_gemm
set -uo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
t0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv,noheader | tee "$OUT/device.txt"
BIN=/tmp/bench_gemm
F="-O3 -std=c++17 -Icsrc/include -Icsrc/kernels/cuda -gencode arch=compute_90a,code=sm_90a"
if [ -d .gemv2/gobj ]; then
  nvcc -gencode arch=compute_90a,code=sm_90a .gemv2/gobj/*.o -lcublas -o $BIN || exit 1
else
  nvcc $F -c csrc/kernels/cuda/int4_gemm.cu -o /tmp/g.o && nvcc $F -c csrc/kernels/cuda/int4_gemm_sm90.cu -o /tmp/s.o &&
    nvcc $F -c bench/cpp/bench_gemm.cu -o /tmp/b.o && nvcc /tmp/g.o /tmp/s.o /tmp/b.o -lcublas -o $BIN || exit 1
fi
stamp built
for step in "$@"; do
  case $step in
    check) stamp check; timeout ${T_CHECK:-150} $BIN --check > "$OUT/check.log" 2>&1; echo "check rc=$?"
      grep -E "FAIL|wrong|cases run|failure" "$OUT/check.log" | tail -12 ;;
    sanitize) stamp sanitize
      for tool in memcheck racecheck; do
        timeout ${T_SAN:-150} compute-sanitizer --tool $tool --error-exitcode 3 $BIN --sanitize > "$OUT/$tool.log" 2>&1
        echo "$tool rc=$?"; tail -3 "$OUT/$tool.log"
      done ;;
    ncu) stamp ncu
      IFS=';' read -ra cases <<< "${NCU_CASES:-28672,8192,64,1,0;4096,4096,4096,6,1}"
      for c in "${cases[@]}"; do
        echo "=== case $c" >> "$OUT/ncu.log"
        timeout 90 ncu --section SpeedOfLight --section MemoryWorkloadAnalysis --section WarpStateStats \
          --section SchedulerStats --section Occupancy --section LaunchStats --section SourceCounters \
          -k regex:wgmma --launch-skip 1 --launch-count 1 $BIN --one=$c >> "$OUT/ncu.log" 2>&1
      done
      grep -E "=== case|Duration|DRAM Throughput|L2 Cache Throughput|L1/TEX Cache Throughput|Compute \(SM\) Throughput|Achieved Occupancy|Registers Per|Warp Cycles Per Issued|Issue Slots Busy|No Eligible|Stall" "$OUT/ncu.log" | head -80 ;;
    tune) stamp tune; timeout ${T_BENCH:-200} $BIN --bench --tune --dtypes=fp16 --ms=${TUNE_MS:-64,256,1024} > "$OUT/tune.log" 2>&1
      echo "tune rc=$?"; grep -E "^fp16|^bf16" "$OUT/tune.log" | cut -c1-200 ;;
    bench) stamp bench; timeout ${T_BENCH:-200} $BIN --bench --ms=${BENCH_MS:-64,256,1024,4096,8192} > "$OUT/bench.log" 2>&1
      echo "bench rc=$?"; sed -n '/^## /,$p' "$OUT/bench.log" | tail -30 ;;
  esac
done
stamp done
