#!/usr/bin/env bash
# One device call for the search kernels (act_stats, pseudo_quantize, quantize_int4, dequantize_int4):
# build bench_quant with nvcc (plus tuning variants and, when .qt_base/ holds older kernel sources,
# a baseline), check, benchmark, compute-sanitizer, ncu, SASS instruction counts. Logs go to $OUT.
# Run from the repository root on the GPU machine:  bash bench/cpp/quant_device.sh
set -uo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
B=/tmp/qb
mkdir -p $B
T0=$(date +%s)
LIMIT=${LIMIT:-190}
stamp() { echo "[$(( $(date +%s) - T0 ))s] $*"; }
left() { echo $(( LIMIT - ($(date +%s) - T0) )); }
# run STEP_MAX_SECONDS CMD...: skipped when too little time is left, else bounded by the time left
step() {
  local max=$1; shift
  local l; l=$(left)
  if (( l < 10 )); then stamp "skip (time): $*"; return; fi
  (( max > l - 5 )) && max=$(( l - 5 ))
  stamp "$*"
  timeout "$max" "$@"
  echo "  rc=$?"
}
NV="nvcc -std=c++17 -O3 -Icsrc/include -Icsrc/kernels/cuda -gencode arch=compute_90a,code=sm_90a"
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,temperature.gpu,power.draw,power.limit --format=csv | tee "$OUT/logs.txt"
date -u | tee -a "$OUT/logs.txt"
stamp build
$NV -c csrc/kernels/cuda/clip_search.cu -o $B/clip.o &
$NV -c bench/cpp/bench_quant.cu -o $B/bench.o &
$NV -Xptxas -v -c csrc/kernels/cuda/act_stats.cu -o $B/act.o 2> $B/act.ptxas &
$NV -Xptxas -v -c csrc/kernels/cuda/quantize.cu -o $B/quant.o 2> $B/quant.ptxas &
# tuning variants (same sources, other compile-time constants), each checked and timed like the main
# build: space-separated variants, the -D flags of one variant joined by commas
VARIANTS=${VARIANTS-"-DAWQ_QUANT_ROWS=4 -DAWQ_ACT_THREADS=1024,-DAWQ_ACT_UNROLL=4"}
nv=0
for v in $VARIANTS; do
  nv=$((nv + 1))
  $NV ${v//,/ } -c csrc/kernels/cuda/act_stats.cu -o $B/act_v$nv.o &
  # ACT_ONLY=1: the variants change act_stats.cu only (their quantize.cu is the main build's)
  (( ${ACT_ONLY:-0} )) || $NV ${v//,/ } -c csrc/kernels/cuda/quantize.cu -o $B/quant_v$nv.o &
done
if [[ -d .qt_base ]]; then
  $NV -c .qt_base/act_stats.cu -o $B/act_base.o &
  $NV -c .qt_base/quantize.cu -o $B/quant_base.o &
fi
wait
$NV $B/bench.o $B/act.o $B/quant.o $B/clip.o -lcublas -o $B/bq || { echo "build failed"; exit 1; }
for i in $(seq 1 $nv); do
  qo=$B/quant_v$i.o; (( ${ACT_ONLY:-0} )) && qo=$B/quant.o
  $NV $B/bench.o $B/act_v$i.o $qo $B/clip.o -lcublas -o $B/bq_v$i
done
# (-Icsrc/kernels/cuda in NV: the copies in .qt_base/ include quant_device.cuh from there)
if [[ -d .qt_base ]]; then
  $NV $B/bench.o $B/act_base.o $B/quant_base.o $B/clip.o -lcublas -o $B/bq_base || echo "baseline build failed"
fi
stamp built
step 100 $B/bq --bench=${BENCH:-act,group,clip} > "$OUT/bench_main.txt" 2>&1
grep -E "FAIL|checks in all|== .* checks" "$OUT/bench_main.txt"
{
  # SANITIZE_VARIANTS=0: the sanitizers run on the main build only
  # SANITIZE=0: no sanitizer runs at all
  (( ${SANITIZE:-1} )) && for bin in $B/bq $( (( ${SANITIZE_VARIANTS:-1} )) && echo $B/bq_v* ); do
    [[ -x $bin ]] || continue
    step 45 compute-sanitizer --tool memcheck --error-exitcode 9 $bin --check=act,pseudo,int4,dequant
    step 25 compute-sanitizer --tool racecheck --error-exitcode 9 $bin --check=act,pseudo
  done
} >> "$OUT/logs.txt" 2>&1
grep -E "ERROR SUMMARY|RACECHECK SUMMARY|rc=|skip|sanitizer" "$OUT/logs.txt"
set -- $VARIANTS
for i in $(seq 1 $nv); do
  echo "variant $i: ${!i}" > "$OUT/bench_v$i.txt"
  step 60 $B/bq_v$i ${VONLY:+--only=$VONLY} --bench=${VBENCH:-act,group} >> "$OUT/bench_v$i.txt" 2>&1
  grep -E "FAIL|checks in all" "$OUT/bench_v$i.txt"
done
[[ -x $B/bq_base ]] && step 20 $B/bq_base --no-checks --bench=${VBENCH:-act,group} > "$OUT/bench_base.txt" 2>&1
# MAIN_AGAIN=1: the main build timed once more, last (the binary timed first in a call reads 2-3
# points low, quant_notes.md)
(( ${MAIN_AGAIN:-0} )) && step 40 $B/bq --no-checks --bench=${BENCH:-act,group} > "$OUT/bench_main_again.txt" 2>&1
(( ${NCU:-1} )) && step 25 ncu --kernel-name regex:"act_stats|group_fast|group_bulk|dequant_fast" --section SpeedOfLight --section Occupancy \
  --section LaunchStats --section WarpStateStats --section ComputeWorkloadAnalysis $B/bq --profile > "$OUT/ncu.txt" 2>&1
grep -E "^  [a-z].*kernel|DRAM Throughput|Memory Throughput|Duration|Issue Slots Busy|Achieved Occupancy|Registers Per" "$OUT/ncu.txt" | head -80
{
  cat $B/act.ptxas $B/quant.ptxas | grep -E "Compiling entry|Used|spill" | c++filt
  for o in act quant; do
    cuobjdump -sass $B/$o.o | c++filt > $B/$o.sass
    python3 - $B/$o.sass <<'PY'
import re, sys, collections
txt = open(sys.argv[1]).read()
for f in re.split(r'\n\s+Function : ', txt)[1:]:
    name = f.split('\n')[0].strip()
    if not re.search(r'act_stats_kernel<(__half|__nv_bfloat16), 8>|group_fast_kernel<(__half|__nv_bfloat16), (4, 4|8, 2),|dequant_fast_kernel<__half>', name):
        continue
    ops = collections.Counter()
    for l in f.split('\n'):
        m = re.match(r'\s+/\*[0-9a-f]+\*/\s+(?:@!?U?P\w+\s+)?([A-Z0-9_]+)', l)
        if m: ops[m.group(1)] += 1
    print(name[:120], sum(ops.values()))
    print('   ', ' '.join(f'{k}:{v}' for k, v in ops.most_common(45)))
PY
  done
} > "$OUT/sass_summary.txt" 2>&1
gzip -c $B/quant.sass > "$OUT/quant_sass.txt.gz" 2>/dev/null
stamp done
echo "===== main"; sed -n '/^## /,$p' "$OUT/bench_main.txt"
for i in $(seq 1 $nv); do head -1 "$OUT/bench_v$i.txt"; sed -n '/^| op/,/^$/p' "$OUT/bench_v$i.txt" | cut -d'|' -f2-8; done
[[ -f "$OUT/bench_base.txt" ]] && { echo "===== base"; sed -n '/^| op/,/^$/p' "$OUT/bench_base.txt" | cut -d'|' -f2-8; }
[[ -f "$OUT/bench_main_again.txt" ]] && { echo "===== main again"; sed -n '/^| op/,/^$/p' "$OUT/bench_main_again.txt" | cut -d'|' -f2-8; }
nvidia-smi --query-gpu=name,clocks.sm,temperature.gpu,power.draw --format=csv,noheader
