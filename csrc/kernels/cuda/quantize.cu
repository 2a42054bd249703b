// Grouped quantization on the GPU: pseudo-quantization (quantize-dequantize, the inner loop of AWQ's
// scale search), INT4 quantize + pack into the kernel layout, dequantize, and the conversion to and
// from the AutoAWQ "gemm" layout. Arithmetic: quant_math.h (group_qparams / quant_code /
// dequant_code), so codes, zero points and packed words match the CPU kernels and the oracle.
//
// Group kernels, three paths:
//
// * fast: one pass, one read of W and one write. A group of g = kLanes * kVecs * V elements (V = 16
//   bytes of the dtype) lives in the registers of kLanes adjacent threads, kVecs 16-byte vectors
//   each; min / max are reduced with kLanes-wide shuffles, then every thread quantizes its own
//   elements.
//
//       pseudo-quantization, kVecs = 2, lane l holds v_l and v_{l + kLanes}:
//         fp16 / bf16, g = 128: kLanes = 8, group = 16 vectors v0 .. v15; each of a warp's two load
//         (and store) instructions covers 4 groups x 128 contiguous bytes (whole cache lines)
//       INT4, kVecs = 4, lane l holds v_{4l} .. v_{4l+3}:
//         fp16 / bf16, g = 128: kLanes = 4; the lane's 32 consecutive codes are 4 consecutive
//         packed words, written with one 16-byte store
//
//   Grid: persistent, one wave of resident threads split into `slots` row slots of
//   tpr = groups_per_row * kLanes threads (one thread row covers a whole weight row). Slot s owns
//   rows s, s + slots, s + 2 slots, ...; a thread keeps its group column j for the whole run, so an
//   in_scale vector and its reciprocals are loaded and computed once per thread. Each iteration
//   issues the loads of kRows rows (kVecs x kRows 16-byte loads in flight per thread) before it
//   quantizes the first; the 16-bit in_scale kernels instead keep the in_scale values in shared
//   memory and copy the next row there by cp.async while quantizing the current one (kShared).
//   The scale division inside the codes and the division by in_scale use the exact reused-divisor
//   form of IEEE division (quant::Divisor in quant_device.cuh).
//
// * bulk (sm_90, pseudo-quantization without in_scale): the same slices, but W streams through
//   shared memory by bulk copies (cp.async.bulk) in and out, issued by one producer thread, so the
//   memory traffic does not depend on how many loads the threads keep in flight (see the bulk-copy
//   section below).
//
// * generic: one block per group, any g, any alignment: a min/max pass, a block reduction, then a
//   second pass over the same group (from L1/L2) that quantizes and writes.
#include <algorithm>
#include <type_traits>

#include "awq/layout.h"
#include "mbarrier.cuh"
#include "quant_device.cuh"

