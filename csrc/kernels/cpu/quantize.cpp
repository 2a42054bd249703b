// CPU group quantization: pseudo-quantization and its batched error form, INT4 quantize + pack,
// dequantize, AutoAWQ repack.
// Rows are independent, so threads split rows; each group is one pass for min/max and one for codes.
#include <algorithm>
#include <cmath>
#include <vector>

#include "awq/layout.h"
#include "cpu_common.h"

namespace awq {
namespace cpu {
namespace {

// The pseudo-quantized value of one scaled element v = w * s, in the storage dtype: Q(v) / s (s:
// nullable, 1). Shared by pseudo_quantize and pseudo_quantize_error so their values match bit for bit.
template <DType D>
inline typename Elem<D>::T pseudo_value(float v, const GroupQParams& q, const float* s) {
  float r = dequant_code(quant_code(v, q), q);
  if (s) r = r / *s;
  return Elem<D>::store(r);
}

template <DType D>
Status pseudo_quantize_impl(const PseudoQuantParams& p) {
  using E = Elem<D>;
  const auto* w = static_cast<const typename E::T*>(p.w);
  auto* out = static_cast<typename E::T*>(p.out);
  const int g = p.group_size;
  const int64_t groups = p.k / g;
#pragma omp parallel
  {
    std::vector<float> v(g);
#pragma omp for schedule(static)
    for (int64_t n = 0; n < p.n; ++n) {
      for (int64_t j = 0; j < groups; ++j) {
        const int64_t base = n * p.k + j * g;
        float mn, mx;
        load_group<D>(w + base, p.in_scale ? p.in_scale + j * g : nullptr, g, v.data(), mn, mx);
        const float ratio = p.clip ? p.clip[n * groups + j] : 1.0f;
        const GroupQParams q = group_qparams(mn, mx, ratio, p.bits, p.zero_point, RoundTo<D>());
        const float* s = p.in_scale ? p.in_scale + j * g : nullptr;
        for (int i = 0; i < g; ++i) out[base + i] = pseudo_value<D>(v[i], q, s ? s + i : nullptr);
      }
    }
  }
  return Status::kOk;
}

// Rows are split over threads; each thread sums its rows' errors per candidate in fp64 into its own
// slot, and the slots are added in thread order (deterministic for a given thread count). Per row and
// group, w is converted once; per candidate the group goes through load_group (w * s_c, min / max)
// and pseudo_value, exactly the steps of pseudo_quantize_impl.
template <DType D>
Status pseudo_quantize_error_impl(const PseudoQuantErrorParams& p) {
  using E = Elem<D>;
  const auto* w = static_cast<const typename E::T*>(p.w);
  const int g = p.group_size;
  const int64_t groups = p.k / g;
  const int64_t cands = p.n_candidates;
  int threads = 1;
#ifdef _OPENMP
  threads = omp_get_max_threads();
#endif
  std::vector<double> partial(size_t(threads) * size_t(cands), 0.0);  // [thread, candidate]
#pragma omp parallel num_threads(threads)
  {
    int t = 0;
#ifdef _OPENMP
    t = omp_get_thread_num();
#endif
    double* acc = partial.data() + size_t(t) * size_t(cands);
    std::vector<float> v(g), wf(g);
#pragma omp for schedule(static)
    for (int64_t n = 0; n < p.n; ++n) {
      for (int64_t j = 0; j < groups; ++j) {
        const typename E::T* src = w + n * p.k + j * g;
        for (int i = 0; i < g; ++i) wf[i] = E::load(src[i]);
        for (int64_t c = 0; c < cands; ++c) {
          const float* s = p.scales + c * p.k + j * g;
          float mn, mx;
          load_group<D>(src, s, g, v.data(), mn, mx);
          const GroupQParams q = group_qparams(mn, mx, 1.0f, p.bits, p.zero_point, RoundTo<D>());
          double e = 0.0;
          for (int i = 0; i < g; ++i) {
            const float d = E::load(pseudo_value<D>(v[i], q, s + i)) - wf[i];  // fp32, as on the GPU
            const double dd = double(d) * double(d);
            e += p.channel_weight ? double(p.channel_weight[j * g + i]) * dd : dd;
          }
          acc[c] += e;
        }
      }
    }
  }
  for (int64_t c = 0; c < cands; ++c) {
    double e = 0.0;
    for (int t = 0; t < threads; ++t) e += partial[size_t(t) * size_t(cands) + size_t(c)];
    p.err[c] = float(e);
  }
  return Status::kOk;
}

template <DType D>
Status quantize_int4_impl(const QuantizeInt4Params& p) {
  using E = Elem<D>;
  const auto* w = static_cast<const typename E::T*>(p.w);
  auto* scales = static_cast<typename E::T*>(p.scales);
  const int g = p.group_size;
  const int64_t groups = p.k / g;
  // symmetric codes -8..7 are stored offset by 8 with zero point 8
  const float offset = p.zero_point ? 0.0f : 8.0f;
#pragma omp parallel
  {
    std::vector<float> v(g);
    std::vector<uint8_t> codes(p.k);
#pragma omp for schedule(static)
    for (int64_t n = 0; n < p.n; ++n) {
      for (int64_t j = 0; j < groups; ++j) {
        float mn, mx;
        load_group<D>(w + n * p.k + j * g, nullptr, g, v.data(), mn, mx);
        const float ratio = p.clip ? p.clip[n * groups + j] : 1.0f;
        const GroupQParams q = group_qparams(mn, mx, ratio, 4, p.zero_point, RoundTo<D>());
        for (int i = 0; i < g; ++i) codes[j * g + i] = uint8_t(quant_code(v[i], q) + offset);
        scales[n * groups + j] = E::store(q.scale);
        p.zeros[n * groups + j] = uint8_t(q.zero + offset);
      }
      for (int64_t c = 0; c < p.k / 8; ++c) p.qweight[n * (p.k / 8) + c] = int32_t(pack8(&codes[c * 8]));
    }
  }
  return Status::kOk;
}

template <DType D>
Status dequantize_int4_impl(const DequantInt4Params& p) {
  using E = Elem<D>;
  const auto* scales = static_cast<const typename E::T*>(p.scales);
  auto* out = static_cast<typename E::T*>(p.out);
  const int64_t groups = p.k / p.group_size;
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < p.n; ++n) {
    for (int64_t c = 0; c < p.k / 8; ++c) {
      const uint32_t word = uint32_t(p.qweight[n * (p.k / 8) + c]);
      for (int e = 0; e < 8; ++e) {
        const int64_t kk = c * 8 + e;
        const int64_t gi = n * groups + kk / p.group_size;
        const float s = E::load(scales[gi]);
        out[n * p.k + kk] = E::store((float(unpack1(word, e)) - float(p.zeros[gi])) * s);
      }
    }
  }
  return Status::kOk;
}

}  // namespace

Status pseudo_quantize(const PseudoQuantParams& p) {
  return AWQ_DTYPE_SWITCH(p.dtype, D, [&] { return pseudo_quantize_impl<D>(p); });
}

Status pseudo_quantize_error(const PseudoQuantErrorParams& p) {
  if (p.group_size <= 0 || p.k % p.group_size != 0 || p.n_candidates < 1) return Status::kUnsupported;
  return AWQ_DTYPE_SWITCH(p.dtype, D, [&] { return pseudo_quantize_error_impl<D>(p); });
}

Status quantize_int4(const QuantizeInt4Params& p) {
  return AWQ_DTYPE_SWITCH(p.dtype, D, [&] { return quantize_int4_impl<D>(p); });
}

Status dequantize_int4(const DequantInt4Params& p) {
  return AWQ_DTYPE_SWITCH(p.dtype, D, [&] { return dequantize_int4_impl<D>(p); });
}

// Transposes an 8 x 8 block of nibbles: in[r] holds 8 codes along one axis for row r; out[c] gets
// the codes of column c across the 8 rows. Both sides use the interleaved nibble order.
inline void transpose8x8(const uint32_t in[8], uint32_t out[8]) {
  uint8_t codes[8][8];
  for (int r = 0; r < 8; ++r)
    for (int e = 0; e < 8; ++e) codes[e][r] = unpack1(in[r], e);
  for (int c = 0; c < 8; ++c) out[c] = pack8(codes[c]);
}

Status awq_repack(const AwqRepackParams& p) {
  const int64_t n = p.n, k = p.k, groups = p.k / p.group_size;
  const int64_t kw = k / 8, nw = n / 8;
  if (p.to_awq) {
    // kernel [n, k/8] -> AutoAWQ [k, n/8], in 8 x 8 blocks: rows 8c..8c+7 x word j become output
    // words (8j..8j+7, c). The outer loop walks 8 whole rows (contiguous), so reads stream and the
    // strided writes of neighbouring c land in cache lines that are still resident.
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < nw; ++c) {
      for (int64_t j = 0; j < kw; ++j) {
        uint32_t in[8], out[8];
        for (int r = 0; r < 8; ++r) in[r] = uint32_t(p.qweight[(c * 8 + r) * kw + j]);
        transpose8x8(in, out);
        for (int e = 0; e < 8; ++e) p.qweight_awq[(j * 8 + e) * nw + c] = int32_t(out[e]);
      }
      for (int64_t gi = 0; gi < groups; ++gi) {
        uint8_t codes[8];
        for (int e = 0; e < 8; ++e) codes[e] = p.zeros[(c * 8 + e) * groups + gi];
        p.qzeros_awq[gi * nw + c] = int32_t(pack8(codes));
      }
    }
  } else {
    // AutoAWQ [k, n/8] -> kernel [n, k/8]: the same block transpose in the other direction
#pragma omp parallel for schedule(static)
    for (int64_t j = 0; j < kw; ++j) {
      for (int64_t c = 0; c < nw; ++c) {
        uint32_t in[8], out[8];
        for (int r = 0; r < 8; ++r) in[r] = uint32_t(p.qweight_awq[(j * 8 + r) * nw + c]);
        transpose8x8(in, out);
        for (int e = 0; e < 8; ++e) p.qweight[(c * 8 + e) * kw + j] = int32_t(out[e]);
      }
    }
#pragma omp parallel for schedule(static)
    for (int64_t nn = 0; nn < n; ++nn)
      for (int64_t gi = 0; gi < groups; ++gi)
        p.zeros[nn * groups + gi] = unpack1(uint32_t(p.qzeros_awq[gi * nw + nn / 8]), int(nn % 8));
  }
  return Status::kOk;
}

}  // namespace cpu
}  // namespace awq
