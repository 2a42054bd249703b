// Grouped quantization on the GPU: pseudo-quantization (quantize-dequantize, the inner loop of AWQ's
// scale search), INT4 quantize + pack into the kernel layout, dequantize, and the conversion to and
// from the AutoAWQ "gemm" layout. Arithmetic: quant_math.h (group_qparams / quant_code /
// dequant_code), so codes, zero points and packed words match the CPU kernels and the oracle.
//
// Group kernels, two paths:
//
// * fast: one pass, one read of W and one write. A group of g = kLanes * 2 * V elements (V = 16
//   bytes of the dtype) lives in the registers of kLanes adjacent threads, two 16-byte vectors each;
//   min / max are reduced with kLanes-wide shuffles, then every thread quantizes its own elements.
//
//       fp16 / bf16, g = 128, kLanes = 8 (V = 8):     group = 16 vectors v0 .. v15
//         lane l holds v_l and v_{l+8}                (each of the warp's two 16-byte load
//                                                      instructions reads 512 contiguous bytes)
//       fp32, g = 128, kLanes = 16 (V = 4):            lane l holds v_{2l}, v_{2l+1} (8 consecutive
//                                                      elements = one packed INT4 word per thread)
//
//   The kLanes threads of a group take the same group column in kRowsPerThread consecutive rows
//   (in_scale and its reciprocals are reused); consecutive lane groups take consecutive group
//   columns of a row, so a warp's loads stay contiguous. The scale division inside the codes and
//   the division by in_scale use the exact reused-divisor form of IEEE division (Divisor below).
//
// * generic: one block per group, any g, any alignment: a min/max pass, a block reduction, then a
//   second pass over the same group (from L1/L2) that quantizes and writes.
#include <algorithm>
#include <type_traits>

#include "awq/layout.h"
#include "quant_device.cuh"

namespace awq {
namespace cuda {
namespace {

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
// Exact IEEE fp32 division by a divisor that is reused. It is the compiler's own div.rn.f32 fast
// path (MUFU.RCP, one Newton step for the reciprocal y, then q0 = a*y, r = a - b*q0 exactly by FMA,
// q = q0 + r*y) with the reciprocal computed once instead of per division, and without the
// per-division FCHK range check and branch to the slow path. FCHK only screens operand ranges
// (denormal, huge or tiny exponents); callers use this only where |b| is in [2^-64, 2^64] and
// |a| <= 2^62 (in_scale: |b| in [2^-30, 2^30]), far inside that range, and fall back to `/`
// otherwise. The one deviation, the sign of a zero quotient, cannot change a code or an output:
// codes are rint(q) + z with z >= +0, and a zero output (c - z) * s is always +0.
struct Divisor {
  float b, y;
  __device__ __forceinline__ explicit Divisor(float b_) : b(b_), y(reciprocal(b_)) {}
  __device__ __forceinline__ Divisor(float b_, float y_) : b(b_), y(y_) {}
  static __device__ __forceinline__ float reciprocal(float b) {
    float r0;
    asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(r0) : "f"(b));
    return __fmaf_rn(r0, __fmaf_rn(-b, r0, 1.0f), r0);
  }
  __device__ __forceinline__ float div(float a) const {
    const float q0 = __fmul_rn(a, y);
    return __fmaf_rn(y, __fmaf_rn(-b, q0, a), q0);
  }
};

// Threads per group x rows per thread: each thread quantizes the same columns of kRowsPerThread
// consecutive rows, so its in_scale values and their reciprocals are loaded and computed once per
// kRowsPerThread groups; the next row's vectors are loaded while the current row is quantized.
constexpr int kRowsPerThread = 4;

// kLanes: threads per group (power of two, 1..32); the group size is kLanes * 2 * kVec<T>.
// kScale: pseudo-quantization with an in_scale vector (w * s, quantize, / s).
template <typename T, int kLanes, Mode M, bool kScale>
__global__ void __launch_bounds__(kThreads, kScale ? 2 : 4) group_fast_kernel(const GroupArgs a) {
  constexpr int V = kVec<T>;
  constexpr int G = kLanes * 2 * V;
  constexpr int R = kRowsPerThread;
  constexpr bool kSplit = sizeof(T) == 2;  // see the layout drawing at the top of the file
  static_assert(M == Mode::kPseudo || !kScale, "INT4 quantization takes no in_scale");
  const int64_t tid = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  const int64_t slot = tid / kLanes;  // (block of R rows, group column j); all lanes of a group agree
  const int lane = int(threadIdx.x) % kLanes;
  const int64_t gpr = a.groups_per_row;
  const int64_t j = slot % gpr;
  const int64_t n0 = (slot / gpr) * R;
  const int64_t k = gpr * G;
  const int64_t col0 = j * G;
  int off[2];
#pragma unroll
  for (int u = 0; u < 2; ++u) off[u] = kSplit ? (u * kLanes + lane) * V : (2 * lane + u) * V;
  const T* w = static_cast<const T*>(a.w);

  float sc[2][V], scy[2][V];
  bool scale_safe = true;
  if constexpr (kScale) {
#pragma unroll
    for (int u = 0; u < 2; ++u) {
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
        const float m = fabsf(sc[u][e]);
        scale_safe = scale_safe && m >= 0x1p-30f && m <= 0x1p30f;  // false for NaN
        scy[u][e] = Divisor::reciprocal(sc[u][e]);
      }
    }
  }