namespace awq {
namespace cuda {
namespace {

using quant::Divisor;
using quant::Elem;
using quant::kVec;
using quant::RoundTo;

// Nibble of element e (0..7) within a packed word: layout.h's kNibblePos, as arithmetic so device
// code needs no host array. Even elements 0,2,4,6 -> nibbles 0..3, odd elements -> nibbles 4..7.
__host__ __device__ constexpr int nibble_pos(int e) { return (e >> 1) + 4 * (e & 1); }
static_assert(nibble_pos(0) == kNibblePos[0] && nibble_pos(1) == kNibblePos[1] && nibble_pos(2) == kNibblePos[2] &&
                  nibble_pos(3) == kNibblePos[3] && nibble_pos(4) == kNibblePos[4] &&
                  nibble_pos(5) == kNibblePos[5] && nibble_pos(6) == kNibblePos[6] && nibble_pos(7) == kNibblePos[7],
              "nibble_pos must match layout.h");

constexpr int kThreads = 256;

enum class Mode { kPseudo, kInt4 };

// Everything the group kernels need; pseudo-quantization uses w/out/in_scale, INT4 qweight/scales/zeros.
struct GroupArgs {
  const void* w = nullptr;
  void* out = nullptr;
  const float* in_scale = nullptr;
  const float* clip = nullptr;
  int32_t* qweight = nullptr;
  void* scales = nullptr;
  uint8_t* zeros = nullptr;
  int64_t n = 0;  // rows
  int64_t n_groups = 0;
  int64_t groups_per_row = 0;
  int group_size = 0;
  int bits = 4;
  bool zero_point = true;
};

// ---- fast path -----------------------------------------------------------------------------
// Exact division by a reused divisor: quant::Divisor (quant_device.cuh).

// Rows whose loads are in flight together per thread (overridable with -DAWQ_QUANT_ROWS=n for tuning
// builds of bench_quant only), and 16-byte vectors per thread and row (see the drawing at the top).
// Tuning on an H200 (bench/results/quant_notes.md): for pseudo-quantization occupancy decides, so
// the register budget does: 2 rows x 2 vectors fits 64 registers (4 blocks of 256 per SM) and was
// the fastest, 2 x 4 and 4 x 2 (80 registers, 3 blocks) were 5-10 % slower. INT4 quantization
// writes a quarter of the bytes and gains from 4 vectors (its 32 codes leave in one 16-byte store).
// With in_scale the thread also keeps 2 x V scales and reciprocals (in registers with 3 blocks, see
// AWQ_SCALE_MIN_BLOCKS, or for fp16 / bf16 in shared memory with 4 blocks, see AWQ_SCALE_SMEM).
#ifndef AWQ_QUANT_ROWS
#define AWQ_QUANT_ROWS 2
#endif
constexpr int kRows = AWQ_QUANT_ROWS;
// in_scale kernels: resident blocks of 256 the register budget is fitted to (overridable for tuning).
// H200, 2026-11-21 10:27 UTC (bench/results/quant_notes.md): 3 blocks (85 registers, a few spilled
// words) with w * s recomputed in the second pass beat 2 blocks (107-113 registers) by 4-7 %; one row
// in flight instead of two did not help.
#ifndef AWQ_SCALE_MIN_BLOCKS
#define AWQ_SCALE_MIN_BLOCKS 3
#endif
// fp16 / bf16 in_scale kernels: the in_scale values and their reciprocals in shared memory (ScaleSmem,
// 32 fewer live registers), the next row through cp.async into shared memory (no registers for loads
// in flight), 4 blocks per SM (64 registers) and the clamp-free groups below. H200, 2026-11-21
// (quant_notes.md, session 9), % of copy bandwidth: fp16 11008 x 4096 75.4 -> 84.7-85.2 %, 28672 x
// 8192 81.0 -> 88.5-88.9 %; bf16 78.0 -> 81.3 %, 82.8 -> 86.9 % (calls 13, 14).
// The launcher takes this form only where 4 of its blocks (40 KB of static shared memory each, plus
// 1 KB reserved) fit an SM: on sm_90 (228 KB) and sm_80 (164 KB, exactly, no headroom), not on GPUs
// with 100 KB per SM (sm_86 / 89), where the register form runs (not measured on those GPUs).
// -DAWQ_SCALE_SMEM=0 turns it off for tuning builds.
#ifndef AWQ_SCALE_SMEM
#define AWQ_SCALE_SMEM 1
#endif
template <typename T>
constexpr bool kScaleSmem = AWQ_SCALE_SMEM != 0 && sizeof(T) == 2;

// Skipping the per-element code clamps of pseudo-quantization where the group's extremes show them to
// be the identity (see quantize_slice), for bf16 and fp16's shared in_scale form. H200, 2026-11-21 16:51 UTC (quant_notes.md;
// a build skipping for every dtype against one skipping for none, same call), with in_scale, % of
// copy bandwidth: bf16 +3.0 points on 11008 x 4096 (74.9 -> 77.9), +2.9-3.1 on 28672 x 8192; fp16
// 0.6-1.4 points slower at 3 blocks with spills (not investigated); plain pseudo-quantization within noise.
// -DAWQ_CLAMP_SKIP=0 turns it off for tuning builds.
#ifndef AWQ_CLAMP_SKIP
#define AWQ_CLAMP_SKIP 1
#endif
// fp16: for the in_scale form in shared memory only (kShared), where it gained 2-3 points
// (11008 x 4096 78.6 -> 81.3 %, 28672 x 8192 84.4 -> 87.7 %; H200 21:20 UTC, quant_notes.md).
// (bf16 skips in both forms.)
template <typename T, bool kShared>
constexpr bool kSkipClamps = AWQ_CLAMP_SKIP != 0 && (std::is_same_v<T, __nv_bfloat16> || kShared);
// The clamp-free form is chosen per warp, not per group: the groups of a warp that reach the test take
// it only when all of them can (any subset of groups may clamp: the clamps are then the identity, and a
// NaN element, which the group's min / max skip, stays NaN in both forms: clamp_keep_nan), so
// no warp runs both forms. bf16 needs the clamps more often (its scale keeps 8 bits: with the
// benchmark's data 1.2 % of groups, 4.6 % of warps with 4 groups, against 0.2 % / 0.7 % for fp16).
// H200, 2026-11-21 (quant_notes.md, session 10), % of copy bandwidth with in_scale: bf16 11008 x 4096
// 81.3-82.0 -> 83.3 % (two calls), 28672 x 8192 85.7-87.5 -> 87.5-88.0 %; fp16 within noise.
// -DAWQ_CLAMP_VOTE=0 decides per group (tuning builds).
#ifndef AWQ_CLAMP_VOTE
#define AWQ_CLAMP_VOTE 1
#endif

// Clamp to [lo, hi] that keeps a NaN, as quant_math.h's clampf (and so the CPU kernels) does; fminf /
// fmaxf would turn it into a bound. One instruction each way (min / max with .NaN, sm_80+).
__device__ __forceinline__ float clamp_keep_nan(float v, float lo, float hi) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  float r;
  asm("max.NaN.f32 %0, %1, %2;" : "=f"(r) : "f"(v), "f"(lo));
  asm("min.NaN.f32 %0, %0, %1;" : "+f"(r) : "f"(hi));
  return r;
#else
  return v != v ? v : fminf(fmaxf(v, lo), hi);
#endif
}

template <Mode M>
constexpr int kVecsFor = M == Mode::kInt4 ? 4 : 2;

// 2^23: a float in [2^23, 2^24) holds the integer (value - 2^23) in its low mantissa bits, so a code
// clamped in that range is read out as bits with one AND instead of a float-to-int conversion.
constexpr float kTwo23 = 8388608.0f;
// 1.5 * 2^23: for |d| < 2^22, d + kRound rounds d to an integer, half to even (the ulp in
// [2^23, 2^24) is 1), and (d + kRound) - kRound == rint(d) exactly, never -0.
constexpr float kRound = 12582912.0f;

// An in_scale value in Divisor's operand range for the division by it (false for NaN).
__device__ __forceinline__ bool scale_in_range(float s) {
  const float m = fabsf(s);
  return m >= 0x1p-30f && m <= 0x1p30f;
}

// Packed pair type of a 16-bit dtype, for group min / max on the raw bits (fp16 and bf16 -> fp32
// is exact and monotonic, so min / max commute with the conversion; __hmin2 / __hmax2 ignore a
// NaN operand like fminf / fmaxf).
template <typename T>
struct Pair;
template <>
struct Pair<__half> {
  using T2 = __half2;
};
template <>
struct Pair<__nv_bfloat16> {
  using T2 = __nv_bfloat162;
};

// Stores the W packed words of one thread (W = 1, 2 or 4 consecutive words, 4W-byte aligned).
template <int W>
__device__ __forceinline__ void store_words(int32_t* p, const uint32_t (&w)[W]) {
  if constexpr (W == 4) {
    __stwb(reinterpret_cast<uint4*>(p), make_uint4(w[0], w[1], w[2], w[3]));
  } else if constexpr (W == 2) {
    *reinterpret_cast<uint2*>(p) = make_uint2(w[0], w[1]);
  } else {
    *p = int32_t(w[0]);
  }
}

// A thread's in_scale values and their reciprocals, vector u at a time (kScale only):
//   ScaleRegs: kept in registers for the whole run;
//   ScaleSmem: kept in shared memory, float4 j of the thread at base[j * kThreads] (a warp's 16-byte
//   reads are contiguous: conflict-free), read again at each use (volatile, so not hoisted back into
//   registers): 6 16-byte reads per vector of 8 and row, for 32 fewer live registers.
template <int kVecs, int V>
struct ScaleRegs {
  const float (&sc)[kVecs][V];
  const float (&scy)[kVecs][V];
  __device__ __forceinline__ void load(int u, float (&s)[V]) const {
#pragma unroll
    for (int e = 0; e < V; ++e) s[e] = sc[u][e];
  }
  __device__ __forceinline__ void load_rcp(int u, float (&y)[V]) const {
#pragma unroll
    for (int e = 0; e < V; ++e) y[e] = scy[u][e];
  }
};
// 16-byte shared-memory read (volatile: issued where written, never merged or hoisted)
__device__ __forceinline__ uint4 lds128(uint32_t addr) {
  uint4 v;
  asm volatile("ld.shared.v4.u32 {%0,%1,%2,%3}, [%4];\n" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "r"(addr));
  return v;
}

template <int kVecs, int V, int kStride>
struct ScaleSmem {
  uint32_t base;  // shared address of the thread's float4 0
  __device__ __forceinline__ void get(int j0, float (&s)[V]) const {
#pragma unroll
    for (int h = 0; h < V / 4; ++h) {
      const uint4 v = lds128(base + uint32_t((j0 + h) * kStride * 16));
      s[4 * h] = __uint_as_float(v.x);
      s[4 * h + 1] = __uint_as_float(v.y);
      s[4 * h + 2] = __uint_as_float(v.z);
      s[4 * h + 3] = __uint_as_float(v.w);
    }
  }
  __device__ __forceinline__ void load(int u, float (&s)[V]) const { get(u * V / 4, s); }
  __device__ __forceinline__ void load_rcp(int u, float (&y)[V]) const { get((kVecs + u) * V / 4, y); }
};
template <typename S>
constexpr bool kSharedScales = false;
template <int kVecs, int V, int kStride>
constexpr bool kSharedScales<ScaleSmem<kVecs, V, kStride>> = true;

// One thread's slice of one group: the arithmetic shared by the persistent-grid kernel and the
// bulk-copy kernel below. raw holds the thread's kVecs 16-byte vectors of the group; scs the
// in_scale values of those elements and their reciprocals (kScale only); scale_safe says that every
// one of them lies in Divisor's range. The group's min / max is reduced over its kLanes lanes (gmask),
// then the results go to sink:
//   pseudo-quantization: sink(u, r), r the V fp32 output values of vector u;
//   INT4:                sink(words, q, offset), the thread's packed words and the group's parameters
//                        (codes stored as code + offset).
// kLanes: threads per group (power of two, 1..32); kVecs: 16-byte vectors per thread; the group size
// is kLanes * kVecs * kVec<T>. kScale: pseudo-quantization with an in_scale vector (w * s, quantize, / s).
template <typename T, int kLanes, int kVecs, Mode M, bool kScale, typename Scales, typename Sink>
__device__ __forceinline__ void quantize_slice(const uint4 (&raw)[kVecs], const Scales& scs, bool scale_safe,
                                               unsigned gmask, float ratio, const GroupArgs& a, Sink&& sink) {
  constexpr int V = kVec<T>;
  constexpr int kWords = kVecs * V / 8;  // INT4 words per thread
  static_assert(M == Mode::kPseudo || !kScale, "INT4 quantization takes no in_scale");
  static_assert(M == Mode::kPseudo || kWords == 1 || kWords == 2 || kWords == 4, "INT4 needs whole words");
  // 16-bit T without in_scale: min / max on the packed pairs (half the instructions of the fp32
  // values), and each vector is unpacked only where it is quantized (fewer live registers).
  // Otherwise the fp32 values (times in_scale) are kept for both passes.
  constexpr bool kPacked = !kScale && sizeof(T) == 2;
  // 16-bit T with in_scale: w * s is formed again in the second pass from the raw bits instead of
  // being kept (fewer live registers: part of what lets 3 blocks of the persistent grid fit, see
  // AWQ_SCALE_MIN_BLOCKS)
  constexpr bool kRecompute = kScale && sizeof(T) == 2;
  float v[kPacked || kRecompute ? 1 : kVecs][V];
  float mn, mx;
  if constexpr (kPacked) {
    using T2 = typename Pair<T>::T2;
    auto pair = [](uint32_t bits) {
      T2 h;
      memcpy(&h, &bits, 4);
      return h;
    };
    T2 lo2 = pair(raw[0].x), hi2 = lo2;
#pragma unroll
    for (int u = 0; u < kVecs; ++u) {
      const uint32_t ws[4] = {raw[u].x, raw[u].y, raw[u].z, raw[u].w};
#pragma unroll
      for (int q = 0; q < 4; ++q) {
        lo2 = __hmin2(lo2, pair(ws[q]));
        hi2 = __hmax2(hi2, pair(ws[q]));
      }
    }
    mn = fminf(Elem<T>::to_f(lo2.x), Elem<T>::to_f(lo2.y));
    mx = fmaxf(Elem<T>::to_f(hi2.x), Elem<T>::to_f(hi2.y));
  } else if constexpr (kRecompute) {
    mn = INFINITY;
    mx = -INFINITY;
#pragma unroll
    for (int u = 0; u < kVecs; ++u) {
      float x[V], su[V];
      quant::unpack<T>(raw[u], x);
      scs.load(u, su);
#pragma unroll
      for (int e = 0; e < V; ++e) {
        const float y = __fmul_rn(x[e], su[e]);
        mn = fminf(mn, y);
        mx = fmaxf(mx, y);
      }
    }
  } else {
#pragma unroll
    for (int u = 0; u < kVecs; ++u) {
      quant::unpack<T>(raw[u], v[u]);
      if constexpr (kScale) {
        float su[V];
        scs.load(u, su);
#pragma unroll
        for (int e = 0; e < V; ++e) v[u][e] = __fmul_rn(v[u][e], su[e]);
      }
    }
    mn = v[0][0];
    mx = v[0][0];
#pragma unroll
    for (int u = 0; u < kVecs; ++u)
#pragma unroll
      for (int e = 0; e < V; ++e) {
        mn = fminf(mn, v[u][e]);
        mx = fmaxf(mx, v[u][e]);
      }
  }
  // the fp32 values of vector u (u a compile-time index after unrolling); su: its in_scale values
  // (kRecompute only)
  auto values = [&](int u, float (&x)[V], const float (&su)[V]) {
    if constexpr (kPacked) {
      quant::unpack<T>(raw[u], x);
    } else if constexpr (kRecompute) {
      quant::unpack<T>(raw[u], x);
#pragma unroll
      for (int e = 0; e < V; ++e) x[e] = __fmul_rn(x[e], su[e]);
    } else {
#pragma unroll
      for (int e = 0; e < V; ++e) x[e] = v[u][e];
    }
  };
#pragma unroll
  for (int o = kLanes / 2; o > 0; o >>= 1) {
    mn = fminf(mn, __shfl_xor_sync(gmask, mn, o));
    mx = fmaxf(mx, __shfl_xor_sync(gmask, mx, o));
  }

  const GroupQParams q = group_qparams(mn, mx, ratio, a.bits, a.zero_point, RoundTo<T>());
  // symmetric INT4 codes -8..7 are stored offset by 8 with zero point 8
  const float offset = M == Mode::kInt4 && !a.zero_point ? 8.0f : 0.0f;

  // Quantize this thread's kVecs x V elements. fast (std::true_type): reused-divisor division and
  // the reformulated clamps below; otherwise quant_math.h verbatim with IEEE `/`.
  // clipped (std::true_type when a clip ratio is given, fast path only): the value is clamped to
  // [lo, hi] first; without a clip ratio [lo, hi] is the group's own range (symmetric: -max|v|,
  // max|v|), an identity clamp that is skipped.
  auto finish = [&](auto fast, auto clipped, auto unclamped) {
    constexpr bool kFast = decltype(fast)::value;
    [[maybe_unused]] constexpr bool kUnclamped = decltype(unclamped)::value;  // pseudo-quantization only
    const Divisor ds(kFast ? q.scale : 1.0f);
    auto quotient = [&](float x) {
      if constexpr (decltype(clipped)::value) x = clampf(x, q.lo, q.hi);
      return ds.div(x);
    };
    if constexpr (M == Mode::kPseudo) {
      // code - z = clamp(R + z, qmin, qmax) - z = clamp(R, qmin - z, qmax - z) (small integers,
      // exact in fp32; an |R| >= 2^24 saturates the same end either way), R = rint(x / scale).
      // 16-bit T: t = x / scale + kRound holds kRound + R; clamped to kRound + [dlo, dhi], then
      // (t - kRound) * scale in one FMA: the scale has at most 11 significant bits, so
      // kRound * scale = 3 * 2^22 * scale is exact and the FMA rounds the exact
      // (t - kRound) * scale once, like the oracle's (code - z) * scale; an exact zero comes out
      // +0, as the oracle's. fp32: rint, clamp, + 0.0f (the oracle's code - z is never -0), *.
      const float dlo = q.qmin - q.zero, dhi = q.qmax - q.zero;
      const float tlo = dlo + kRound, thi = dhi + kRound, tsub = -(kRound * q.scale);
#pragma unroll
      for (int u = 0; u < kVecs; ++u) {
        float x[V], r[V], su[V];
        [[maybe_unused]] float yu[V];
        if constexpr (kScale) {
          scs.load(u, su);
          if constexpr (kFast) scs.load_rcp(u, yu);
        }
        values(u, x, su);
#pragma unroll
        for (int e = 0; e < V; ++e) {
          if constexpr (kFast && sizeof(T) == 2) {
            float t = __fadd_rn(quotient(x[e]), kRound);
            if constexpr (!kUnclamped) t = clamp_keep_nan(t, tlo, thi);
            r[e] = __fmaf_rn(t, q.scale, tsub);
          } else if constexpr (kFast) {
            float d = rint_f(quotient(x[e]));
            if constexpr (!kUnclamped) d = clamp_keep_nan(d, dlo, dhi);
            r[e] = __fmul_rn(__fadd_rn(d, 0.0f), q.scale);
          } else {
            r[e] = dequant_code(quant_code(x[e], q), q);
          }
          if constexpr (kScale) r[e] = kFast ? Divisor(su[e], yu[e]).div(r[e]) : r[e] / su[e];
        }
        sink(u, r);
      }
    } else {
      // nibble = code + offset, computed as a float in [2^23, 2^23 + 15] and read from its
      // low bits (R + z + offset + 2^23 is exact in that range; outside it the clamp saturates
      // the same end as quant_code's)
      const float zb = q.zero + offset + kTwo23, nlo = q.qmin + offset + kTwo23, nhi = q.qmax + offset + kTwo23;
      auto nibble = [&](float x) -> uint32_t {
        if constexpr (kFast) {
          return __float_as_uint(fminf(fmaxf(__fadd_rn(rint_f(quotient(x)), zb), nlo), nhi)) & 0xfu;
        } else {
          return uint32_t(quant_code(x, q) + offset);
        }
      };
      // the thread's kVecs * V consecutive codes c -> word c / 8, element c % 8
      uint32_t words[kWords];
#pragma unroll
      for (int wi = 0; wi < kWords; ++wi) words[wi] = 0;
#pragma unroll
      for (int u = 0; u < kVecs; ++u) {
        float x[V];
        values(u, x, x);  // INT4: no in_scale
#pragma unroll
        for (int e = 0; e < V; ++e) {
          const int c = u * V + e;
          words[c / 8] |= nibble(x[e]) << (4 * nibble_pos(c % 8));
        }
      }
      sink(words, q, offset);
    }
  };

  const float amax = fmaxf(fabsf(mn), fabsf(mx));
  // Divisor's operand ranges, and |x / scale| < 2^21 for the kRound rounding (only a nearly
  // constant group of large values has a quotient that big; it takes the IEEE path)
  const bool group_safe = q.scale >= 0x1p-64f && q.scale <= 0x1p64f && amax <= 0x1p62f &&
                          amax <= q.scale * 0x1p21f;  // false for NaN
  // Pseudo-quantization without clip ratios: when the codes of the group's own min and max lie in
  // [qmin, qmax], so do every element's (correctly rounded division by a positive scale and rint are
  // monotonic), and the per-element clamps are the identity: skipped (2 of 12-14 instructions per
  // element). Only degenerate groups miss it (all of one sign, or an extreme one rounding away from
  // a half code), so a warp's groups rarely split between the two forms.
  auto extremes_inside = [&] {
    const Divisor ds(q.scale);
    return __fadd_rn(ds.div(mn), kRound) >= q.qmin - q.zero + kRound &&
           __fadd_rn(ds.div(mx), kRound) <= q.qmax - q.zero + kRound;
  };
  constexpr bool kMaySkip = kSkipClamps<T, kSharedScales<Scales>> && M == Mode::kPseudo;
  if (group_safe && scale_safe) {
    if (a.clip != nullptr) {
      finish(std::true_type{}, std::true_type{}, std::false_type{});
    } else if (kMaySkip && (AWQ_CLAMP_VOTE ? __all_sync(__activemask(), extremes_inside()) : extremes_inside())) {
      if constexpr (kMaySkip) finish(std::true_type{}, std::false_type{}, std::true_type{});
    } else {
      finish(std::true_type{}, std::false_type{}, std::false_type{});
    }
  } else {
    finish(std::false_type{}, std::false_type{}, std::false_type{});
  }
}

// Group mask of a thread's kLanes-lane group: a group's threads are adjacent lanes of one warp
// (kLanes divides 32 and the block size); groups of one warp may run different row or chunk counts,
// so shuffles name only the group's own lanes.
template <int kLanes>
__device__ __forceinline__ unsigned group_mask() {
  return kLanes == 32 ? 0xffffffffu : ((1u << (kLanes & 31)) - 1u) << (int(threadIdx.x) % 32 / kLanes * kLanes);
}

// Element offset of vector u of lane `lane` within its group. pseudo (split): vector u of lane l is
// v_{u * kLanes + l} (each load / store instruction of a warp covers contiguous runs of kLanes
// vectors); INT4: lane l holds kVecs consecutive vectors, so its kVecs * V codes are consecutive
// packed words (one store).
template <typename T, int kLanes, int kVecs, Mode M>
__device__ __forceinline__ int vec_offset(int u, int lane) {
  return M == Mode::kPseudo ? (u * kLanes + lane) * kVec<T> : (lane * kVecs + u) * kVec<T>;
}

// The persistent row-slot grid (see the drawing at the top). slots: row slots of the grid; threads at
// or past slots * tpr exit at once.
// Register budget (launch bounds): 64 for 4 blocks per SM when kRows x kVecs <= 4 (the occupancy
// that made pseudo-quantization fastest), 80 (3 blocks) for INT4's 2 x 4 and with in_scale in
// registers (64, 4 blocks, for fp16 / bf16 with their in_scale values in shared memory: kShared).
template <typename T, int kLanes, int kVecs, Mode M, bool kScale, bool kShared = false>
__global__ void __launch_bounds__(kThreads, kScale ? (kShared ? 4 : AWQ_SCALE_MIN_BLOCKS)
                                                   : (kRows * kVecs <= 4 ? 4 : kRows * kVecs <= 8 ? 3 : 2))
    group_fast_kernel(const GroupArgs a, int64_t slots) {
  static_assert(!kShared || (kScale && kScaleSmem<T>), "the shared-memory form is 16-bit T with in_scale");
  constexpr int V = kVec<T>;
  constexpr int G = kLanes * kVecs * V;
  constexpr int kWords = kVecs * V / 8;  // INT4 words per thread and row
  const int64_t gpr = a.groups_per_row;
  const int64_t tpr = gpr * kLanes;
  const int64_t tid = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  // slots * tpr is a multiple of kLanes, so whole groups exit together
  if (tid >= slots * tpr) return;
  const int64_t slot = tid / tpr;
  const int64_t j = (tid - slot * tpr) / kLanes;
  const int lane = int(threadIdx.x) % kLanes;
  const unsigned gmask = group_mask<kLanes>();
  const int64_t k = gpr * G;
  const int64_t col0 = j * G;
  int off[kVecs];
#pragma unroll
  for (int u = 0; u < kVecs; ++u) off[u] = vec_offset<T, kLanes, kVecs, M>(u, lane);
  const T* w = static_cast<const T*>(a.w) + col0;

  float sc[kVecs][V], scy[kVecs][V];
  bool scale_safe = true;
  if constexpr (kScale) {
#pragma unroll
    for (int u = 0; u < kVecs; ++u) {
#pragma unroll
      for (int h = 0; h < V; h += 4) {
        const float4 s4 = *reinterpret_cast<const float4*>(a.in_scale + col0 + off[u] + h);
        sc[u][h] = s4.x;
        sc[u][h + 1] = s4.y;
        sc[u][h + 2] = s4.z;
        sc[u][h + 3] = s4.w;
      }
#pragma unroll
      for (int e = 0; e < V; ++e) {
        scale_safe = scale_safe && scale_in_range(sc[u][e]);
        scy[u][e] = Divisor::reciprocal(sc[u][e]);
      }
    }
  }
  constexpr int kF4 = kVecs * V / 4;  // float4 of in_scale (and as many of reciprocals) per thread
  __shared__ float4 sh_scale[kShared ? 2 * kF4 : 1][kShared ? kThreads : 1];
  using SmemScales = ScaleSmem<kVecs, V, kThreads>;
  SmemScales smem_scales{};
  if constexpr (kShared) {
    // each thread reads back only what it wrote: no barrier
#pragma unroll
    for (int u = 0; u < kVecs; ++u) {
#pragma unroll
      for (int h = 0; h < V; h += 4) {
        sh_scale[(u * V + h) / 4][threadIdx.x] = make_float4(sc[u][h], sc[u][h + 1], sc[u][h + 2], sc[u][h + 3]);
        sh_scale[kF4 + (u * V + h) / 4][threadIdx.x] = make_float4(scy[u][h], scy[u][h + 1], scy[u][h + 2], scy[u][h + 3]);
      }
    }
    smem_scales.base = uint32_t(__cvta_generic_to_shared(&sh_scale[0][threadIdx.x]));
    // ScaleSmem reads through volatile asm that names no memory: this barrier keeps the stores
    // (emitted, and before those reads)
    asm volatile("" ::: "memory");
  }
  auto scales = [&] {
    if constexpr (kShared) {
      return smem_scales;  // a shared address: 4 bytes, by value
    } else {
      return ScaleRegs<kVecs, V>{sc, scy};
    }
  };

  // quantizes row `row` of this thread's group column from its raw vectors
  auto process = [&](int64_t row, const uint4 (&raw)[kVecs]) {
    const int64_t gi = row * gpr + j;  // (row, group) index of scales / zeros / clip
    const int64_t base = row * k + col0;
    const float ratio = a.clip != nullptr ? a.clip[gi] : 1.0f;
    if constexpr (M == Mode::kPseudo) {
      T* out = static_cast<T*>(a.out);
      quantize_slice<T, kLanes, kVecs, M, kScale>(raw, scales(), scale_safe, gmask, ratio, a,
                                                  [&](int u, const float (&r)[V]) { quant::store_vec<T>(out + base + off[u], r); });
    } else {
      quantize_slice<T, kLanes, kVecs, M, kScale>(
          raw, scales(), scale_safe, gmask, ratio, a, [&](const uint32_t (&words)[kWords], const GroupQParams& q, float offset) {
            store_words<kWords>(a.qweight + (base + off[0]) / 8, words);
            if (lane == 0) {
              static_cast<T*>(a.scales)[gi] = Elem<T>::from_f(q.scale);
              a.zeros[gi] = uint8_t(q.zero + offset);
            }
          });
    }
  };
  auto load_row = [&](int64_t row, uint4 (&raw)[kVecs]) {
#pragma unroll
    for (int u = 0; u < kVecs; ++u) {
      raw[u] = row < a.n ? *reinterpret_cast<const uint4*>(w + row * k + off[u]) : make_uint4(0, 0, 0, 0);
    }
  };

  if constexpr (kShared) {
    // 16-bit T with in_scale in shared memory: the next row is copied by cp.async into this thread's
    // slots of sh_row while the current row (read back into registers) is quantized, so no registers
    // hold loads in flight. A thread reads back only its own copies: cp.async.wait_group alone makes
    // them visible; the copy into a slot just read is ordered after that read (cp.async is ordered
    // after the thread's prior instructions, PTX ISA "asynchronous operations"). H200, 2026-11-21 (quant_notes.md, session 9, call 12), % of copy: 11008 x 4096
    // 81.7-82.2 -> 83.2 %, 28672 x 8192 87.5-87.8 -> 89.4 %, g64 81.8 -> 85.2 % against the register
    // prefetch below (fp16); two rows in flight this way (48 KB of shared memory per block) were
    // slower. With it bf16 fits 64 registers without spills too.
    __shared__ uint4 sh_row[kVecs][kThreads];
    const uint32_t row_base = uint32_t(__cvta_generic_to_shared(&sh_row[0][threadIdx.x]));
    auto issue = [&](int64_t row) {  // rows past the end: zero-filled, nothing read
      const bool in = row < a.n;
#pragma unroll
      for (int u = 0; u < kVecs; ++u) {
        const T* src = w + (in ? row : 0) * k + off[u];
        asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(row_base + uint32_t(u * kThreads * 16)),
                     "l"(src), "r"(in ? 16 : 0)
                     : "memory");
      }
      asm volatile("cp.async.commit_group;\n" ::: "memory");
    };
    issue(slot);
    for (int64_t row = slot; row < a.n; row += slots) {
      asm volatile("cp.async.wait_group 0;\n" ::: "memory");
      uint4 cur[kVecs];
#pragma unroll
      for (int u = 0; u < kVecs; ++u) cur[u] = lds128(row_base + uint32_t(u * kThreads * 16));
      issue(row + slots);
      process(row, cur);
    }
    asm volatile("cp.async.wait_all;\n" ::: "memory");
  } else if constexpr (kScale && std::is_same_v<T, __half>) {
    // fp16 with in_scale in registers (where the shared form does not fit): one row at a time, the
    // next row's loads issued before this row is quantized (the same 16 registers of loads as two rows
    // loaded together, but always in flight). H200, 2026-11-21 13:45 UTC (quant_notes.md): fp16 72.5 ->
    // 75.5 % of copy on 11008 x 4096, 78.8 -> 81.0 % on 28672 x 8192; bf16 lost 2 points (more spills),
    // so it keeps the pairs.
    uint4 cur[kVecs], nxt[kVecs];
    load_row(slot, cur);
    for (int64_t row = slot; row < a.n; row += slots) {
      load_row(row + slots, nxt);
      process(row, cur);
#pragma unroll
      for (int u = 0; u < kVecs; ++u) cur[u] = nxt[u];
    }
  } else {
    for (int64_t r0 = slot; r0 < a.n; r0 += int64_t(kRows) * slots) {
      uint4 raw[kRows][kVecs];
#pragma unroll
      for (int i = 0; i < kRows; ++i) load_row(r0 + int64_t(i) * slots, raw[i]);
#pragma unroll
      for (int i = 0; i < kRows; ++i) {
        const int64_t row = r0 + int64_t(i) * slots;
        if (row >= a.n) break;  // the same row for every lane of the group
        process(row, raw[i]);
      }
    }
  }
}

// ---- bulk-copy path (sm_90, pseudo-quantization without in_scale) -------------------------------
// W [n, k] contiguous is a flat sequence of groups (k is a multiple of g, so no group spans rows, and
// a group's flat index is its (row, group) index). Chunk c is the kBulkChunk bytes of groups
// c * C .. c * C + C - 1, C = kBulkChunk / (g * sizeof(T)) (the last chunk may be shorter). One block
// per SM, persistent over the chunks blockIdx.x, blockIdx.x + gridDim.x, ...:
//
//   producer warp (one thread): 1-D bulk copies (cp.async.bulk: the copy engine, no registers)
//     global -> shared of the next kBulkStages chunks, each completing on its stage's `full`
//     mbarrier. When the consumers release a stage (`empty` mbarrier), it copies the stage back to
//     `out` (bulk store shared -> global), and once that store has read the stage (wait_group.read,
//     one store kept in flight) refills the stage with the chunk kBulkStages ahead.
//   consumer warps (kBulkConsumers threads): a chunk holds kBulkConsumers slices of kBulkVecs = 2
//     vectors, one per thread: thread t takes group t / kLanes of the chunk, lane t % kLanes, the
//     same slice as in the persistent-grid kernel (a warp's 16-byte shared reads and writes are
//     contiguous runs: no bank conflicts). Quantized in place in shared memory, then each thread
//     fences (the bulk store reads the stage through the async proxy) and arrives on `empty`.
//     (One arrive per warp after __syncwarp ran as fast, but compute-sanitizer's racecheck then
//     reports the next bulk load into the stage as racing with the lanes' shared writes.)
//
// Why: the persistent-grid kernel keeps its loads in flight in registers, so its bytes in flight are
// bounded by its occupancy; here the copies run at the memory's pace in the background and the
// consumer warps only compute. H200, 2026-11-21 (bench/results/quant_notes.md), 2 blocks of 3
// stages per SM: 85.5-86.6 % of the copy bandwidth on 11008 x 4096 and 90 % on 28672 x 8192, against
// 78-81 % / 85-86 % for the persistent grid in the same run; 1 block of 4 stages was 0.6-3.0 points
// slower on 11008 x 4096, 1 x 3, 1 x 6 and 2 x 4 slower still. With an in_scale vector (tried with
// in_scale and its reciprocals in shared memory, 1 block per SM) the consumers ran out of issue slots
// (about 16 instructions per element against 10 without; 2 blocks would need <= 56 registers) and
// the persistent grid stayed faster: in_scale takes that path.
#ifndef AWQ_BULK_STAGES
#define AWQ_BULK_STAGES 3
#endif
constexpr int kBulkStages = AWQ_BULK_STAGES;
#ifndef AWQ_BULK_BLOCKS
#define AWQ_BULK_BLOCKS 2
#endif
constexpr int kBulkBlocks = AWQ_BULK_BLOCKS;  // resident blocks per SM
constexpr int kBulkChunk = 16384;                              // bytes per stage (one chunk)
constexpr int kBulkVecs = 2;                                   // 16-byte vectors per thread and slice
constexpr int kBulkConsumers = kBulkChunk / (kBulkVecs * 16);  // 512: one slice per thread and chunk
constexpr int kBulkThreads = kBulkConsumers + 32;              // + the producer warp
constexpr int kBulkSmem = kBulkStages * kBulkChunk + 2 * kBulkStages * 8;  // stages + full / empty mbarriers
static_assert(kBulkStages >= 2, "the producer keeps one store in flight while it refills another stage");

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define AWQ_BULK_DEVICE 1
// 1-D bulk copies (no tensor map; sizes and addresses multiples of 16). No L2 cache hints: CUDA
// 13.0's ptxas mishandles them on sm_90.
__device__ __forceinline__ void bulk_load(uint32_t dst, const void* src, uint32_t bytes, uint32_t bar) {
  asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(dst),
               "l"(src), "r"(bytes), "r"(bar)
               : "memory");
}
__device__ __forceinline__ void bulk_store(void* dst, uint32_t src, uint32_t bytes) {
  asm volatile("cp.async.bulk.global.shared::cta.bulk_group [%0], [%1], %2;\n" ::"l"(dst), "r"(src), "r"(bytes) : "memory");
  asm volatile("cp.async.bulk.commit_group;\n" ::: "memory");
}
__device__ __forceinline__ void bulk_wait_read_all_but_one() {
  asm volatile("cp.async.bulk.wait_group.read 1;\n" ::: "memory");
}
__device__ __forceinline__ void bulk_wait_all() { asm volatile("cp.async.bulk.wait_group 0;\n" ::: "memory"); }
__device__ __forceinline__ void sts128(uint32_t addr, uint4 v) {
  asm volatile("st.shared.v4.u32 [%0], {%1,%2,%3,%4};\n" ::"r"(addr), "r"(v.x), "r"(v.y), "r"(v.z), "r"(v.w) : "memory");
}
#endif

