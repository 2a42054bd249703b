#!/usr/bin/env bash
# One device call for the decode GEMV (int4_linear, M <= 16): link the objects built on the dev machine
# (or build them here when .gemv2/obj is absent), then run the steps named on the command line:
#   check     correctness suite (bench_linear --check)
#   memcheck  compute-sanitizer memcheck on the small cases     racecheck  likewise, racecheck
#   sweep     fp16 and bf16 benchmark + sweep of all streaming candidates (M 1,2,4,8,16)
#   ncu       Nsight Compute sections of one launch: the big layer with a streaming candidate and with
#             the register-pipelined GEMV, and 4096 x 4096
#   bench     fp16 and bf16 benchmark of the library's choice (M 1,2,4,8,16)
# Logs go to $OUT. Build command (the same flags on either machine):
#   nvcc -O3 -std=c++17 -DAWQ_GEMV_TUNING -Icsrc/include -Icsrc/kernels/cuda
#        -gencode arch=compute_90a,code=sm_90a -Xcompiler -fopenmp
#        bench/cpp/bench_linear.cu csrc/kernels/cuda/int4_linear.cu bench/cpp/int4_gemm_stub.cu -lcublas -lgomp
set -uo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
t0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv,noheader | tee "$OUT/device.txt"
BIN=/tmp/bl
if [ -d .gemv2/obj ]; then
  nvcc -gencode arch=compute_90a,code=sm_90a .gemv2/obj/*.o -lcublas -lgomp -o $BIN || exit 1
else
  nvcc -O3 -std=c++17 -DAWQ_GEMV_TUNING -Icsrc/include -Icsrc/kernels/cuda -gencode arch=compute_90a,code=sm_90a \
    -Xcompiler -fopenmp bench/cpp/bench_linear.cu csrc/kernels/cuda/int4_linear.cu bench/cpp/int4_gemm_stub.cu \
    -lcublas -lgomp -o $BIN || exit 1
fi
stamp built
for step in "$@"; do
  case $step in
    check) stamp check; timeout ${T_CHECK:-90} $BIN --check > "$OUT/check.log" 2>&1; echo "check rc=$?"; grep -E "^FAIL|cases passed|PDL chain" "$OUT/check.log" | tail -20 ;;
    memcheck) stamp memcheck; timeout ${T_SAN:-60} compute-sanitizer --tool memcheck --error-exitcode 3 $BIN --sanitize > "$OUT/memcheck.log" 2>&1; echo "memcheck rc=$?"; tail -4 "$OUT/memcheck.log" ;;
    racecheck) stamp racecheck; timeout ${T_SAN:-60} compute-sanitizer --tool racecheck --error-exitcode 3 $BIN --sanitize > "$OUT/racecheck.log" 2>&1; echo "racecheck rc=$?"; tail -4 "$OUT/racecheck.log" ;;
    sweep) stamp sweep; timeout ${T_BENCH:-100} $BIN --sweep --dtype both --m 1,2,4,8,16 > "$OUT/sweep.log" 2>&1; echo "sweep rc=$?"; grep -A 60 "^### " "$OUT/sweep.log" ;;
    ncu) stamp ncu
      for c in "28672 8192 1 ${NCU_CFG:-8}" "28672 8192 1 1000" "4096 4096 1 ${NCU_CFG_SMALL:-12}"; do
        timeout 40 ncu --section SpeedOfLight --section MemoryWorkloadAnalysis --section WarpStateStats \
          --section Occupancy --section LaunchStats -k regex:int4 --launch-skip 1 --launch-count 1 $BIN --one $c \
          >> "$OUT/ncu.log" 2>&1
      done
      grep -E "one:|Memory Throughput|DRAM Throughput|Duration|Achieved Occupancy|Theoretical Occupancy|Registers Per|Warp Cycles Per Issued|Block Limit Shared" "$OUT/ncu.log" | head -60 ;;
    bench) stamp bench; timeout ${T_BENCH:-100} $BIN --bench --dtype both --m 1,2,4,8,16 --out "$OUT/bench.md" > "$OUT/bench.log" 2>&1; echo "bench rc=$?"; cat "$OUT/bench.md" ;;
  esac
done
stamp done
