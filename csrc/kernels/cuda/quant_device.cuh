// Device helpers shared by the CUDA kernels of AWQ's searches (act_stats.cu, quantize.cu,
// quant_error.cu, clip_search.cu): element conversions, the per-element pseudo-quantized value,
// 16-byte vector loads/stores, the dtype rounding functor that quant_math.h's group_qparams takes,
// and the DType -> CUDA type map of the launchers.
//
// Bit-exactness with the CPU kernels and the PyTorch oracle rests on three things here:
//   * RoundTo<T> rounds an fp32 value to T and back with the hardware's round-to-nearest-even
//     conversions (__float2half_rn / __float2bfloat16_rn), which match quant_math.h's host ones;
//   * stores to T use the same conversions;
//   * these files are never built with -use_fast_math, so `/` stays IEEE division (div.rn.f32).
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "awq/core.h"
#include "awq/quant_math.h"
#include "awq/static_switch.h"

namespace awq {
namespace cuda {
namespace quant {

// ---- element traits ------------------------------------------------------------------------
template <typename T>
struct Elem;

template <>
struct Elem<float> {
  static __device__ __forceinline__ float to_f(float v) { return v; }
  static __device__ __forceinline__ float from_f(float v) { return v; }
};

template <>
struct Elem<__half> {
  static __device__ __forceinline__ float to_f(__half v) { return __half2float(v); }
  static __device__ __forceinline__ __half from_f(float v) { return __float2half_rn(v); }
};

template <>
struct Elem<__nv_bfloat16> {
  static __device__ __forceinline__ float to_f(__nv_bfloat16 v) { return __bfloat162float(v); }
  static __device__ __forceinline__ __nv_bfloat16 from_f(float v) { return __float2bfloat16_rn(v); }
};

// Rounds an fp32 value to T and back: the scale of a group is stored in T, so the codes are
// computed with the rounded scale (identity for fp32).
template <typename T>
struct RoundTo {
  __device__ __forceinline__ float operator()(float v) const { return Elem<T>::to_f(Elem<T>::from_f(v)); }
};

// The pseudo-quantized value of one scaled element x = w * s, stored as T: rnd_T(Q(x) / s), or
// rnd_T(Q(x)) without an in_scale. quant_math.h verbatim with IEEE `/`: the arithmetic of the generic
// pseudo-quantization kernel (quantize.cu) and of the error kernel (quant_error.cu), which therefore
// see the same value for every element (the fast path is bit-identical to it, see quantize.cu).
template <typename T>
__device__ __forceinline__ T pseudo_value(float x, const GroupQParams& q, float s, bool has_scale) {
  float r = dequant_code(quant_code(x, q), q);
  if (has_scale) r = r / s;
  return Elem<T>::from_f(r);
}

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

// ---- 16-byte vectors -----------------------------------------------------------------------
// kVec<T> elements of T fill one 16-byte access (8 for fp16/bf16, 4 for fp32).
template <typename T>
constexpr int kVec = 16 / int(sizeof(T));

__device__ __forceinline__ void unpack_vec(const uint4& u, float (&f)[4]) {
  f[0] = __uint_as_float(u.x);
  f[1] = __uint_as_float(u.y);
  f[2] = __uint_as_float(u.z);
  f[3] = __uint_as_float(u.w);
}

__device__ __forceinline__ void unpack_vec_half(const uint4& u, float (&f)[8]) {
  const uint32_t w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    __half2 h;
    memcpy(&h, &w[i], 4);
    const float2 p = __half22float2(h);
    f[2 * i] = p.x;
    f[2 * i + 1] = p.y;
  }
}

__device__ __forceinline__ void unpack_vec_bf16(const uint4& u, float (&f)[8]) {
  const uint32_t w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    // bf16 -> fp32 is a shift: the bf16 bits are the top half of the fp32 bits
    f[2 * i] = __uint_as_float(w[i] << 16);
    f[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
  }
}

template <typename T>
__device__ __forceinline__ void unpack(const uint4& u, float (&f)[kVec<T>]);
template <>
__device__ __forceinline__ void unpack<float>(const uint4& u, float (&f)[4]) { unpack_vec(u, f); }
template <>
__device__ __forceinline__ void unpack<__half>(const uint4& u, float (&f)[8]) { unpack_vec_half(u, f); }
template <>
__device__ __forceinline__ void unpack<__nv_bfloat16>(const uint4& u, float (&f)[8]) { unpack_vec_bf16(u, f); }

template <typename T>
__device__ __forceinline__ uint4 pack(const float (&f)[kVec<T>]);
template <>
__device__ __forceinline__ uint4 pack<float>(const float (&f)[4]) {
  return make_uint4(__float_as_uint(f[0]), __float_as_uint(f[1]), __float_as_uint(f[2]), __float_as_uint(f[3]));
}
template <>
__device__ __forceinline__ uint4 pack<__half>(const float (&f)[8]) {
  uint32_t w[4];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const __half2 h = __floats2half2_rn(f[2 * i], f[2 * i + 1]);  // both halves round to nearest even
    memcpy(&w[i], &h, 4);
  }
  return make_uint4(w[0], w[1], w[2], w[3]);
}
template <>
__device__ __forceinline__ uint4 pack<__nv_bfloat16>(const float (&f)[8]) {
  uint32_t w[4];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const __nv_bfloat162 h = __floats2bfloat162_rn(f[2 * i], f[2 * i + 1]);
    memcpy(&w[i], &h, 4);
  }
  return make_uint4(w[0], w[1], w[2], w[3]);
}

template <typename T>
__device__ __forceinline__ void load_vec(const T* p, float (&f)[kVec<T>]) {
  unpack<T>(*reinterpret_cast<const uint4*>(p), f);
}

// One 16-byte global store (p: global memory, 16-byte aligned). Written as st.global.v4 because a
// plain uint4 assignment was split by nvcc 13.0 into four 4-byte stores inside the unrolled group
// kernel (seen in its SASS): 4x the store instructions, each writing 4 of every 16 bytes per lane.
template <typename T>
__device__ __forceinline__ void store_vec(T* p, const float (&f)[kVec<T>]) {
  __stwb(reinterpret_cast<uint4*>(p), pack<T>(f));
}

// ---- host side -----------------------------------------------------------------------------
inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

inline Status launch_status() { return cudaGetLastError() == cudaSuccess ? Status::kOk : Status::kLaunchError; }

// Multiprocessors of the current device, for grid sizing (an attribute query: no sync).
inline int sm_count() {
  int dev = 0, n = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) return 132;
  if (cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess || n <= 0) return 132;
  return n;
}

// CUDA element type of a core DType (used with AWQ_DTYPE_SWITCH).
template <DType D>
struct DevType;
template <>
struct DevType<DType::kF16> {
  using T = __half;
};
template <>
struct DevType<DType::kBF16> {
  using T = __nv_bfloat16;
};
template <>
struct DevType<DType::kF32> {
  using T = float;
};
template <DType D>
using dev_t = typename DevType<D>::T;

}  // namespace quant
}  // namespace cuda
}  // namespace awq