template <typename T, int kLanes>
__global__ void __launch_bounds__(kBulkThreads, kBulkBlocks) group_bulk_kernel(const GroupArgs a, int64_t n_chunks) {
#if defined(AWQ_BULK_DEVICE)
  constexpr int V = kVec<T>;
  constexpr int G = kLanes * kBulkVecs * V;
  constexpr int C = kBulkChunk / (G * int(sizeof(T)));  // groups per chunk
  static_assert(C * kLanes == kBulkConsumers, "one slice per consumer thread");
  extern __shared__ __align__(128) unsigned char smem[];
  const uint32_t stages = uint32_t(__cvta_generic_to_shared(smem));
  const uint32_t full = stages + kBulkStages * kBulkChunk;
  const uint32_t empty = full + 8 * kBulkStages;
  const int64_t total = a.n_groups * G * int64_t(sizeof(T));  // bytes of W
  const int64_t local = (n_chunks - blockIdx.x + gridDim.x - 1) / gridDim.x;  // this block's chunks
  auto chunk_bytes = [&](int64_t c) {
    const int64_t left = total - c * kBulkChunk;
    return uint32_t(left < kBulkChunk ? left : kBulkChunk);
  };
  auto stage = [](int64_t i) { return uint32_t(i % kBulkStages); };
  auto parity = [](int64_t i) { return uint32_t(i / kBulkStages) & 1u; };

  if (threadIdx.x == 0) {
    for (int s = 0; s < kBulkStages; ++s) {
      mbar_init(full + 8 * s, 1);
      mbar_init(empty + 8 * s, kBulkConsumers);
    }
    mbar_init_fence();
  }
  __syncthreads();

  if (threadIdx.x >= kBulkConsumers) {  // producer warp
    if (threadIdx.x != kBulkConsumers) return;
    const unsigned char* w = static_cast<const unsigned char*>(a.w);
    unsigned char* out = static_cast<unsigned char*>(a.out);
    auto load = [&](int64_t i) {  // local chunk i -> its stage
      const int64_t c = blockIdx.x + i * gridDim.x;
      mbar_expect_tx(full + 8 * stage(i), chunk_bytes(c));
      bulk_load(stages + stage(i) * kBulkChunk, w + c * kBulkChunk, chunk_bytes(c), full + 8 * stage(i));
    };
    for (int64_t i = 0; i < kBulkStages && i < local; ++i) load(i);
    for (int64_t i = 0; i < local; ++i) {
      const int64_t c = blockIdx.x + i * gridDim.x;
      mbar_wait(empty + 8 * stage(i), parity(i));
      bulk_store(out + c * kBulkChunk, stages + stage(i) * kBulkChunk, chunk_bytes(c));
      // the store of chunk i - 1 has read its stage: refill it with the chunk kBulkStages ahead
      if (i >= 1 && i - 1 + kBulkStages < local) {
        bulk_wait_read_all_but_one();
        load(i - 1 + kBulkStages);
      }
    }
    bulk_wait_all();
    return;
  }

  // ---- consumers ----
  const int t = int(threadIdx.x);
  const int gl = t / kLanes, lane = t % kLanes;
  const unsigned gmask = group_mask<kLanes>();
  uint32_t off[kBulkVecs];  // byte offsets of the thread's vectors within its chunk
#pragma unroll
  for (int u = 0; u < kBulkVecs; ++u) {
    off[u] = uint32_t((gl * G + vec_offset<T, kLanes, kBulkVecs, Mode::kPseudo>(u, lane)) * int(sizeof(T)));
  }
  float unused[kBulkVecs][V];  // no in_scale
  for (int64_t i = 0; i < local; ++i) {
    const int64_t gi = (blockIdx.x + i * gridDim.x) * C + gl;  // flat (row, group) index
    const bool live = gi < a.n_groups;                          // the same for the group's kLanes lanes
    const float ratio = live && a.clip != nullptr ? a.clip[gi] : 1.0f;
    const uint32_t base = stages + stage(i) * kBulkChunk;
    mbar_wait(full + 8 * stage(i), parity(i));
    if (live) {
      uint4 raw[kBulkVecs];
#pragma unroll
      for (int u = 0; u < kBulkVecs; ++u) raw[u] = lds128(base + off[u]);
      quantize_slice<T, kLanes, kBulkVecs, Mode::kPseudo, false>(
          raw, ScaleRegs<kBulkVecs, V>{unused, unused}, true, gmask, ratio, a,
          [&](int u, const float (&r)[V]) { sts128(base + off[u], quant::pack<T>(r)); });
    }
    // this thread's shared writes before the bulk store's async-proxy reads, then it releases the stage
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
    mbar_arrive(empty + 8 * stage(i));
  }
#endif
}

