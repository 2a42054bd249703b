#!/usr/bin/env bash
# Sustained-load timing of the prefill GEMMs (device machine): bench_gemm --soak runs the INT4 GEMM,
# cuBLAS fp16 and dequantize + cuBLAS back to back for SECS seconds each while nvidia-smi samples the
# SM clock and board power every 50 ms; prints per phase the time per call, the mean clock and power
# and the throttle reasons seen. The graph-timed benchmarks (bench_gemm --bench, bench_linear.py)
# measure bursts of a few milliseconds, mostly before the power cap lowers the clocks.
#   CASES="N,K,M[,cfg] ..." (cfg: forced wgmma configuration, default the op path)   SECS (default 2)
# Builds through gemm_device.sh (objects in .gemv2/gobj, or from the sources). Logs go to $OUT.
set -uo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
# build (or link the carried objects) as gemm_device.sh does: it builds /tmp/bench_gemm when given no steps
bash "$(dirname "$0")/gemm_device.sh" > "$OUT/soak_build.log" 2>&1 || { tail -20 "$OUT/soak_build.log"; exit 1; }
BIN=/tmp/bench_gemm
nvidia-smi --query-gpu=name,power.limit,clocks.max.sm --format=csv,noheader | tee "$OUT/soak_device.txt"
nvidia-smi --query-gpu=timestamp,clocks.sm,clocks.mem,power.draw,temperature.gpu,clocks_throttle_reasons.active \
  --format=csv,noheader -lms 50 > "$OUT/smi.csv" &
SMI=$!
sleep 1
for c in ${CASES:-28672,8192,1024 4096,11008,1024 4096,4096,1024}; do
  IFS=, read -r n k m cfg <<< "$c"
  $BIN --soak=$n,$k,$m,${SECS:-2}${cfg:+,$cfg} >> "$OUT/soak.log" 2>&1
done
sleep 0.5
kill $SMI
python3 - "$OUT" <<'PY'
import csv, datetime, re, sys
out = sys.argv[1]
samples = []
for r in csv.reader(open(f"{out}/smi.csv")):
    try:
        t = datetime.datetime.strptime(r[0].strip(), "%Y/%m/%d %H:%M:%S.%f").timestamp()
        samples.append((t, float(r[1].split()[0]), float(r[3].split()[0]), r[5].strip()))
    except (ValueError, IndexError):
        pass
if not samples:
    print("WARNING: no nvidia-smi samples parsed from smi.csv (query field names?): clocks and power below are 0")
pat = re.compile(r"soak (\S+)\s+N=(\d+) K=(\d+) M=(\d+) start ([\d.]+) end ([\d.]+) calls (\d+) ([\d.]+) us")
print("| N x K | M | kernel | us per call | SM clock MHz | power W | samples | throttle reasons |")
print("|---|---|---|---|---|---|---|---|")
for line in open(f"{out}/soak.log"):
    m = pat.search(line)
    if not m:
        if "soak" in line or "FAIL" in line or "status" in line: print(line.strip())
        continue
    lo, hi = float(m.group(5)) + 0.5, float(m.group(6))  # skip the first half second of each phase
    sel = [s for s in samples if lo <= s[0] <= hi]
    clk = sum(s[1] for s in sel) / max(len(sel), 1)
    pw = sum(s[2] for s in sel) / max(len(sel), 1)
    print(f"| {m.group(2)} x {m.group(3)} | {m.group(4)} | {m.group(1)} | {float(m.group(8)):.2f} | {clk:.0f} | {pw:.0f} | "
          f"{len(sel)} | {' '.join(sorted(set(s[3] for s in sel)))} |")
PY
