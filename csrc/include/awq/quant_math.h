// Group quantization arithmetic shared by the CPU kernels and the CUDA kernels.
//
// Integer results (codes, zero points) must match between devices and the PyTorch oracle bit for
// bit, so every step is an IEEE-exact fp32 operation (one multiply, one divide, round-half-even
// rint, compares) and no a*b+c pattern that a compiler could contract into an FMA. The only
// device-specific piece is rounding an fp32 value to the storage dtype, done by round_to().
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#include "awq/core.h"

#if defined(__CUDACC__)
#define AWQ_HD __host__ __device__ __forceinline__
#else
#define AWQ_HD inline
#endif

namespace awq {

// ---- fp16 / bf16 <-> fp32 on the host (round to nearest even, like __float2half_rn) ----------
inline uint32_t f32_bits(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }
inline float bits_f32(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }

inline float half_to_float(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t man = h & 0x3ffu;
  if (exp == 0) {
    if (man == 0) return bits_f32(sign);
    // subnormal: normalize
    int e = -1;
    do { man <<= 1; ++e; } while ((man & 0x400u) == 0);
    man &= 0x3ffu;
    return bits_f32(sign | uint32_t(127 - 15 - e) << 23 | man << 13);
  }
  if (exp == 31) return bits_f32(sign | 0x7f800000u | man << 13);
  return bits_f32(sign | (exp + 112) << 23 | man << 13);
}

inline uint16_t float_to_half(float f) {
  const uint32_t u = f32_bits(f);
  const uint16_t sign = uint16_t((u >> 16) & 0x8000u);
  const uint32_t au = u & 0x7fffffffu;
  if (au >= 0x7f800000u) return uint16_t(sign | 0x7c00u | (au > 0x7f800000u ? 0x200u : 0u));
  if (au >= 0x477ff000u) return uint16_t(sign | 0x7c00u);  // rounds to >= 65520: inf
  if (au < 0x38800000u) {                                   // below 2^-14: subnormal or zero
    // value in units of 2^-24, rounded half to even
    const float a = bits_f32(au);
    const float scaled = a * 16777216.0f;                   // exact (power of two)
    const uint32_t r = uint32_t(std::nearbyint(scaled));
    return uint16_t(sign | r);
  }
  // normal: drop 13 mantissa bits with round half to even
  uint32_t m = au + 0xfffu + ((au >> 13) & 1u);
  m -= 0x38000000u;  // rebias exponent 127 -> 15
  return uint16_t(sign | (m >> 13));
}

inline float bf16_to_float(uint16_t b) { return bits_f32(uint32_t(b) << 16); }

inline uint16_t float_to_bf16(float f) {
  uint32_t u = f32_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40u);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

// Round an fp32 value to dtype and back (identity for fp32). Host version.
inline float round_to_host(float v, DType dt) {
  switch (dt) {
    case DType::kF16: return half_to_float(float_to_half(v));
    case DType::kBF16: return bf16_to_float(float_to_bf16(v));
    default: return v;
  }
}

// ---- group quantization parameters -----------------------------------------------------------
struct GroupQParams {
  float scale;  // rounded to the storage dtype
  float zero;   // integer-valued; 0 for symmetric
  float lo;     // clamp range for the scaled values
  float hi;
  float qmin;   // code range (0..2^b-1, or -2^(b-1)..2^(b-1)-1)
  float qmax;
};

AWQ_HD float rint_f(float v) {
#if defined(__CUDA_ARCH__)
  return rintf(v);
#else
  return std::nearbyint(v);
#endif
}

AWQ_HD float clampf(float v, float lo, float hi) { return v < lo ? lo : (v > hi ? hi : v); }

// mn, mx: min and max of the group's (scaled) values; ratio: clip ratio (1 = no clip).
// RoundFn rounds an fp32 value to the storage dtype (host or device flavour).
template <typename RoundFn>
AWQ_HD GroupQParams group_qparams(float mn, float mx, float ratio, int bits, bool zero_point,
                                  RoundFn round_fn) {
  GroupQParams q;
  const float amax = fmaxf(fabsf(mn), fabsf(mx));
  const float lim = amax * ratio;
  if (zero_point) {
    const float lo = fmaxf(mn, -lim);
    const float hi = fminf(mx, lim);
    q.qmin = 0.0f;
    q.qmax = float((1 << bits) - 1);
    q.scale = round_fn(fmaxf(hi - lo, 1e-5f) / q.qmax);
    q.zero = clampf(rint_f(-lo / q.scale), q.qmin, q.qmax);
    q.lo = lo;
    q.hi = hi;
  } else {
    q.qmin = -float(1 << (bits - 1));
    q.qmax = float((1 << (bits - 1)) - 1);
    q.scale = round_fn(fmaxf(lim, 1e-5f) / q.qmax);
    q.zero = 0.0f;
    q.lo = -lim;
    q.hi = lim;
  }
  return q;
}

// Code of one scaled value (zero point included), as a float holding an integer.
AWQ_HD float quant_code(float v, const GroupQParams& q) {
  return clampf(rint_f(clampf(v, q.lo, q.hi) / q.scale) + q.zero, q.qmin, q.qmax);
}

// Dequantized fp32 value of a code.
AWQ_HD float dequant_code(float code, const GroupQParams& q) { return (code - q.zero) * q.scale; }

}  // namespace awq