// ---- generic path --------------------------------------------------------------------------
// Block-wide min and max; every thread gets the result. blockDim.x is a multiple of 32.
__device__ __forceinline__ void block_min_max(float& mn, float& mx) {
  __shared__ float sh_mn[32], sh_mx[32];
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    mn = fminf(mn, __shfl_xor_sync(0xffffffffu, mn, o));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
  }
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
  if (lane == 0) {
    sh_mn[warp] = mn;
    sh_mx[warp] = mx;
  }
  __syncthreads();
  mn = sh_mn[0];
  mx = sh_mx[0];
  for (int i = 1; i < warps; ++i) {
    mn = fminf(mn, sh_mn[i]);
    mx = fmaxf(mx, sh_mx[i]);
  }
}

template <typename T, Mode M>
__global__ void __launch_bounds__(kThreads) group_generic_kernel(const GroupArgs a) {
  const int64_t gid = blockIdx.x;
  const int g = a.group_size;
  const int64_t base = gid * g;
  const int64_t col0 = (gid % a.groups_per_row) * g;
  const T* w = static_cast<const T*>(a.w);
  const bool has_scale = M == Mode::kPseudo && a.in_scale != nullptr;
  auto value = [&](int i) {
    const float x = Elem<T>::to_f(w[base + i]);
    return has_scale ? x * a.in_scale[col0 + i] : x;
  };

  float mn = INFINITY, mx = -INFINITY;
  for (int i = threadIdx.x; i < g; i += blockDim.x) {
    const float x = value(i);
    mn = fminf(mn, x);
    mx = fmaxf(mx, x);
  }
  block_min_max(mn, mx);  // its barrier also orders every read of w before the writes below (out may alias w)

  const float ratio = a.clip != nullptr ? a.clip[gid] : 1.0f;
  const GroupQParams q = group_qparams(mn, mx, ratio, a.bits, a.zero_point, RoundTo<T>());
  if constexpr (M == Mode::kPseudo) {
    T* out = static_cast<T*>(a.out);
    for (int i = threadIdx.x; i < g; i += blockDim.x) {
      out[base + i] = quant::pseudo_value<T>(value(i), q, has_scale ? a.in_scale[col0 + i] : 1.0f, has_scale);
    }
  } else {
    const float offset = a.zero_point ? 0.0f : 8.0f;
    for (int wi = threadIdx.x; wi < g / 8; wi += blockDim.x) {
      uint32_t word = 0;
#pragma unroll
      for (int e = 0; e < 8; ++e) word |= uint32_t(quant_code(value(8 * wi + e), q) + offset) << (4 * nibble_pos(e));
      a.qweight[base / 8 + wi] = int32_t(word);
    }
    if (threadIdx.x == 0) {
      static_cast<T*>(a.scales)[gid] = Elem<T>::from_f(q.scale);
      a.zeros[gid] = uint8_t(q.zero + offset);
    }
  }
}

