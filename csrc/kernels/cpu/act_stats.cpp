// Activation statistics on the CPU: per-channel sum |x| and max |x| over tokens.
//
// Threads split the channels (each owns a contiguous slice of every row, so there is no
// reduction between threads and each thread's reads stay sequential within a row).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "cpu_common.h"

namespace awq {
namespace cpu {
namespace {

// the max on signed bit patterns, like the CUDA kernel's atomicMax: a negative initial abs_max
// (negative pattern) loses to any |x|
inline int32_t bits_of(float f) { return int32_t(f32_bits(f)); }

template <DType D>
Status act_stats_impl(const ActStatsParams& p) {
  using E = Elem<D>;
  const auto* x = static_cast<const typename E::T*>(p.x);
  const int64_t k = p.k;
  constexpr int64_t kChunk = 256;  // channels per task: a cache-friendly slice of each row
  const int64_t n_chunks = (k + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < n_chunks; ++c) {
    const int64_t k0 = c * kChunk;
    const int64_t k1 = std::min(k, k0 + kChunk);
    float sum[kChunk];
    // the max on the bit patterns of |x|: they order like the values, and a NaN sorts above +inf, so
    // a NaN in x makes its channel's max NaN, as torch's amax does (std::max would drop it)
    int32_t mx[kChunk];
    for (int64_t j = k0; j < k1; ++j) {
      sum[j - k0] = 0.0f;
      mx[j - k0] = bits_of(p.abs_max[j]);
    }
    for (int64_t t = 0; t < p.tokens; ++t) {
      const auto* row = x + t * p.x_stride;
      for (int64_t j = k0; j < k1; ++j) {
        const float a = std::fabs(E::load(row[j]));
        sum[j - k0] += a;
        mx[j - k0] = std::max(mx[j - k0], bits_of(a));
      }
    }
    for (int64_t j = k0; j < k1; ++j) {
      p.abs_sum[j] += sum[j - k0];
      p.abs_max[j] = bits_f32(uint32_t(mx[j - k0]));
    }
  }
  return Status::kOk;
}

}  // namespace

Status act_stats(const ActStatsParams& p) {
  if (p.tokens <= 0 || p.k <= 0) return Status::kOk;
  const Status st = AWQ_DTYPE_SWITCH(p.dtype, D, [&] { return act_stats_impl<D>(p); });
  if (st == Status::kOk && p.count != nullptr) *p.count += p.tokens;
  return st;
}

}  // namespace cpu
}  // namespace awq
