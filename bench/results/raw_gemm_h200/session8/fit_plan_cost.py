"""Fit of make_plan's plan_cost (int4_gemm_sm90.cu) to the tuning logs of this folder, and the check
of the plans it picks against the measured ones.

    python3 fit_plan_cost.py call4_tune_m192-384_other_shapes.log call5_tune_six_m160-512.log

Model per configuration c (4: 128 x 128 tile, 6: 256 x 128), for a plan with s splits:
    t = waves * (a + b * k_blocks / s) + (s > 1) * (r0 + r1 * s * M * N * 4 / 1e6)
    waves = ceil(tiles * s / 132), tiles = ceil(M / BT) * ceil(N / rows), k_blocks = K / 64
stream-K plans: t = a + b * ceil(tiles * k_blocks / 132) + 8.
Fitted by least squares on relative error over the explicit split counts (1, 2, 4). The check follows
make_plan: configuration 4 or 6 by the model up to M = 512, configuration 6 above; stream-K where the
previous rules choose it, else the split count with the lowest modeled time (>= 16 k-blocks each).
"""
import re
import sys

import numpy as np

SHAPE = {4: (128, 128), 6: (256, 128)}
SLOTS = 132
SK_COST = 8.0


def load(paths):
    rows = []
    pat = re.compile(r"tune fp16 N=(\d+) K=(\d+) M=(\d+) wg(\d+) splits=(-?\d+)\s+([\d.]+) us")
    for path in paths:
        with open(path) as f:
            for line in f:
                m = pat.search(line)
                if m:
                    rows.append(tuple(int(x) for x in m.groups()[:5]) + (float(m.group(6)),))
    return rows


def tiles_of(n, m, c):
    bt, r = SHAPE[c]
    return -(-m // bt) * -(-n // r)


def cost(coef, n, k, m, c, s):
    a, b, r0, r1 = coef
    tiles, kb = tiles_of(n, m, c), k // 64
    if s == -1:
        return a + b * -(-tiles * kb // SLOTS) + SK_COST
    waves = -(-tiles * s // SLOTS)
    return waves * (a + b * kb / s) + (s > 1) * (r0 + r1 * s * m * n * 4 / 1e6)


def choose_splits(tiles, kb, slots=SLOTS, mx=16, mn=16):
    """The previous split rule (split_k.cuh)."""
    if tiles >= slots:
        return 1
    best, best_score = 1, -1.0
    for s in range(1, int(min(mx, max(1, kb // mn))) + 1):
        waves = -(-tiles * s // slots)
        score = s / waves * (1 - 0.03 * s)
        if score > best_score + 1e-9:
            best, best_score = s, score
    return best


def old_plan(n, k, m, c):
    """make_plan(cfg = c, splits = 0) before plan_cost: -1 = stream-K, else the split count."""
    bt, _ = SHAPE[c]
    tt, kb = -(-m // bt), k // 64
    tiles = tiles_of(n, m, c)
    waves = -(-tiles // SLOTS)
    low_fill = (m <= 512 and 2 * tiles >= SLOTS and 4 * tiles <= 3 * waves * SLOTS
                and tiles * kb >= 32 * SLOTS and tt * bt * 7 <= m * 8)
    if (tiles * kb >= 96 * SLOTS and 10 * tiles < 9 * waves * SLOTS) or low_fill:
        return -1
    return choose_splits(tiles, kb)


def main(paths):
    rows = load(paths)
    coefs = {}
    for c in (4, 6):
        x, y = [], []
        for n, k, m, cc, s, t in rows:
            if cc != c or s < 1:
                continue
            waves = -(-tiles_of(n, m, c) * s // SLOTS)
            x.append([waves, waves * (k // 64) / s, float(s > 1), (s > 1) * s * m * n * 4 / 1e6])
            y.append(t)
        x, y = np.array(x), np.array(y)
        w = 1.0 / y
        coef = np.linalg.lstsq(x * w[:, None], y * w, rcond=None)[0]
        err = np.abs(x @ coef - y) / y
        coefs[c] = coef
        print(f"cfg {c}: a={coef[0]:.3f} b={coef[1]:.4f} r0={coef[2]:.3f} r1={coef[3]:.4f}"
              f"  n={len(y)} mean rel err {err.mean():.3f} max {err.max():.3f}")

    measured = {}
    for n, k, m, c, s, t in rows:
        if s == 0 and c not in SHAPE:
            continue  # configuration 7's automatic plan is not modeled here
        measured.setdefault((n, k, m, c, old_plan(n, k, m, c) if s == 0 else s), t)
    log_old = log_new = log_best = 0.0
    count = 0
    for n, k, m in sorted({r[:3] for r in rows}):
        plans = []
        for c in ((4, 6) if m <= 512 else (6,)):  # make_plan: the configuration is modeled up to M = 512
            s0 = old_plan(n, k, m, c)
            if s0 != -1:
                s0 = min(range(1, max(1, min(16, (k // 64) // 16)) + 1), key=lambda s: cost(coefs[c], n, k, m, c, s))
            plans.append((cost(coefs[c], n, k, m, c, s0), c, s0))
        _, c, s = min(plans)
        old = measured.get((n, k, m, 6, old_plan(n, k, m, 6)))
        new = measured.get((n, k, m, c, s))
        if old is None or new is None:
            print(f"{n}x{k} M={m}: cfg {c} splits {s} not measured")
            continue
        best = min(v for key, v in measured.items() if key[:3] == (n, k, m))
        print(f"{n}x{k} M={m}: previous plan {old:.1f} us -> cfg {c} splits {s} {new:.1f} us (best measured {best:.1f})")
        log_old += np.log(old)
        log_new += np.log(new)
        log_best += np.log(best)
        count += 1
    print(f"{count} cases: geo-mean time new / previous {np.exp((log_new - log_old) / count):.3f}, "
          f"best measured / previous {np.exp((log_best - log_old) / count):.3f}")


if __name__ == "__main__":
    main(sys.argv[1:])