// ---- dispatch --------------------------------------------------------------------------------
// Instantiated fast-path configurations: kLanes in {1, 2, 4, 8, 16, 32} threads per group, kVecs
// 16-byte vectors per thread (2 for pseudo-quantization, 4 for INT4), so
//   pseudo-quantization  fp16 / bf16: group_size 16, 32, ..., 512   fp32: 8, 16, ..., 256
//   INT4                 fp16 / bf16: group_size 32, 64, ..., 1024  fp32: 16, 32, ..., 512
// The fast path also needs 16-byte aligned w / out / in_scale (INT4: w and qweight). Everything
// else (other group sizes, whole-row groups such as g = K = 11008, unaligned views) takes the
// generic path.
// Blocks of kernel `f` resident on one SM (a host-side occupancy calculation).
template <typename F>
int resident_blocks(F f) {
  int nb = 0;
  if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&nb, f, kThreads, 0) != cudaSuccess || nb < 1) nb = 1;
  return nb;
}

// Row slots of a persistent grid: as many threads as one wave holds, in whole rows of tpr threads
// (at least one row, at most one slot per row).
inline int64_t grid_slots(int64_t wave_threads, int64_t tpr, int64_t rows) {
  return std::max<int64_t>(1, std::min<int64_t>(rows, wave_threads / tpr));
}