  uint4 nxt[2];
  auto load_row = [&](int64_t row) {
#pragma unroll
    for (int u = 0; u < 2; ++u) {
      nxt[u] = row < a.n ? *reinterpret_cast<const uint4*>(w + row * k + col0 + off[u]) : make_uint4(0, 0, 0, 0);
    }
  };
  load_row(n0);

#pragma unroll 1
  for (int i = 0; i < R; ++i) {
    const int64_t row = n0 + i;
    float v[2][V];
#pragma unroll
    for (int u = 0; u < 2; ++u) quant::unpack<T>(nxt[u], v[u]);
    if (i + 1 < R) load_row(row + 1);
    if constexpr (kScale) {
#pragma unroll
      for (int u = 0; u < 2; ++u)
#pragma unroll
        for (int e = 0; e < V; ++e) v[u][e] = v[u][e] * sc[u][e];
    }

    float mn = v[0][0], mx = v[0][0];
#pragma unroll
    for (int u = 0; u < 2; ++u)
#pragma unroll
      for (int e = 0; e < V; ++e) {
        mn = fminf(mn, v[u][e]);
        mx = fmaxf(mx, v[u][e]);
      }
    // every lane of the warp runs all R iterations, so full-warp shuffles are safe
#pragma unroll
    for (int o = kLanes / 2; o > 0; o >>= 1) {
      mn = fminf(mn, __shfl_xor_sync(0xffffffffu, mn, o));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    }
    if (row >= a.n) continue;

    const int64_t gi = row * gpr + j;  // (row, group) index of scales / zeros / clip
    const int64_t base = row * k + col0;
    const float ratio = a.clip != nullptr ? a.clip[gi] : 1.0f;
    const GroupQParams q = group_qparams(mn, mx, ratio, a.bits, a.zero_point, RoundTo<T>());

    // Quantize and write this thread's 2 x V elements. code_fn: value -> code; fast_out
    // (std::true_type): divide by in_scale with the precomputed reciprocals.
    auto finish = [&](auto code_fn, auto fast_out) {
      if constexpr (M == Mode::kPseudo) {
        T* out = static_cast<T*>(a.out);
#pragma unroll
        for (int u = 0; u < 2; ++u) {
          float r[V];
#pragma unroll
          for (int e = 0; e < V; ++e) {
            r[e] = dequant_code(code_fn(v[u][e]), q);
            if constexpr (kScale) {
              if constexpr (decltype(fast_out)::value) {
                r[e] = Divisor(sc[u][e], scy[u][e]).div(r[e]);
              } else {
                r[e] = r[e] / sc[u][e];
              }
            }
          }
          quant::store_vec<T>(out + base + off[u], r);
        }
      } else {
        // symmetric codes -8..7 are stored offset by 8 with zero point 8
        const float offset = a.zero_point ? 0.0f : 8.0f;
        if constexpr (kSplit) {
#pragma unroll
          for (int u = 0; u < 2; ++u) {
            uint32_t word = 0;
#pragma unroll
            for (int e = 0; e < 8; ++e) word |= uint32_t(code_fn(v[u][e]) + offset) << (4 * nibble_pos(e));
            a.qweight[(base + off[u]) / 8] = int32_t(word);
          }
        } else {
          uint32_t word = 0;
#pragma unroll
          for (int e = 0; e < 8; ++e) word |= uint32_t(code_fn(v[e / 4][e % 4]) + offset) << (4 * nibble_pos(e));
          a.qweight[(base + off[0]) / 8] = int32_t(word);
        }
        if (lane == 0) {
          static_cast<T*>(a.scales)[gi] = Elem<T>::from_f(q.scale);
          a.zeros[gi] = uint8_t(q.zero + offset);
        }
      }
    };

    const float amax = fmaxf(fabsf(mn), fabsf(mx));
    const bool group_safe = q.scale >= 0x1p-64f && q.scale <= 0x1p64f && amax <= 0x1p62f;  // false for NaN
    if (group_safe && scale_safe) {
      const Divisor ds(q.scale);
      // codes clamped to [qmin, qmax] with fmin/fmax: the same as quant_math.h's clampf for any
      // non-NaN value (qmin < qmax)
      if (a.clip != nullptr) {
        finish([&](float x) { return fminf(fmaxf(rint_f(ds.div(clampf(x, q.lo, q.hi))) + q.zero, q.qmin), q.qmax); },
               std::true_type{});
      } else {
        // Without a clip ratio, quant_code's clamp of the value to [lo, hi] is the identity on the
        // group's own values (lo = min, hi = max; symmetric: -max|v|, max|v|), so it is skipped.
        finish([&](float x) { return fminf(fmaxf(rint_f(ds.div(x)) + q.zero, q.qmin), q.qmax); }, std::true_type{});
      }
    } else {
      finish([&](float x) { return quant_code(x, q); }, std::false_type{});
    }
  }
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
      float r = dequant_code(quant_code(value(i), q), q);
      if (has_scale) r = r / a.in_scale[col0 + i];
      out[base + i] = Elem<T>::from_f(r);
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
// Instantiated fast-path configurations (kLanes in {1, 2, 4, 8, 16, 32}, two 16-byte vectors per
// thread), per dtype and mode:
//   fp16 / bf16: group_size 16, 32, 64, 128, 256, 512
//   fp32:        group_size  8, 16, 32,  64, 128, 256
// The fast path also needs 16-byte aligned w / out / in_scale. Everything else (other group sizes,
// whole-row groups such as g = K = 11008, unaligned views) takes the generic path.
template <typename T, Mode M, int kLanes>
Status launch_fast(const GroupArgs& a, cudaStream_t s) {
  const int64_t row_blocks = (a.n + kRowsPerThread - 1) / kRowsPerThread;
  const int64_t threads = row_blocks * a.groups_per_row * kLanes;
  const int64_t blocks = (threads + kThreads - 1) / kThreads;
  if (blocks > 0x7fffffff) return Status::kUnsupported;
  if (M == Mode::kPseudo && a.in_scale != nullptr) {
    group_fast_kernel<T, kLanes, M, M == Mode::kPseudo><<<unsigned(blocks), kThreads, 0, s>>>(a);
  } else {
    group_fast_kernel<T, kLanes, M, false><<<unsigned(blocks), kThreads, 0, s>>>(a);
  }
  return quant::launch_status();
}

template <typename T, Mode M>
Status launch_group(const GroupArgs& a, bool aligned, cudaStream_t s) {
  if (a.n_groups <= 0) return Status::kOk;
  constexpr int kPerLane = 2 * kVec<T>;
  const int g = a.group_size;
  if (aligned && g % kPerLane == 0) {
    switch (g / kPerLane) {
      case 1: return launch_fast<T, M, 1>(a, s);
      case 2: return launch_fast<T, M, 2>(a, s);
      case 4: return launch_fast<T, M, 4>(a, s);
      case 8: return launch_fast<T, M, 8>(a, s);
      case 16: return launch_fast<T, M, 16>(a, s);
      case 32: return launch_fast<T, M, 32>(a, s);
      default: break;  // not a power of two or too large: generic path
    }
  }
  if (a.n_groups > 0x7fffffff) return Status::kUnsupported;
  // a warp-multiple no larger than the group, so small groups do not leave most threads idle
  const int threads = std::min(kThreads, std::max(32, (g + 31) / 32 * 32));
  group_generic_kernel<T, M><<<unsigned(a.n_groups), threads, 0, s>>>(a);
  return quant::launch_status();
}

// ---- dequantize ------------------------------------------------------------------------------
// One thread per packed word: 8 outputs, one 16-byte store for fp16/bf16 (two for fp32).
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
  const bool aligned = quant::aligned16(p.w);
  auto s = static_cast<cudaStream_t>(stream);
  return AWQ_DTYPE_SWITCH(p.dtype, D, [&] { return launch_group<quant::dev_t<D>, Mode::kInt4>(a, aligned, s); });
}

Status dequantize_int4(const DequantInt4Params& p, void* stream) {
  if (p.n <= 0 || p.k <= 0) return Status::kOk;
  if (p.k % 8 != 0 || p.group_size <= 0 || p.k % p.group_size != 0) return Status::kUnsupported;
  const int64_t blocks = blocks_for(p.n * (p.k / 8));
  if (blocks > 0x7fffffff) return Status::kUnsupported;
  const bool vec_store = quant::aligned16(p.out);
  auto s = static_cast<cudaStream_t>(stream);
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
