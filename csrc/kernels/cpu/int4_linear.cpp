// INT4 linear on the CPU for small batches: y[m, n] = sum_k x[m, k] * (q[n, k] - z) * s.
//
// Threads split output channels. Each task dequantizes one row of W group by group into an fp32
// buffer and reuses it for every row of x, so the int4 unpacking is paid once per weight. (The
// binding layer routes large batches to dequantize + a BLAS matmul instead, which wins there.)
#include <algorithm>
#include <vector>

#include "awq/layout.h"
#include "cpu_common.h"

namespace awq {
namespace cpu {
namespace {

template <DType D>
Status int4_linear_impl(const Int4LinearParams& p) {
  using E = Elem<D>;
  const auto* x = static_cast<const typename E::T*>(p.x);
  const auto* scales = static_cast<const typename E::T*>(p.scales);
  const auto* bias = static_cast<const typename E::T*>(p.bias);
  auto* y = static_cast<typename E::T*>(p.y);
  const int64_t m = p.m, n = p.n, k = p.k;
  const int64_t groups = k / p.group_size;

  // x to fp32 once: [m, k]
  std::vector<float> xf(size_t(m * k));
  for (int64_t r = 0; r < m; ++r) to_float<D>(x + r * p.x_stride, xf.data() + r * k, k);

#pragma omp parallel
  {
    std::vector<float> wrow(static_cast<size_t>(k));
    std::vector<float> acc(static_cast<size_t>(m));
#pragma omp for schedule(static)
    for (int64_t nn = 0; nn < n; ++nn) {
      const int32_t* qrow = p.qweight + nn * (k / 8);
      for (int64_t c = 0; c < k / 8; ++c) {
        const uint32_t word = uint32_t(qrow[c]);
        const int64_t gi = nn * groups + (c * 8) / p.group_size;
        const float s = E::load(scales[gi]);
        const float z = float(p.zeros[gi]);
        for (int e = 0; e < 8; ++e) wrow[c * 8 + e] = (float(unpack1(word, e)) - z) * s;
      }
      for (int64_t r = 0; r < m; ++r) {
        acc[r] = dot8(xf.data() + r * k, wrow.data(), k);
      }
      const float b = bias ? E::load(bias[nn]) : 0.0f;
      for (int64_t r = 0; r < m; ++r) y[r * n + nn] = E::store(acc[r] + b);
    }
  }
  return Status::kOk;
}

}  // namespace

Status int4_linear(const Int4LinearParams& p) {
  return AWQ_DTYPE_SWITCH(p.dtype, D, [&] { return int4_linear_impl<D>(p); });
}

}  // namespace cpu
}  // namespace awq