template <typename Kernel>
Status launch_grid(Kernel kernel, int resident, int kLanes, const GroupArgs& a, cudaStream_t s) {
  const int64_t tpr = a.groups_per_row * kLanes;
  const int64_t slots = grid_slots(int64_t(quant::sm_count()) * resident * kThreads, tpr, a.n);
  const int64_t blocks = (slots * tpr + kThreads - 1) / kThreads;
  if (blocks > 0x7fffffff) return Status::kUnsupported;
  kernel<<<unsigned(blocks), kThreads, 0, s>>>(a, slots);
  return quant::launch_status();
}

template <typename T, Mode M, bool kScale, int kLanes>
Status launch_fast_kernel(const GroupArgs& a, cudaStream_t s) {
  constexpr int kVecs = kVecsFor<M>;
  if constexpr (kScale && kScaleSmem<T>) {
    // the shared-memory form where its 4 blocks per SM fit (resident blocks: per instantiation,
    // computed once)
    auto shared = group_fast_kernel<T, kLanes, kVecs, M, kScale, true>;
    static const int resident_shared = resident_blocks(shared);
    if (resident_shared >= 4) return launch_grid(shared, resident_shared, kLanes, a, s);
  }
  auto kernel = group_fast_kernel<T, kLanes, kVecs, M, kScale>;
  static const int resident = resident_blocks(kernel);
  return launch_grid(kernel, resident, kLanes, a, s);
}

