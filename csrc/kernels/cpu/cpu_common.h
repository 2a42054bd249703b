// Element access for the CPU kernels: fp16 and bf16 are stored as uint16_t bit patterns (the
// core is torch-free) and converted with the round-to-nearest-even helpers of quant_math.h.
#pragma once
#include <algorithm>
#include <cstdint>

#include "awq/quant_math.h"
#include "awq/static_switch.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace awq {
namespace cpu {

template <DType D> struct Elem;
template <> struct Elem<DType::kF16> {
  using T = uint16_t;
  static float load(T v) { return half_to_float(v); }
  static T store(float f) { return float_to_half(f); }
};
template <> struct Elem<DType::kBF16> {
  using T = uint16_t;
  static float load(T v) { return bf16_to_float(v); }
  static T store(float f) { return float_to_bf16(f); }
};
template <> struct Elem<DType::kF32> {
  using T = float;
  static float load(T v) { return v; }
  static T store(float f) { return f; }
};

// Rounds an fp32 value to dtype D and back: the storage rounding of group scales.
template <DType D> struct RoundTo {
  float operator()(float v) const { return Elem<D>::load(Elem<D>::store(v)); }
};

// Convert `count` elements of dtype D to fp32.
template <DType D>
inline void to_float(const void* src, float* dst, int64_t count) {
  const auto* s = static_cast<const typename Elem<D>::T*>(src);
  for (int64_t i = 0; i < count; ++i) dst[i] = Elem<D>::load(s[i]);
}

// Loads one group of g values into v (times in_scale[i] when in_scale is given) and returns the
// group's min and max: the first step of pseudo-quantization, INT4 packing and the clip search.
template <DType D>
inline void load_group(const typename Elem<D>::T* src, const float* in_scale, int g, float* v, float& mn,
                       float& mx) {
  for (int i = 0; i < g; ++i) v[i] = in_scale ? Elem<D>::load(src[i]) * in_scale[i] : Elem<D>::load(src[i]);
  mn = v[0];
  mx = v[0];
  for (int i = 1; i < g; ++i) {
    mn = std::min(mn, v[i]);
    mx = std::max(mx, v[i]);
  }
}

// fp32 dot product with 8 independent partial sums: the compiler keeps them in one SIMD register
// (no -ffast-math needed to reorder), and the pairwise-like split roughly halves rounding error
// against a single running sum.
inline float dot8(const float* a, const float* b, int64_t n) {
  float acc[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; ++l) acc[l] += a[i + l] * b[i + l];
  for (; i < n; ++i) acc[i & 7] += a[i] * b[i];
  return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

}  // namespace cpu
}  // namespace awq
