"""Rebuilds the final-dispatch tables of linear_decode_h200.md (section 2026-11-21 08:22) from
stream_sweep.log: for each shape and M, the sweep cell (no PDL) of the configuration that
int4_linear.cu's stream_auto() now picks (choose() mirrors it for 132 SMs), or the previous GEMV's
column where it picks that kernel. Run from the repository root: python3 bench/results/raw_gemv_h200/final_dispatch_table.py
"""
import re,collections,math,sys
log=open('bench/results/raw_gemv_h200/stream_sweep.log').read()
# best INT4 peer per cell from /work/shared/ANCHORS.md: (us, speedup vs fp16, kernel)
anch={(4096,4096,1):(5.4,2.39,'awq-gemv-tc'),(4096,4096,4):(9.0,1.51,'awq-gemv-tc'),(4096,4096,16):(10.7,1.26,'marlin'),
(4096,11008,1):(10.6,2.60,'awq-gemv-tc'),(4096,11008,4):(16.6,1.71,'marlin'),(4096,11008,16):(17.2,1.68,'marlin'),
(11008,4096,1):(10.9,2.37,'awq-gemv-tc'),(11008,4096,4):(14.2,1.81,'marlin'),(11008,4096,16):(14.4,1.78,'marlin'),
(4096,14336,1):(12.5,2.49,'awq-gemv-tc'),(4096,14336,4):(17.9,1.80,'marlin'),(4096,14336,16):(18.3,1.79,'marlin'),
(14336,4096,1):(13.0,2.40,'awq-gemv-tc'),(14336,4096,4):(16.8,1.86,'marlin'),(14336,4096,16):(16.9,1.86,'marlin'),
(28672,8192,1):(39.6,3.11,'awq-gemv-tc'),(28672,8192,4):(49.1,2.22,'marlin'),(28672,8192,16):(50.4,2.26,'marlin')}
SMS=132
def choose(n, k, m):  # stream_auto() of int4_linear.cu: sweep ids 9, 10, 15, 16 or 'old'
    if m<=8:
        small_n = (n+31)//32 < 2*SMS
        if small_n and k>4096:
            return '9' if m<=4 else 'old'
        return '10'
    return '16' if (n+31)//32 >= 2*SMS else '15'
copy=float(re.search(r'copy kernel bandwidth (\d+)',log).group(1)); rd=float(re.search(r'read-only kernel (\d+)',log).group(1))
out=[]
for part in log.split('== benchmark ')[1:]:
    dt=part.split(',')[0]
    cells=collections.defaultdict(dict)
    for mm in re.finditer(r'sweep N=(\d+) K=(\d+) M=(\d+) cfg(\d+)(\+pdl)?: ([\d.]+) us',part):
        n,k,M,c,pdl,t=mm.groups()
        cells[(int(n),int(k),int(M))][c+('p' if pdl else '')]=float(t)
    for mm in re.finditer(r'N=(\d+)\s+K=(\d+)\s+M=(\d+)\s+ours\s+([\d.]+) us \(no PDL\s+([\d.]+), previous\s+([\d.]+)\)\s+cuBLAS\s+([\d.]+)',part):
        n,k,M,o,np_,old,cub=mm.groups()
        d=cells[(int(n),int(k),int(M))]; d['old']=float(old); d['cub']=float(cub)
    out.append(f"\n### {dt}, group 128 (final dispatch, no PDL)\n")
    out.append("| N x K | M | int4_linear us | config | cuBLAS us | speedup | previous GEMV us | best peer (ANCHORS) us / speedup | int4 GB/s | % of copy kernel | % of read-only kernel |")
    out.append("|---|---|---|---|---|---|---|---|---|---|---|")
    geo=collections.defaultdict(list); geo_old=collections.defaultdict(list)
    for key in [(n,k,m) for (n,k) in [(4096,4096),(11008,4096),(4096,11008),(14336,4096),(4096,14336),(28672,8192)] for m in (1,2,4,8,16)]:
        d=cells[key]; n,k,m=key
        c=choose(n,k,m); t=d['old'] if c=='old' else d[c]
        byt=n*k/2+n*(k/128)*3+m*k*2+m*n*2
        gb=byt/t/1e3
        a=anch.get(key)
        astr=f"{a[2]} {a[0]} / {a[1]:.2f}x" if a else "-"
        geo[m].append(d['cub']/t); geo_old[m].append(d['cub']/d['old'])
        name={'9':'c9 BN16 KW8','10':'c10 BN32 KW4','15':'c15 BN32 KW4 MT2','16':'c16 BN64 KW2 MT2','old':'previous GEMV'}[c]
        out.append(f"| {n} x {k} | {m} | {t:.1f} | {name} | {d['cub']:.1f} | {d['cub']/t:.2f}x | {d['old']:.1f} | {astr} | {gb:.0f} | {100*gb/copy:.1f} | {100*gb/rd:.1f} |")
    out.append("\n| M | geo-mean speedup vs cuBLAS (6 shapes) | previous GEMV, same run |\n|---|---|---|")
    for m in (1,2,4,8,16):
        g=math.exp(sum(map(math.log,geo[m]))/6); go=math.exp(sum(map(math.log,geo_old[m]))/6)
        out.append(f"| {m} | {g:.2f}x | {go:.2f}x |")
print('\n'.join(out))