// Launches the fast kernel if the group size has an instantiation; false (nothing launched) if not.
template <typename T, Mode M, bool kScale>
bool launch_fast(const GroupArgs& a, cudaStream_t s, Status* status) {
  constexpr int kPerLane = kVecsFor<M> * kVec<T>;
  const int g = a.group_size;
  if (g % kPerLane != 0) return false;
  switch (g / kPerLane) {
    case 1: *status = launch_fast_kernel<T, M, kScale, 1>(a, s); return true;
    case 2: *status = launch_fast_kernel<T, M, kScale, 2>(a, s); return true;
    case 4: *status = launch_fast_kernel<T, M, kScale, 4>(a, s); return true;
    case 8: *status = launch_fast_kernel<T, M, kScale, 8>(a, s); return true;
    case 16: *status = launch_fast_kernel<T, M, kScale, 16>(a, s); return true;
    case 32: *status = launch_fast_kernel<T, M, kScale, 32>(a, s); return true;
    default: return false;  // not a power of two or too large: generic path
  }
}

// Bulk-copy kernel for pseudo-quantization, where it runs: only if the kernel was compiled with its
// body (sm_90 machine code; on a newer GPU the runtime JIT-compiles the compute_80 PTX, whose body is
// empty, and ptxVersion says so) and its shared memory can be had. Checked once per instantiation.
template <typename T, int kLanes>
Status launch_bulk_kernel(const GroupArgs& a, cudaStream_t s) {
  auto kernel = group_bulk_kernel<T, kLanes>;
  static const bool usable = [&] {
    cudaFuncAttributes at{};
    const bool ok = cudaFuncGetAttributes(&at, kernel) == cudaSuccess && at.ptxVersion >= 90 &&
                    cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kBulkSmem) == cudaSuccess;
    if (!ok) cudaGetLastError();  // a failed query leaves no error behind for the fallback's launch check
    return ok;
  }();
  if (!usable) return Status::kUnsupported;
  const int64_t bytes = a.n_groups * a.group_size * int64_t(sizeof(T));
  const int64_t n_chunks = (bytes + kBulkChunk - 1) / kBulkChunk;
  const int64_t blocks = std::min<int64_t>(n_chunks, int64_t(quant::sm_count()) * kBulkBlocks);
  kernel<<<unsigned(blocks), kBulkThreads, kBulkSmem, s>>>(a, n_chunks);
  return quant::launch_status();
}

// Launches the bulk kernel if it applies (pseudo-quantization without in_scale, a group size of the
// fast path) and runs on this device; false (nothing launched) if not. -DAWQ_NO_BULK (tuning and
// test builds of bench_quant) leaves everything to the persistent grid.
template <typename T>
bool launch_bulk(const GroupArgs& a, cudaStream_t s, Status* status) {
#if defined(AWQ_NO_BULK)
  return false;
#else
  constexpr int kPerLane = kBulkVecs * kVec<T>;
  const int g = a.group_size;
  if (a.in_scale != nullptr || g % kPerLane != 0) return false;
  Status st = Status::kUnsupported;
  switch (g / kPerLane) {
    case 1: st = launch_bulk_kernel<T, 1>(a, s); break;
    case 2: st = launch_bulk_kernel<T, 2>(a, s); break;
    case 4: st = launch_bulk_kernel<T, 4>(a, s); break;
    case 8: st = launch_bulk_kernel<T, 8>(a, s); break;
    case 16: st = launch_bulk_kernel<T, 16>(a, s); break;
    case 32: st = launch_bulk_kernel<T, 32>(a, s); break;
    default: return false;
  }
  if (st == Status::kUnsupported) return false;
  *status = st;
  return true;
#endif
}

template <typename T, Mode M>
Status launch_group(const GroupArgs& a, bool aligned, cudaStream_t s) {
  if (a.n_groups <= 0) return Status::kOk;
  if (aligned) {
    Status st = Status::kOk;
    if constexpr (M == Mode::kPseudo) {
      if (launch_bulk<T>(a, s, &st)) return st;
    }
    const bool scaled = M == Mode::kPseudo && a.in_scale != nullptr;
    if (scaled ? launch_fast<T, M, M == Mode::kPseudo>(a, s, &st) : launch_fast<T, M, false>(a, s, &st)) return st;
  }
  if (a.n_groups > 0x7fffffff) return Status::kUnsupported;
  const int g = a.group_size;
  // a warp-multiple no larger than the group, so small groups do not leave most threads idle
  const int threads = std::min(kThreads, std::max(32, (g + 31) / 32 * 32));
  group_generic_kernel<T, M><<<unsigned(a.n_groups), threads, 0, s>>>(a);
  return quant::launch_status();
}

// ---- dequantize ------------------------------------------------------------------------------
// Generic path (any K % 8 == 0, any group size, any alignment). One thread per packed word:
// 8 outputs, one 16-byte store for fp16/bf16 (two for fp32).
template <typename T>
__global__ void __launch_bounds__(kThreads) dequant_kernel(const DequantInt4Params p, bool vec_store) {
  const int64_t kw = p.k / 8;
  const int64_t wid = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  if (wid >= p.n * kw) return;
  const int64_t row = wid / kw;
  const int64_t c0 = (wid % kw) * 8;
  const int64_t groups = p.k / p.group_size;
  const uint32_t word = uint32_t(p.qweight[wid]);
  const T* scales = static_cast<const T*>(p.scales);
  float f[8];
  if (p.group_size % 8 == 0) {  // the word lies in one group
    const int64_t gi = row * groups + c0 / p.group_size;
    const float s = Elem<T>::to_f(scales[gi]);
    const float z = float(p.zeros[gi]);
#pragma unroll
    for (int e = 0; e < 8; ++e) f[e] = (float((word >> (4 * nibble_pos(e))) & 0xfu) - z) * s;
  } else {
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      const int64_t gi = row * groups + (c0 + e) / p.group_size;
      f[e] = (float((word >> (4 * nibble_pos(e))) & 0xfu) - float(p.zeros[gi])) * Elem<T>::to_f(scales[gi]);
    }
  }
  T* out = static_cast<T*>(p.out) + row * p.k + c0;
  if (vec_store) {
    constexpr int V = kVec<T>;
#pragma unroll
    for (int h = 0; h < 8; h += V) {
      float r[V];
#pragma unroll
      for (int e = 0; e < V; ++e) r[e] = f[h + e];
      quant::store_vec<T>(out + h, r);
    }
  } else {
#pragma unroll
    for (int e = 0; e < 8; ++e) out[e] = Elem<T>::from_f(f[e]);
  }
}

// Fast path: the persistent row-slot grid of the group kernels with one thread per packed word of a
// row (tpr = K / 8): a warp loads 32 consecutive words (128 bytes) and stores 32 consecutive 16-byte
// vectors (512 bytes, fp16 / bf16), and each thread has kRows rows' loads in flight. Needs
// group_size % 8 == 0 (a word lies in one group) and a 16-byte aligned out. The code is read as
// float bits: 2^23 + q is (0x4B000000 | q), and (2^23 + q) - (2^23 + z) = q - z exactly, the same
// value as float(q) - z without a conversion.
template <typename T>
__global__ void __launch_bounds__(kThreads) dequant_fast_kernel(const DequantInt4Params p, int64_t slots) {
  const int64_t kw = p.k / 8;
  const int64_t tid = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  if (tid >= slots * kw) return;
  const int64_t slot = tid / kw;
  const int64_t cw = tid - slot * kw;
  const int64_t groups = p.k / p.group_size;
  const int64_t gcol = cw * 8 / p.group_size;
  const T* scales = static_cast<const T*>(p.scales);
  T* out = static_cast<T*>(p.out) + cw * 8;
  for (int64_t r0 = slot; r0 < p.n; r0 += int64_t(kRows) * slots) {
    uint32_t q[kRows];
    T s[kRows];
    uint8_t z[kRows];
#pragma unroll
    for (int i = 0; i < kRows; ++i) {
      const int64_t row = r0 + int64_t(i) * slots;
      if (row < p.n) {
        q[i] = uint32_t(p.qweight[row * kw + cw]);
        s[i] = scales[row * groups + gcol];
        z[i] = p.zeros[row * groups + gcol];
      }
    }
#pragma unroll
    for (int i = 0; i < kRows; ++i) {
      const int64_t row = r0 + int64_t(i) * slots;
      if (row >= p.n) break;
      const float sf = Elem<T>::to_f(s[i]);
      const float zb = kTwo23 + float(z[i]);
      float f[8];
#pragma unroll
      for (int e = 0; e < 8; ++e) {
        const float code = __uint_as_float(0x4B000000u | ((q[i] >> (4 * nibble_pos(e))) & 0xfu));
        f[e] = __fmul_rn(__fsub_rn(code, zb), sf);
      }
      constexpr int V = kVec<T>;
#pragma unroll
      for (int h = 0; h < 8; h += V) {
        float r[V];
#pragma unroll
        for (int e = 0; e < V; ++e) r[e] = f[h + e];
        quant::store_vec<T>(out + row * p.k + h, r);
      }
    }
  }
}

