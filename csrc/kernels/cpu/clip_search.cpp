// AWQ clip search on the CPU.
//
// For each group j (outer, so the token slice x[:, group j] stays in cache while every row of W
// uses it) and row n: build the C candidate deltas Q_r(w) - w [C, g], then for each token the C
// dot products with x[t, group j], squared and summed. Never materializes [N, T, G, g].
#include <algorithm>
#include <limits>
#include <vector>

#include "cpu_common.h"

namespace awq {
namespace cpu {
namespace {

template <DType D>
Status clip_search_impl(const ClipSearchParams& p) {
  using E = Elem<D>;
  const auto* w = static_cast<const typename E::T*>(p.w);
  const auto* x = static_cast<const typename E::T*>(p.x);
  const int g = p.group_size;
  const int64_t groups = p.k / g;
  const int C = p.n_candidates;
  const int64_t T = p.tokens;

#pragma omp parallel
  {
    std::vector<float> xs(size_t(T * g));     // x[:, group j] as fp32 [T, g]
    std::vector<float> v(g);
    std::vector<float> delta(size_t(C) * g);  // [C, g]
    std::vector<double> err(C);
    std::vector<float> dots(C);
    // Rows are split among threads inside each group, so every thread converts the same slice.
    for (int64_t j = 0; j < groups; ++j) {
      for (int64_t t = 0; t < T; ++t) to_float<D>(x + t * p.k + j * g, xs.data() + t * g, g);
#pragma omp for schedule(static)
      for (int64_t n = 0; n < p.n; ++n) {
        float mn, mx;
        load_group<D>(w + n * p.k + j * g, nullptr, g, v.data(), mn, mx);
        for (int c = 0; c < C; ++c) {
          // in double, then rounded: the ratio the oracle and the CUDA kernel use
          const float ratio = float(1.0 - double(c) / double(p.n_grid));
          const GroupQParams q = group_qparams(mn, mx, ratio, p.bits, p.zero_point, RoundTo<D>());
          for (int i = 0; i < g; ++i) delta[c * g + i] = dequant_code(quant_code(v[i], q), q) - v[i];
          err[c] = 0.0;
        }
        for (int64_t t = 0; t < T; ++t) {
          const float* xt = xs.data() + t * g;
          for (int c = 0; c < C; ++c) dots[c] = dot8(xt, delta.data() + c * g, g);
          for (int c = 0; c < C; ++c) err[c] += double(dots[c]) * double(dots[c]);
        }
        int best = 0;
        for (int c = 1; c < C; ++c)
          if (err[c] < err[best]) best = c;
        p.best_ratio[n * groups + j] = float(1.0 - double(best) / double(p.n_grid));
        if (p.best_err) p.best_err[n * groups + j] = float(err[best]);
      }
    }
  }
  return Status::kOk;
}

}  // namespace

Status clip_search(const ClipSearchParams& p) {
  return AWQ_DTYPE_SWITCH(p.dtype, D, [&] { return clip_search_impl<D>(p); });
}

}  // namespace cpu
}  // namespace awq