// ---- AutoAWQ repack --------------------------------------------------------------------------
// One thread per 8 x 8 tile of codes: rows n = 8c .. 8c+7, columns k = 8j .. 8j+7. In the kernel
// layout the tile is 8 words (one per row n, packed along k); in the AutoAWQ layout it is 8 words
// (one per column k, packed along n). Both use the same nibble order, so the tile transpose is
//   awq word e, nibble pos(r)  <->  kernel word r, nibble pos(e).
// Consecutive threads take consecutive c, so the AutoAWQ-side words are coalesced.
__global__ void __launch_bounds__(kThreads) repack_weight_kernel(const AwqRepackParams p) {
  const int64_t nw = p.n / 8, kw = p.k / 8;
  const int64_t tid = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  if (tid >= nw * kw) return;
  const int64_t c = tid % nw, j = tid / nw;
  uint32_t in[8], out[8];
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    in[i] = p.to_awq ? uint32_t(p.qweight[(8 * c + i) * kw + j]) : uint32_t(p.qweight_awq[(8 * j + i) * nw + c]);
    out[i] = 0;
  }
  // in[i] nibble pos(o) goes to out[o] nibble pos(i)
#pragma unroll
  for (int i = 0; i < 8; ++i)
#pragma unroll
    for (int o = 0; o < 8; ++o) out[o] |= ((in[i] >> (4 * nibble_pos(o))) & 0xfu) << (4 * nibble_pos(i));
#pragma unroll
  for (int o = 0; o < 8; ++o) {
    if (p.to_awq) {
      p.qweight_awq[(8 * j + o) * nw + c] = int32_t(out[o]);
    } else {
      p.qweight[(8 * c + o) * kw + j] = int32_t(out[o]);
    }
  }
}

// One thread per AutoAWQ zero word (group row gi, columns n = 8c .. 8c+7).
__global__ void __launch_bounds__(kThreads) repack_zeros_kernel(const AwqRepackParams p) {
  const int64_t nw = p.n / 8, groups = p.k / p.group_size;
  const int64_t tid = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  if (tid >= nw * groups) return;
  const int64_t c = tid % nw, gi = tid / nw;
  if (p.to_awq) {
    uint32_t word = 0;
#pragma unroll
    for (int r = 0; r < 8; ++r) word |= uint32_t(p.zeros[(8 * c + r) * groups + gi] & 0xfu) << (4 * nibble_pos(r));
    p.qzeros_awq[gi * nw + c] = int32_t(word);
  } else {
    const uint32_t word = uint32_t(p.qzeros_awq[gi * nw + c]);
#pragma unroll
    for (int r = 0; r < 8; ++r) p.zeros[(8 * c + r) * groups + gi] = uint8_t((word >> (4 * nibble_pos(r))) & 0xfu);
  }
}

inline int64_t blocks_for(int64_t threads) { return (threads + kThreads - 1) / kThreads; }

}  // namespace

Status pseudo_quantize(const PseudoQuantParams& p, void* stream) {
  if (p.n <= 0 || p.k <= 0) return Status::kOk;
  if (p.group_size <= 0 || p.k % p.group_size != 0 || p.bits < 2 || p.bits > 8) return Status::kUnsupported;
  GroupArgs a;
  a.w = p.w;
  a.out = p.out;
  a.in_scale = p.in_scale;
  a.clip = p.clip;
  a.n = p.n;
  a.groups_per_row = p.k / p.group_size;
  a.n_groups = p.n * a.groups_per_row;
  a.group_size = p.group_size;
  a.bits = p.bits;
  a.zero_point = p.zero_point;
  const bool aligned =
      quant::aligned16(p.w) && quant::aligned16(p.out) && (p.in_scale == nullptr || quant::aligned16(p.in_scale));
  auto s = static_cast<cudaStream_t>(stream);
  return AWQ_DTYPE_SWITCH(p.dtype, D, [&] { return launch_group<quant::dev_t<D>, Mode::kPseudo>(a, aligned, s); });
}

Status quantize_int4(const QuantizeInt4Params& p, void* stream) {
  if (p.n <= 0 || p.k <= 0) return Status::kOk;
  if (p.group_size <= 0 || p.k % p.group_size != 0 || p.k % 8 != 0 || p.group_size % 8 != 0) {
    return Status::kUnsupported;
  }
  GroupArgs a;
  a.w = p.w;
  a.clip = p.clip;
  a.qweight = p.qweight;
  a.scales = p.scales;
  a.zeros = p.zeros;
  a.n = p.n;
  a.groups_per_row = p.k / p.group_size;
  a.n_groups = p.n * a.groups_per_row;
  a.group_size = p.group_size;
  a.bits = 4;
  a.zero_point = p.zero_point;
  const bool aligned = quant::aligned16(p.w) && quant::aligned16(p.qweight);
  auto s = static_cast<cudaStream_t>(stream);
  return AWQ_DTYPE_SWITCH(p.dtype, D, [&] { return launch_group<quant::dev_t<D>, Mode::kInt4>(a, aligned, s); });
}

Status dequantize_int4(const DequantInt4Params& p, void* stream) {
  if (p.n <= 0 || p.k <= 0) return Status::kOk;
  if (p.k % 8 != 0 || p.group_size <= 0 || p.k % p.group_size != 0) return Status::kUnsupported;
  auto s = static_cast<cudaStream_t>(stream);
  if (p.group_size % 8 == 0 && quant::aligned16(p.out)) {
    return AWQ_DTYPE_SWITCH(p.dtype, D, [&] {
      auto kernel = dequant_fast_kernel<quant::dev_t<D>>;
      static const int resident = resident_blocks(kernel);
      const int64_t tpr = p.k / 8;
      const int64_t slots = grid_slots(int64_t(quant::sm_count()) * resident * kThreads, tpr, p.n);
      const int64_t blocks = (slots * tpr + kThreads - 1) / kThreads;
      if (blocks > 0x7fffffff) return Status::kUnsupported;
      kernel<<<unsigned(blocks), kThreads, 0, s>>>(p, slots);
      return quant::launch_status();
    });
  }
  const int64_t blocks = blocks_for(p.n * (p.k / 8));
  if (blocks > 0x7fffffff) return Status::kUnsupported;
  const bool vec_store = quant::aligned16(p.out);
  return AWQ_DTYPE_SWITCH(p.dtype, D, [&] {
    dequant_kernel<quant::dev_t<D>><<<unsigned(blocks), kThreads, 0, s>>>(p, vec_store);
    return quant::launch_status();
  });
}

Status awq_repack(const AwqRepackParams& p, void* stream) {
  if (p.n <= 0 || p.k <= 0) return Status::kOk;
  if (p.n % 8 != 0 || p.k % 8 != 0 || p.group_size <= 0 || p.k % p.group_size != 0) return Status::kUnsupported;
  const int64_t wb = blocks_for((p.n / 8) * (p.k / 8));
  const int64_t zb = blocks_for((p.n / 8) * (p.k / p.group_size));
  if (wb > 0x7fffffff || zb > 0x7fffffff) return Status::kUnsupported;
  auto s = static_cast<cudaStream_t>(stream);
  repack_weight_kernel<<<unsigned(wb), kThreads, 0, s>>>(p);
  repack_zeros_kernel<<<unsigned(zb), kThreads, 0, s>>>(p);
  return quant::launch_status();
}

}  // namespace cuda
}  // namespace awq
