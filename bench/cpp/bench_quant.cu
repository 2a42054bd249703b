// Standalone check + benchmark of the CUDA kernels of AWQ's searches (act_stats, pseudo_quantize,
// quantize_int4, dequantize_int4, awq_repack, clip_search). Links only the torch-free core:
//
//   nvcc -std=c++17 -O3 -Icsrc/include -gencode arch=compute_90a,code=sm_90a \
//     csrc/kernels/cuda/act_stats.cu csrc/kernels/cuda/quantize.cu csrc/kernels/cuda/clip_search.cu \
//     bench/cpp/bench_quant.cu -lcublas -o bench_quant
//   ./bench_quant --check         correctness only (small, awkward shapes; run it under compute-sanitizer)
//   ./bench_quant --check=act,clip  a subset (act, pseudo, int4, dequant, repack, clip)
//   ./bench_quant --only=act --bench=act  checks of a subset, then timings
//   ./bench_quant                 correctness, then timings
//
// Correctness: every op against a host reference written here from quant_math.h / layout.h (the
// same arithmetic as awq_ext/reference.py), on fresh random data, outputs poisoned first. Integer
// results (codes, zeros, packed words) and the pseudo-quantized / dequantized values must match bit
// for bit; activation sums within fp32 accumulation error; clip search: the host fp64 error of the
// chosen ratio must be within 1e-4 (relative) of the host's minimum over the candidates.
//
// Timing (bandwidth ops): each op is captured N times back to back in one CUDA graph, on buffers
// rotated so every launch streams from DRAM (working set >= 4x the L2); per-launch time = median
// graph replay / N ("graph", the pipeline number). Also reported: one launch between events
// ("single": launch latency, ramp and drain included) and a graph-timed device-to-device copy of the
// op's own byte count (the ceiling at that size). Bandwidth = bytes read + written; % of a 1 GiB
// device-to-device cudaMemcpy measured in the same run. Clip search (single launches) is compared
// with cuBLAS GEMMs of the same FLOP count (fp32 SGEMM: the SIMT ceiling; fp16 tensor cores).
//
//   ./bench_quant --no-checks --bench=act,group   timings of a subset (act, group, clip)
//   ./bench_quant --profile                       one launch of each bandwidth kernel (for ncu)
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdarg>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "awq/core.h"
#include "awq/layout.h"
#include "awq/quant_math.h"

using awq::DType;
using awq::Status;

#define CK(call)                                                                                 \
  do {                                                                                           \
    cudaError_t e_ = (call);                                                                     \
    if (e_ != cudaSuccess) {                                                                     \
      std::fprintf(stderr, "CUDA error %s at %s:%d: %s\n", cudaGetErrorString(e_), __FILE__, __LINE__, #call); \
      std::exit(2);                                                                              \
    }                                                                                            \
  } while (0)

#define CKS(call)                                                                                \
  do {                                                                                           \
    Status s_ = (call);                                                                          \
    if (s_ != Status::kOk) {                                                                     \
      std::fprintf(stderr, "launcher returned '%s' at %s:%d: %s\n", awq::status_string(s_), __FILE__, __LINE__, #call); \
      std::exit(2);                                                                              \
    }                                                                                            \
  } while (0)

namespace {

int g_failures = 0;
int g_checks = 0;

void report(bool ok, const std::string& what) {
  ++g_checks;
  if (!ok) ++g_failures;
  std::printf("  [%s] %s\n", ok ? " ok " : "FAIL", what.c_str());
}

const char* dt_name(DType d) { return d == DType::kF16 ? "fp16" : d == DType::kBF16 ? "bf16" : "fp32"; }
size_t dt_size(DType d) { return d == DType::kF32 ? 4 : 2; }

// Host tensor of a core dtype: fp16/bf16 as bit patterns.
struct HostT {
  DType dt = DType::kF16;
  std::vector<uint8_t> b;
  HostT() = default;
  HostT(DType d, size_t n) : dt(d), b(n * dt_size(d)) {}
  size_t size() const { return b.size() / dt_size(dt); }
  float get(size_t i) const {
    if (dt == DType::kF32) {
      float f;
      std::memcpy(&f, &b[4 * i], 4);
      return f;
    }
    uint16_t h;
    std::memcpy(&h, &b[2 * i], 2);
    return dt == DType::kF16 ? awq::half_to_float(h) : awq::bf16_to_float(h);
  }
  void set(size_t i, float v) {
    if (dt == DType::kF32) {
      std::memcpy(&b[4 * i], &v, 4);
      return;
    }
    const uint16_t h = dt == DType::kF16 ? awq::float_to_half(v) : awq::float_to_bf16(v);
    std::memcpy(&b[2 * i], &h, 2);
  }
};

std::mt19937_64 g_rng(20261121);

// Weights-like data: normal with a per-row scale and a few outliers; one constant group edge case.
HostT random_weights(DType dt, int64_t n, int64_t k, int g) {
  HostT t(dt, size_t(n * k));
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::uniform_real_distribution<float> ud(0.2f, 2.0f);
  for (int64_t r = 0; r < n; ++r) {
    const float rs = ud(g_rng) * 0.05f;
    for (int64_t c = 0; c < k; ++c) {
      float v = nd(g_rng) * rs;
      if ((g_rng() & 255) == 0) v *= 8.0f;
      t.set(size_t(r * k + c), v);
    }
  }
  if (n > 1 && g <= k) {
    for (int c = 0; c < g; ++c) t.set(size_t(1 * k + c), 0.375f);  // row 1, group 0: constant
  }
  if (n > 2 && g <= k) {
    // row 2, group 0: constant and large, so (zero point) value / scale > 2^21: the IEEE path
    for (int c = 0; c < g; ++c) t.set(size_t(2 * k + c), 3.0f);
  }
  // rows 3 and 4, group 0: all positive / all negative and away from zero (max / min < 31 unless an
  // outlier or the in_scale spread says otherwise), so (zero point) the codes of most such groups clamp
  // at one end: the kernels' clamped form next to groups of the same warp that skip the clamps
  for (int64_t r = 3; r < 5 && r < n && g <= k; ++r) {
    for (int c = 0; c < g; ++c) {
      const float v = fabsf(t.get(size_t(r * k + c))) + 0.5f;
      t.set(size_t(r * k + c), r == 3 ? v : -v);
    }
  }
  return t;
}

HostT random_acts(DType dt, int64_t rows, int64_t cols) {
  HostT t(dt, size_t(rows * cols));
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (size_t i = 0; i < t.size(); ++i) t.set(i, nd(g_rng) * ((i % 7 == 0) ? 4.0f : 1.0f));
  return t;
}

std::vector<float> random_pos(size_t n, float lo, float hi) {
  std::uniform_real_distribution<float> ud(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = ud(g_rng);
  return v;
}

// Device buffer helpers
template <typename T>
T* dalloc(size_t bytes) {
  void* p = nullptr;
  CK(cudaMalloc(&p, std::max<size_t>(bytes, 16)));
  return static_cast<T*>(p);
}
void* upload(const void* h, size_t bytes, size_t extra_offset = 0) {
  char* d = dalloc<char>(bytes + extra_offset);
  CK(cudaMemcpy(d + extra_offset, h, bytes, cudaMemcpyHostToDevice));
  return d + extra_offset;
}
void poison(void* d, size_t bytes) { CK(cudaMemset(d, 0xff, bytes)); }  // NaN for floats, -1 / 255 for ints
template <typename T>
std::vector<T> download(const void* d, size_t count) {
  std::vector<T> h(count);
  CK(cudaMemcpy(h.data(), d, count * sizeof(T), cudaMemcpyDeviceToHost));
  return h;
}
HostT download_t(DType dt, const void* d, size_t count) {
  HostT h(dt, count);
  CK(cudaMemcpy(h.b.data(), d, h.b.size(), cudaMemcpyDeviceToHost));
  return h;
}

// ---- host references (quant_math.h arithmetic, like awq_ext/reference.py) ------------------
struct HostRound {
  DType dt;
  // host-only in practice; __host__ __device__ only to match group_qparams' annotation
  __host__ __device__ float operator()(float v) const {
#if defined(__CUDA_ARCH__)
    return v;
#else
    return awq::round_to_host(v, dt);
#endif
  }
};

HostT ref_pseudo(const HostT& w, int64_t n, int64_t k, int g, int bits, bool zp, const float* in_scale,
                 const float* clip) {
  HostT out(w.dt, w.size());
  const int64_t G = k / g;
  std::vector<float> v(g);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t j = 0; j < G; ++j) {
      for (int i = 0; i < g; ++i) {
        const float x = w.get(size_t(r * k + j * g + i));
        v[i] = in_scale ? x * in_scale[j * g + i] : x;
      }
      float mn = v[0], mx = v[0];
      for (int i = 1; i < g; ++i) {
        mn = std::min(mn, v[i]);
        mx = std::max(mx, v[i]);
      }
      const float ratio = clip ? clip[r * G + j] : 1.0f;
      const awq::GroupQParams q = awq::group_qparams(mn, mx, ratio, bits, zp, HostRound{w.dt});
      for (int i = 0; i < g; ++i) {
        float d = awq::dequant_code(awq::quant_code(v[i], q), q);
        if (in_scale) d = d / in_scale[j * g + i];
        out.set(size_t(r * k + j * g + i), d);
      }
    }
  return out;
}

struct HostInt4 {
  std::vector<int32_t> qweight;
  HostT scales;
  std::vector<uint8_t> zeros;
};

HostInt4 ref_quant_int4(const HostT& w, int64_t n, int64_t k, int g, bool zp, const float* clip) {
  HostInt4 o;
  const int64_t G = k / g;
  o.qweight.assign(size_t(n * k / 8), 0);
  o.scales = HostT(w.dt, size_t(n * G));
  o.zeros.assign(size_t(n * G), 0);
  std::vector<uint8_t> codes(static_cast<size_t>(k));
  std::vector<float> v(g);
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t j = 0; j < G; ++j) {
      for (int i = 0; i < g; ++i) v[i] = w.get(size_t(r * k + j * g + i));
      float mn = v[0], mx = v[0];
      for (int i = 1; i < g; ++i) {
        mn = std::min(mn, v[i]);
        mx = std::max(mx, v[i]);
      }
      const float ratio = clip ? clip[r * G + j] : 1.0f;
      const awq::GroupQParams q = awq::group_qparams(mn, mx, ratio, 4, zp, HostRound{w.dt});
      const float off = zp ? 0.0f : 8.0f;
      for (int i = 0; i < g; ++i) codes[size_t(j * g + i)] = uint8_t(awq::quant_code(v[i], q) + off);
      o.scales.set(size_t(r * G + j), q.scale);
      o.zeros[size_t(r * G + j)] = uint8_t(q.zero + off);
    }
    for (int64_t c = 0; c < k / 8; ++c) o.qweight[size_t(r * (k / 8) + c)] = int32_t(awq::pack8(&codes[size_t(8 * c)]));
  }
  return o;
}

HostT ref_dequant(const std::vector<int32_t>& qw, const HostT& scales, const std::vector<uint8_t>& zeros, int64_t n,
                  int64_t k, int g) {
  HostT out(scales.dt, size_t(n * k));
  const int64_t G = k / g;
  for (int64_t r = 0; r < n; ++r)
    for (int64_t c = 0; c < k; ++c) {
      const uint32_t word = uint32_t(qw[size_t(r * (k / 8) + c / 8)]);
      const float code = float(awq::unpack1(word, int(c % 8)));
      const int64_t gi = r * G + c / g;
      out.set(size_t(r * k + c), (code - float(zeros[size_t(gi)])) * scales.get(size_t(gi)));
    }
  return out;
}

void ref_pack_awq(const std::vector<int32_t>& qw, const std::vector<uint8_t>& zeros, int64_t n, int64_t k, int g,
                  std::vector<int32_t>& qw_awq, std::vector<int32_t>& qz_awq) {
  const int64_t G = k / g, nw = n / 8;
  qw_awq.assign(size_t(k * nw), 0);
  qz_awq.assign(size_t(G * nw), 0);
  uint8_t codes[8];
  for (int64_t kk = 0; kk < k; ++kk)
    for (int64_t c = 0; c < nw; ++c) {
      for (int e = 0; e < 8; ++e) codes[e] = awq::unpack1(uint32_t(qw[size_t((8 * c + e) * (k / 8) + kk / 8)]), int(kk % 8));
      qw_awq[size_t(kk * nw + c)] = int32_t(awq::pack8(codes));
    }
  for (int64_t gi = 0; gi < G; ++gi)
    for (int64_t c = 0; c < nw; ++c) {
      for (int e = 0; e < 8; ++e) codes[e] = zeros[size_t((8 * c + e) * G + gi)];
      qz_awq[size_t(gi * nw + c)] = int32_t(awq::pack8(codes));
    }
}

// fp64 errors of every candidate: err[(r * G + j) * C + i]
std::vector<double> ref_clip_errors(const HostT& w, const HostT& x, int64_t n, int64_t k, int64_t T, int g, int bits,
                                    bool zp, int n_grid, int C) {
  const int64_t G = k / g;
  std::vector<double> err(size_t(n * G * C), 0.0);
  std::vector<float> v(g);
  std::vector<double> d(size_t(C) * g);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t j = 0; j < G; ++j) {
      for (int i = 0; i < g; ++i) v[i] = w.get(size_t(r * k + j * g + i));
      float mn = v[0], mx = v[0];
      for (int i = 1; i < g; ++i) {
        mn = std::min(mn, v[i]);
        mx = std::max(mx, v[i]);
      }
      for (int c = 0; c < C; ++c) {
        const float ratio = float(1.0 - double(c) / double(n_grid));
        const awq::GroupQParams q = awq::group_qparams(mn, mx, ratio, bits, zp, HostRound{w.dt});
        for (int i = 0; i < g; ++i) d[size_t(c * g + i)] = double(awq::dequant_code(awq::quant_code(v[i], q), q) - v[i]);
      }
      for (int64_t t = 0; t < T; ++t) {
        for (int c = 0; c < C; ++c) {
          double s = 0.0;
          for (int i = 0; i < g; ++i) s += double(x.get(size_t(t * k + j * g + i))) * d[size_t(c * g + i)];
          err[size_t((r * G + j) * C + c)] += s * s;
        }
      }
    }
  return err;
}

bool same_bytes(const void* a, const void* b, size_t bytes, size_t elem, size_t* first_bad) {
  const uint8_t* x = static_cast<const uint8_t*>(a);
  const uint8_t* y = static_cast<const uint8_t*>(b);
  for (size_t i = 0; i < bytes; ++i)
    if (x[i] != y[i]) {
      *first_bad = i / elem;
      return false;
    }
  return true;
}

std::string fmt(const char* f, ...) __attribute__((format(printf, 1, 2)));
std::string fmt(const char* f, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, f);
  std::vsnprintf(buf, sizeof buf, f, ap);
  va_end(ap);
  return buf;
}

// ---- correctness ---------------------------------------------------------------------------
// stats_misalign: byte offset of abs_sum / abs_max (4: not 16-byte aligned, the scalar-atomic path)
void check_act_stats(DType dt, int64_t T, int64_t k, int64_t stride, size_t misalign, size_t stats_misalign = 0) {
  HostT x = random_acts(dt, T, stride);
  std::vector<float> s0 = random_pos(size_t(k), 0.0f, 3.0f), m0 = random_pos(size_t(k), 0.0f, 2.5f);
  const void* dx = upload(x.b.data(), x.b.size(), misalign);
  float* ds = static_cast<float*>(upload(s0.data(), s0.size() * 4, stats_misalign));
  float* dm = static_cast<float*>(upload(m0.data(), m0.size() * 4, stats_misalign));
  awq::ActStatsParams p;
  p.x = dx;
  p.dtype = dt;
  p.tokens = T;
  p.k = k;
  p.x_stride = stride;
  p.abs_sum = ds;
  p.abs_max = dm;
  const int64_t count0 = 5;
  p.count = static_cast<int64_t*>(upload(&count0, sizeof(count0)));
  CKS(awq::cuda::act_stats(p, nullptr));  // twice: the statistics accumulate across calls
  CKS(awq::cuda::act_stats(p, nullptr));
  CK(cudaDeviceSynchronize());
  auto hs = download<float>(ds, size_t(k)), hm = download<float>(dm, size_t(k));
  const bool count_ok = download<int64_t>(p.count, 1)[0] == count0 + 2 * T;
  double worst = 0.0;
  bool max_ok = true;
  for (int64_t c = 0; c < k; ++c) {
    double s = 0.0, sa = 0.0;
    float m = 0.0f;
    for (int64_t t = 0; t < T; ++t) {
      const float a = std::fabs(x.get(size_t(t * stride + c)));
      s += a;
      m = std::max(m, a);
    }
    const double want = double(s0[size_t(c)]) + 2.0 * s;
    sa = std::fabs(double(hs[size_t(c)]) - want) / std::max(1e-30, want);
    worst = std::max(worst, sa);
    if (hm[size_t(c)] != std::max(m0[size_t(c)], m)) max_ok = false;
  }
  report(worst < 1e-5 && max_ok && count_ok && std::isfinite(worst),
         fmt("act_stats %s T=%lld K=%lld stride=%lld misalign=%zu/%zu: sum rel err %.2e, max %s, count %s", dt_name(dt),
             (long long)T, (long long)k, (long long)stride, misalign, stats_misalign, worst, max_ok ? "exact" : "WRONG",
             count_ok ? "ok" : "WRONG"));
}

// extreme_scale != 0: in_scale column k / 2 takes that value (outside the range of the reused-divisor
// division, so the kernels must take their IEEE path for the division by in_scale)
void check_pseudo(DType dt, int64_t n, int64_t k, int g, int bits, bool zp, bool use_scale, bool use_clip,
                  bool in_place, size_t misalign = 0, float extreme_scale = 0.0f) {
  HostT w = random_weights(dt, n, k, g);
  std::vector<float> sc = random_pos(size_t(k), 0.25f, 4.0f), cl = random_pos(size_t(n * (k / g)), 0.5f, 1.0f);
  if (extreme_scale != 0.0f) sc[size_t(k / 2)] = extreme_scale;
  HostT want = ref_pseudo(w, n, k, g, bits, zp, use_scale ? sc.data() : nullptr, use_clip ? cl.data() : nullptr);
  void* dw = upload(w.b.data(), w.b.size(), misalign);
  void* dout = dw;
  if (!in_place) {
    dout = dalloc<char>(w.b.size());
    poison(dout, w.b.size());
  }
  awq::PseudoQuantParams p;
  p.w = dw;
  p.out = dout;
  p.dtype = dt;
  p.n = n;
  p.k = k;
  p.group_size = g;
  p.bits = bits;
  p.zero_point = zp;
  p.in_scale = use_scale ? static_cast<float*>(upload(sc.data(), sc.size() * 4)) : nullptr;
  p.clip = use_clip ? static_cast<float*>(upload(cl.data(), cl.size() * 4)) : nullptr;
  CKS(awq::cuda::pseudo_quantize(p, nullptr));
  CK(cudaDeviceSynchronize());
  HostT got = download_t(dt, dout, w.size());
  size_t bad = 0;
  const bool ok = same_bytes(got.b.data(), want.b.data(), got.b.size(), dt_size(dt), &bad);
  std::string msg = fmt("pseudo_quantize %s N=%lld K=%lld g=%d bits=%d zp=%d scale=%d clip=%d inplace=%d misalign=%zu",
                        dt_name(dt), (long long)n, (long long)k, g, bits, zp, use_scale, use_clip, in_place, misalign);
  if (extreme_scale != 0.0f) msg += fmt(" in_scale[K/2]=%g", extreme_scale);
  if (!ok) msg += fmt(" first mismatch at %zu: got %g want %g", bad, got.get(bad), want.get(bad));
  report(ok, msg);
}

void check_quant_int4(DType dt, int64_t n, int64_t k, int g, bool zp, bool use_clip) {
  HostT w = random_weights(dt, n, k, g);
  const int64_t G = k / g;
  std::vector<float> cl = random_pos(size_t(n * G), 0.5f, 1.0f);
  HostInt4 want = ref_quant_int4(w, n, k, g, zp, use_clip ? cl.data() : nullptr);
  awq::QuantizeInt4Params p;
  p.w = upload(w.b.data(), w.b.size());
  p.dtype = dt;
  p.n = n;
  p.k = k;
  p.group_size = g;
  p.zero_point = zp;
  p.clip = use_clip ? static_cast<float*>(upload(cl.data(), cl.size() * 4)) : nullptr;
  p.qweight = dalloc<int32_t>(size_t(n * k / 8) * 4);
  p.scales = dalloc<char>(size_t(n * G) * dt_size(dt));
  p.zeros = dalloc<uint8_t>(size_t(n * G));
  poison(p.qweight, size_t(n * k / 8) * 4);
  poison(p.scales, size_t(n * G) * dt_size(dt));
  poison(p.zeros, size_t(n * G));
  CKS(awq::cuda::quantize_int4(p, nullptr));
  CK(cudaDeviceSynchronize());
  auto qw = download<int32_t>(p.qweight, size_t(n * k / 8));
  HostT sc = download_t(dt, p.scales, size_t(n * G));
  auto z = download<uint8_t>(p.zeros, size_t(n * G));
  size_t b1 = 0, b2 = 0, b3 = 0;
  const bool ok1 = same_bytes(qw.data(), want.qweight.data(), qw.size() * 4, 4, &b1);
  const bool ok2 = same_bytes(sc.b.data(), want.scales.b.data(), sc.b.size(), dt_size(dt), &b2);
  const bool ok3 = same_bytes(z.data(), want.zeros.data(), z.size(), 1, &b3);
  std::string msg = fmt("quantize_int4 %s N=%lld K=%lld g=%d zp=%d clip=%d", dt_name(dt), (long long)n, (long long)k, g,
                        zp, use_clip);
  if (!ok1) msg += fmt(" qweight[%zu] got %08x want %08x", b1, uint32_t(qw[b1]), uint32_t(want.qweight[b1]));
  if (!ok2) msg += fmt(" scales[%zu] got %g want %g", b2, sc.get(b2), want.scales.get(b2));
  if (!ok3) msg += fmt(" zeros[%zu] got %d want %d", b3, z[b3], want.zeros[b3]);
  report(ok1 && ok2 && ok3, msg);
}

void check_dequant(DType dt, int64_t n, int64_t k, int g, size_t out_misalign) {
  const int64_t G = k / g;
  std::vector<int32_t> qw(size_t(n * k / 8));
  for (auto& v : qw) v = int32_t(uint32_t(g_rng()));
  HostT sc(dt, size_t(n * G));
  std::vector<float> s = random_pos(size_t(n * G), 0.001f, 0.05f);
  for (size_t i = 0; i < sc.size(); ++i) sc.set(i, s[i]);
  std::vector<uint8_t> z(size_t(n * G));
  for (auto& v : z) v = uint8_t(g_rng() & 15);
  HostT want = ref_dequant(qw, sc, z, n, k, g);
  awq::DequantInt4Params p;
  p.qweight = static_cast<int32_t*>(upload(qw.data(), qw.size() * 4));
  p.scales = upload(sc.b.data(), sc.b.size());
  p.zeros = static_cast<uint8_t*>(upload(z.data(), z.size()));
  p.dtype = dt;
  p.n = n;
  p.k = k;
  p.group_size = g;
  out_misalign = out_misalign ? dt_size(dt) : 0;  // one element off: no longer 16-byte aligned
  char* out = dalloc<char>(want.b.size() + out_misalign) + out_misalign;
  poison(out, want.b.size());
  p.out = out;
  CKS(awq::cuda::dequantize_int4(p, nullptr));
  CK(cudaDeviceSynchronize());
  HostT got = download_t(dt, out, want.size());
  size_t bad = 0;
  const bool ok = same_bytes(got.b.data(), want.b.data(), got.b.size(), dt_size(dt), &bad);
  report(ok, fmt("dequantize_int4 %s N=%lld K=%lld g=%d out_misalign=%zu%s", dt_name(dt), (long long)n, (long long)k, g,
                 out_misalign, ok ? "" : fmt(" first mismatch at %zu", bad).c_str()));
}

void check_repack(int64_t n, int64_t k, int g) {
  const int64_t G = k / g, nw = n / 8;
  std::vector<int32_t> qw(size_t(n * k / 8));
  for (auto& v : qw) v = int32_t(uint32_t(g_rng()));
  std::vector<uint8_t> z(size_t(n * G));
  for (auto& v : z) v = uint8_t(g_rng() & 15);
  std::vector<int32_t> want_w, want_z;
  ref_pack_awq(qw, z, n, k, g, want_w, want_z);
  awq::AwqRepackParams p;
  p.qweight = static_cast<int32_t*>(upload(qw.data(), qw.size() * 4));
  p.zeros = static_cast<uint8_t*>(upload(z.data(), z.size()));
  p.qweight_awq = dalloc<int32_t>(want_w.size() * 4);
  p.qzeros_awq = dalloc<int32_t>(want_z.size() * 4);
  poison(p.qweight_awq, want_w.size() * 4);
  poison(p.qzeros_awq, want_z.size() * 4);
  p.n = n;
  p.k = k;
  p.group_size = g;
  p.to_awq = true;
  CKS(awq::cuda::awq_repack(p, nullptr));
  CK(cudaDeviceSynchronize());
  auto gw = download<int32_t>(p.qweight_awq, want_w.size());
  auto gz = download<int32_t>(p.qzeros_awq, want_z.size());
  size_t b = 0;
  const bool ok_to = same_bytes(gw.data(), want_w.data(), gw.size() * 4, 4, &b) &&
                     same_bytes(gz.data(), want_z.data(), gz.size() * 4, 4, &b);
  report(ok_to, fmt("awq_repack to_awq N=%lld K=%lld g=%d", (long long)n, (long long)k, g));
  // and back: AutoAWQ -> kernel layout must restore the original words and zeros
  poison(p.qweight, qw.size() * 4);
  poison(p.zeros, z.size());
  p.to_awq = false;
  CKS(awq::cuda::awq_repack(p, nullptr));
  CK(cudaDeviceSynchronize());
  auto bw = download<int32_t>(p.qweight, qw.size());
  auto bz = download<uint8_t>(p.zeros, z.size());
  const bool ok_back = same_bytes(bw.data(), qw.data(), bw.size() * 4, 4, &b) && same_bytes(bz.data(), z.data(), bz.size(), 1, &b);
  report(ok_back, fmt("awq_repack from_awq N=%lld K=%lld g=%d (round trip)", (long long)n, (long long)k, g));
  (void)nw;
}

void check_clip(DType dt, int64_t n, int64_t k, int64_t T, int g, int bits, bool zp, int n_grid, int C,
                size_t x_misalign = 0) {
  HostT w = random_weights(dt, n, k, g);
  HostT x = random_acts(dt, T, k);
  const int64_t G = k / g;
  std::vector<double> err = ref_clip_errors(w, x, n, k, T, g, bits, zp, n_grid, C);
  awq::ClipSearchParams p;
  p.w = upload(w.b.data(), w.b.size());
  p.x = upload(x.b.data(), x.b.size(), x_misalign);
  p.dtype = dt;
  p.n = n;
  p.k = k;
  p.tokens = T;
  p.group_size = g;
  p.bits = bits;
  p.zero_point = zp;
  p.n_grid = n_grid;
  p.n_candidates = C;
  p.best_ratio = dalloc<float>(size_t(n * G) * 4);
  p.best_err = dalloc<float>(size_t(n * G) * 4);
  poison(p.best_ratio, size_t(n * G) * 4);
  poison(p.best_err, size_t(n * G) * 4);
  CKS(awq::cuda::clip_search(p, nullptr));
  CK(cudaDeviceSynchronize());
  auto br = download<float>(p.best_ratio, size_t(n * G));
  auto be = download<float>(p.best_err, size_t(n * G));
  double worst_choice = 0.0, worst_err = 0.0;
  int same_argmin = 0;
  bool ok = true;
  for (int64_t i = 0; i < n * G; ++i) {
    double mn = err[size_t(i * C)];
    int arg = 0;
    for (int c = 1; c < C; ++c)
      if (err[size_t(i * C + c)] < mn) {
        mn = err[size_t(i * C + c)];
        arg = c;
      }
    int chosen = -1;
    for (int c = 0; c < C; ++c)
      if (br[size_t(i)] == float(1.0 - double(c) / double(n_grid))) chosen = c;
    if (chosen < 0 || !std::isfinite(be[size_t(i)])) {
      ok = false;
      continue;
    }
    same_argmin += chosen == arg;
    const double ec = err[size_t(i * C + chosen)];
    double emax = 0.0;
    for (int c = 0; c < C; ++c) emax = std::max(emax, err[size_t(i * C + c)]);
    // relative to the error itself, with a floor of 1e-6 of the group's largest candidate error
    // (fp32 accumulation of errors that are exactly or nearly zero)
    const double floor_ = std::max(1e-6 * emax, 1e-30);
    worst_choice = std::max(worst_choice, (ec - mn) / std::max(mn, floor_));
    worst_err = std::max(worst_err, std::fabs(double(be[size_t(i)]) - ec) / std::max(ec, floor_));
  }
  // best_err is an fp32 sum over tokens of squared fp32 sums of g products: with cancellation inside
  // a group (and T = 1, no averaging over tokens) its relative error reaches ~1e-4 for g = 576
  ok = ok && worst_choice <= 1e-4 && worst_err <= 1e-3;
  report(ok, fmt("clip_search %s N=%lld K=%lld T=%lld g=%d bits=%d zp=%d C=%d x_misalign=%zu: chosen err / min - 1 "
                 "<= %.1e, best_err rel %.1e, same argmin %d/%lld",
                 dt_name(dt), (long long)n, (long long)k, (long long)T, g, bits, zp, C, x_misalign, worst_choice,
                 worst_err, same_argmin, (long long)(n * G)));
}

// only: comma-separated subset of act,pseudo,int4,dequant,repack,clip (empty: all)
void run_checks(const std::string& only) {
  std::printf("== correctness\n");
  auto on = [&](const char* s) { return only.empty() || only.find(s) != std::string::npos; };
  const DType dts[3] = {DType::kF16, DType::kBF16, DType::kF32};
  for (DType dt : dts) {
    if (!on("act")) break;
    check_act_stats(dt, 37, 4096, 4096, 0);
    check_act_stats(dt, 300, 576, 584, 0);    // strided rows
    check_act_stats(dt, 5, 100, 100, 0);      // K not a multiple of the vector: scalar path
    check_act_stats(dt, 17, 512, 512, 4);     // misaligned x: scalar path
    check_act_stats(dt, 1, 4096, 4096, 0);    // one token
    check_act_stats(dt, 2999, 4160, 4168, 0); // many token slices, a partial strip, strided rows
    check_act_stats(dt, 8192, 4096, 4096, 0); // the benchmark shape (16 strips x 8 token slices)
    check_act_stats(dt, 300, 4160, 4160, 0, 4);  // abs_sum / abs_max not 16-byte aligned: scalar atomics
  }
  for (DType dt : dts) {
    if (!on("pseudo")) break;
    check_pseudo(dt, 37, 512, 128, 4, true, false, false, false);
    check_pseudo(dt, 37, 512, 128, 4, true, true, true, false);
    check_pseudo(dt, 37, 512, 128, 4, false, true, false, false);
    check_pseudo(dt, 19, 384, 64, 3, true, false, true, false);
    check_pseudo(dt, 9, 256, 32, 8, true, true, false, false);
    check_pseudo(dt, 7, 1024, 256, 2, false, false, false, false);
    check_pseudo(dt, 5, 576, 576, 4, true, true, false, false);     // whole-row group: generic path
    check_pseudo(dt, 3, 11008, 11008, 4, true, false, true, false);
    check_pseudo(dt, 6, 120, 24, 4, true, true, true, false);       // g not a fast size
    check_pseudo(dt, 37, 512, 128, 4, true, true, true, true);      // in place (out aliases w)
    check_pseudo(dt, 11, 512, 128, 5, true, true, false, false, 4); // misaligned w: generic path
    // 6 threads per row (groups of one warp in different row slots), several rows per slot
    check_pseudo(dt, 100000, 96, 32, 4, true, true, true, false);
    check_pseudo(dt, 100000, 96, 32, 4, false, false, false, true);
    // bulk-copy kernel (sm_90, no in_scale): chunks that span rows with 9 groups per row (a chunk's
    // groups are not whole rows), clip ratios by flat group index, in place, a partial last chunk
    check_pseudo(dt, 300, 576, 64, 4, true, false, true, false);
    check_pseudo(dt, 300, 576, 64, 4, false, false, false, true);
    check_pseudo(dt, 41, 8320, 128, 4, true, false, true, false);
    // the same shapes with in_scale (the persistent grid), with and without clip ratios (the
    // clamp-free form for groups whose extremes quantize inside the code range), in place
    check_pseudo(dt, 300, 576, 64, 4, true, true, true, false);
    check_pseudo(dt, 300, 576, 64, 4, true, true, false, true);
    check_pseudo(dt, 40, 8320, 128, 4, true, true, true, false);
    check_pseudo(dt, 1000, 4096, 128, 4, true, true, false, false);
    check_pseudo(dt, 5000, 96, 32, 4, true, true, false, false);
    check_pseudo(dt, 50, 640, 64, 3, true, true, false, false);
    check_pseudo(dt, 50, 640, 128, 2, false, true, false, false);
    check_pseudo(dt, 9, 20480, 128, 4, true, true, false, false);
    // an in_scale value outside the reused-divisor range [2^-30, 2^30]: the IEEE division by in_scale
    // for that thread's elements. bf16 / fp32: above the range (not a power of two), so its column
    // dominates its group and quantizes to non-zero codes divided by it; fp16 cannot hold such a
    // group's scale (inf, then NaN of undefined sign), so there a value below the range (its column
    // quantizes to the zero code: the path runs, its outputs are +0)
    const float extreme = dt == DType::kF16 ? 0x1.8p-31f : 0x1.8p31f;
    check_pseudo(dt, 40, 1024, 128, 4, true, true, false, false, 0, extreme);
    check_pseudo(dt, 40, 1024, 128, 4, true, true, true, false, 0, extreme);
  }
  for (DType dt : dts) {
    if (!on("int4")) break;
    check_quant_int4(dt, 37, 512, 128, true, false);
    check_quant_int4(dt, 37, 512, 128, false, true);
    check_quant_int4(dt, 17, 256, 64, true, true);
    check_quant_int4(dt, 9, 256, 32, false, false);
    check_quant_int4(dt, 5, 576, 576, true, false);
    check_quant_int4(dt, 3, 11008, 11008, false, false);
    check_quant_int4(dt, 4, 96, 24, true, true);  // generic path
    check_quant_int4(dt, 100000, 96, 32, true, true);   // several rows per row slot
    check_quant_int4(dt, 100000, 96, 32, false, false);
  }
  for (DType dt : dts) {
    if (!on("dequant")) break;
    check_dequant(dt, 37, 512, 128, 0);
    check_dequant(dt, 5, 576, 576, 0);
    check_dequant(dt, 7, 96, 4, 0);   // groups smaller than a word
    check_dequant(dt, 3, 64, 32, 1);  // unaligned output: scalar stores
    check_dequant(dt, 300001, 32, 32, 0);  // fast path, several rows per row slot
  }
  if (on("repack")) {
    check_repack(64, 512, 128);
    check_repack(24, 576, 576);
    check_repack(8, 64, 32);
  }
  for (DType dt : dts) {
    if (!on("clip")) break;
    check_clip(dt, 37, 512, 64, 128, 4, true, 20, 10);
    check_clip(dt, 13, 256, 130, 64, 4, false, 20, 10);  // two token chunks, partial
    check_clip(dt, 5, 576, 1, 576, 4, true, 20, 10);     // whole row, T = 1
    check_clip(dt, 3, 1536, 17, 1536, 3, true, 20, 10);  // whole row > 128: deltas rebuilt per chunk
    check_clip(dt, 9, 96, 33, 24, 4, true, 10, 5);       // g not a multiple of 16: scalar X path
    check_clip(dt, 7, 256, 40, 128, 4, true, 20, 10, 4); // misaligned x: scalar X path
    check_clip(dt, 3, 128, 9, 128, 4, true, 64, 32);     // 32 candidates, 4 rows per block
  }
  std::printf("== %d checks, %d failed\n", g_checks, g_failures);
}

// Larger exactness checks against the host reference (full mode only: slow under the sanitizers).
void run_large_checks() {
  std::printf("== correctness, larger shapes\n");
  for (DType dt : {DType::kF16, DType::kBF16}) {
    check_pseudo(dt, 1024, 4096, 128, 4, true, false, false, false);
    check_pseudo(dt, 1024, 4096, 128, 4, true, true, false, false);
    check_pseudo(dt, 1024, 4096, 128, 4, true, true, true, false);
    check_pseudo(dt, 515, 4096, 128, 4, false, true, false, false);
    check_quant_int4(dt, 1024, 4096, 128, true, false);
    check_quant_int4(dt, 515, 4096, 128, false, true);
    // several iterations of the persistent row loop, the last one partly filled
    check_pseudo(dt, 4099, 4096, 128, 4, true, true, true, false);
    check_pseudo(dt, 4099, 4096, 128, 4, false, false, false, false);
    check_quant_int4(dt, 4099, 4096, 128, true, true);
    check_dequant(dt, 5001, 4096, 128, 0);
  }
}

// ---- benchmark -------------------------------------------------------------------------------
__global__ void fill_kernel(uint8_t* p, size_t n, int dt, uint64_t seed, float scale) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) {
    uint64_t h = (i + 1) * 0x9E3779B97F4A7C15ull ^ seed;
    h ^= h >> 31;
    h *= 0xBF58476D1CE4E5B9ull;
    h ^= h >> 29;
    // sum of two uniforms in [-1, 1): a triangular distribution, never all zeros
    const float u1 = float(uint32_t(h) >> 8) * (1.0f / 16777216.0f);
    const float u2 = float(uint32_t(h >> 32) >> 8) * (1.0f / 16777216.0f);
    const float v = (u1 + u2 - 1.0f) * scale;
    if (dt == 0) reinterpret_cast<__half*>(p)[i] = __float2half_rn(v);
    else if (dt == 1) reinterpret_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16_rn(v);
    else reinterpret_cast<float*>(p)[i] = v;
  }
}

void* dev_random(DType dt, size_t count, float scale) {
  static uint64_t seed = 12345;
  uint8_t* p = dalloc<uint8_t>(count * dt_size(dt));
  fill_kernel<<<2048, 256>>>(p, count, int(dt), seed++, scale);
  CK(cudaGetLastError());
  return p;
}

cudaStream_t g_stream = nullptr;  // every timed launch goes here (graph capture needs a non-default stream)

// Single-launch time: median of `reps` launches, each between its own event pair, so launch
// latency, ramp-up and the drain of the last wave are inside every number.
float time_us(const std::function<void(int)>& launch, int reps, int warmup = 3) {
  for (int i = 0; i < warmup; ++i) launch(i);
  CK(cudaStreamSynchronize(g_stream));
  std::vector<cudaEvent_t> ev(2 * size_t(reps));
  for (auto& e : ev) CK(cudaEventCreate(&e));
  for (int i = 0; i < reps; ++i) {
    CK(cudaEventRecord(ev[2 * size_t(i)], g_stream));
    launch(i);
    CK(cudaEventRecord(ev[2 * size_t(i) + 1], g_stream));
  }
  CK(cudaStreamSynchronize(g_stream));
  CK(cudaGetLastError());
  std::vector<float> t(static_cast<size_t>(reps));
  for (int i = 0; i < reps; ++i) CK(cudaEventElapsedTime(&t[size_t(i)], ev[2 * size_t(i)], ev[2 * size_t(i) + 1]));
  for (auto& e : ev) CK(cudaEventDestroy(e));
  std::sort(t.begin(), t.end());
  return t[t.size() / 2] * 1000.0f;
}

// Pipeline time: `per_graph` launches (launch(i) rotates its buffers with i) captured back to back
// in one CUDA graph; the graph is replayed `reps` times between event pairs and the per-launch
// time is the median replay time / per_graph. Launch gaps are amortized as in a real pipeline;
// each kernel's own ramp-up and drain are not.
float time_graph_us(const std::function<void(int)>& launch, int per_graph, int reps = 15) {
  for (int i = 0; i < 3; ++i) launch(i);  // module load and the launchers' cached occupancy queries
  CK(cudaStreamSynchronize(g_stream));
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  CK(cudaStreamBeginCapture(g_stream, cudaStreamCaptureModeRelaxed));
  for (int i = 0; i < per_graph; ++i) launch(i);
  CK(cudaStreamEndCapture(g_stream, &graph));
  CK(cudaGraphInstantiate(&exec, graph, 0));
  CK(cudaGraphLaunch(exec, g_stream));
  CK(cudaStreamSynchronize(g_stream));
  std::vector<cudaEvent_t> ev(2 * size_t(reps));
  for (auto& e : ev) CK(cudaEventCreate(&e));
  for (int i = 0; i < reps; ++i) {
    CK(cudaEventRecord(ev[2 * size_t(i)], g_stream));
    CK(cudaGraphLaunch(exec, g_stream));
    CK(cudaEventRecord(ev[2 * size_t(i) + 1], g_stream));
  }
  CK(cudaStreamSynchronize(g_stream));
  CK(cudaGetLastError());
  std::vector<float> t(static_cast<size_t>(reps));
  for (int i = 0; i < reps; ++i) CK(cudaEventElapsedTime(&t[size_t(i)], ev[2 * size_t(i)], ev[2 * size_t(i) + 1]));
  for (auto& e : ev) CK(cudaEventDestroy(e));
  CK(cudaGraphExecDestroy(exec));
  CK(cudaGraphDestroy(graph));
  std::sort(t.begin(), t.end());
  return t[t.size() / 2] * 1000.0f / float(per_graph);
}

// launches per graph: about 2 ms of work, at least 8
int per_graph_for(double bytes) { return int(std::max(8.0, std::min(64.0, 2e-3 * 4e12 / std::max(bytes, 1.0)))); }

struct Row {
  std::string op, shape, dtype;
  double us, gbs, pct, us_single, pct_single, pct_copy_same;
  std::string note;
};
std::vector<Row> g_rows;
double g_copy_gbs = 0.0;

// One table row: the op's pipeline (graph) time, its single-launch time, and a device-to-device
// copy of the same byte count timed the same way (the ceiling at this size).
void add_row(const std::string& op, const std::string& shape, DType dt, double bytes, double us_graph,
             double us_single, double copy_same_us, const std::string& note = "") {
  const double gbs = bytes / (us_graph * 1e-6) / 1e9;
  const double gbs1 = bytes / (us_single * 1e-6) / 1e9;
  const double gbsc = bytes / (copy_same_us * 1e-6) / 1e9;
  g_rows.push_back({op, shape, dt_name(dt), us_graph, gbs, 100.0 * gbs / g_copy_gbs, us_single, 100.0 * gbs1 / g_copy_gbs,
                    100.0 * gbsc / g_copy_gbs, note});
  std::printf("  %-16s %-22s %-5s graph %8.1f us %6.0f GB/s %5.1f %% | single %8.1f us %5.1f %% | same-size copy %5.1f %% %s\n",
              op.c_str(), shape.c_str(), dt_name(dt), us_graph, gbs, 100.0 * gbs / g_copy_gbs, us_single,
              100.0 * gbs1 / g_copy_gbs, 100.0 * gbsc / g_copy_gbs, note.c_str());
}

void bench_copy() {
  const size_t bytes = size_t(1) << 30;
  void* a = dalloc<char>(bytes);
  void* b = dalloc<char>(bytes);
  CK(cudaMemset(a, 1, bytes));
  const float us = time_us([&](int) { CK(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, g_stream)); }, 20);
  g_copy_gbs = 2.0 * double(bytes) / (us * 1e-6) / 1e9;
  std::printf("  device-to-device copy 1 GiB: %.1f us, %.0f GB/s (read + write)\n", us, g_copy_gbs);
  CK(cudaFree(a));
  CK(cudaFree(b));
}

// Graph-timed device-to-device copies moving `traffic` bytes (read + write) each, rotating over
// the given buffers (each holds at least traffic / 2 bytes to read and as many to write).
float copy_same_us(const std::vector<void*>& src, const std::vector<void*>& dst, double traffic) {
  const size_t half = size_t(traffic / 2.0);
  const int nc = int(src.size());
  return time_graph_us([&](int i) {
    CK(cudaMemcpyAsync(dst[size_t(i % nc)], src[size_t(i % nc)], half, cudaMemcpyDeviceToDevice, g_stream));
  }, per_graph_for(traffic));
}

// enough copies that the rotating working set is >= 4x the L2
int copies_for(size_t bytes_per_copy) {
  int l2 = 0;
  CK(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, 0));
  return int(std::max<size_t>(2, std::min<size_t>(8, (4 * size_t(l2)) / std::max<size_t>(bytes_per_copy, 1) + 1)));
}

void bench_act_stats(DType dt, int64_t T, int64_t k) {
  const size_t bytes = size_t(T * k) * dt_size(dt);
  const int nc = copies_for(bytes);
  std::vector<void*> xs, halves;
  for (int i = 0; i < nc; ++i) {
    xs.push_back(dev_random(dt, size_t(T * k), 4.0f));
    halves.push_back(static_cast<char*>(xs.back()) + bytes / 2);
  }
  float* s = dalloc<float>(size_t(k) * 4);
  float* m = dalloc<float>(size_t(k) * 4);
  CK(cudaMemset(s, 0, size_t(k) * 4));
  CK(cudaMemset(m, 0, size_t(k) * 4));
  awq::ActStatsParams p;
  p.dtype = dt;
  p.tokens = T;
  p.k = k;
  p.x_stride = k;
  p.abs_sum = s;
  p.abs_max = m;
  auto launch = [&](int i) {
    p.x = xs[size_t(i % nc)];
    CKS(awq::cuda::act_stats(p, g_stream));
  };
  const double traffic = double(bytes) + 2.0 * 2 * 4 * double(k);
  const float ug = time_graph_us(launch, per_graph_for(traffic));
  const float u1 = time_us(launch, 50);
  const float uc = copy_same_us(xs, halves, double(bytes));
  add_row("act_stats", fmt("x %lldx%lld", (long long)T, (long long)k), dt, traffic, ug, u1, uc, "copy: same bytes");
  for (auto x : xs) CK(cudaFree(x));
  CK(cudaFree(s));
  CK(cudaFree(m));
}

void bench_group_ops(DType dt, int64_t n, int64_t k, int g, bool compare_generic, bool repack) {
  const size_t elems = size_t(n * k), wbytes = elems * dt_size(dt);
  const int64_t G = k / g;
  const int nc = copies_for(2 * wbytes);
  std::vector<void*> ws, outs;
  for (int i = 0; i < nc; ++i) {
    ws.push_back(dev_random(dt, elems, 0.1f));
    outs.push_back(dalloc<char>(wbytes));
  }
  std::vector<float> sc = random_pos(size_t(k), 0.5f, 2.0f);
  float* dsc = static_cast<float*>(upload(sc.data(), sc.size() * 4));
  const std::string shape = fmt("W %lldx%lld g%d", (long long)n, (long long)k, g);
  const float copy_w = copy_same_us(ws, outs, 2.0 * double(wbytes));
  awq::PseudoQuantParams p;
  p.dtype = dt;
  p.n = n;
  p.k = k;
  p.group_size = g;
  p.bits = 4;
  p.zero_point = true;
  for (int with_scale = 0; with_scale < 2; ++with_scale) {
    p.in_scale = with_scale ? dsc : nullptr;
    auto launch = [&](int i) {
      p.w = ws[size_t(i % nc)];
      p.out = outs[size_t(i % nc)];
      CKS(awq::cuda::pseudo_quantize(p, g_stream));
    };
    const double traffic = 2.0 * double(wbytes) + (with_scale ? 4.0 * double(k) : 0.0);
    add_row("pseudo_quantize", shape, dt, traffic, time_graph_us(launch, per_graph_for(traffic)), time_us(launch, 30),
            copy_w, with_scale ? "w*s, /s" : "");
  }
  // The fast kernel (reused-divisor division) against the generic kernel (IEEE `/` everywhere) on
  // the whole shape: an output one element off 16-byte alignment forces the generic path.
  if (compare_generic) {
    char* gen = dalloc<char>(wbytes + 16);
    void* gout = gen + dt_size(dt);
    std::vector<float> cl = random_pos(size_t(n * G), 0.5f, 1.0f);
    float* dcl = static_cast<float*>(upload(cl.data(), cl.size() * 4));
    std::vector<uint8_t> a(wbytes), b(wbytes);
    for (int variant = 0; variant < 3; ++variant) {
      p.w = ws[0];
      p.in_scale = variant > 0 ? dsc : nullptr;
      p.clip = variant == 2 ? dcl : nullptr;
      p.zero_point = variant != 1;
      poison(outs[0], wbytes);
      poison(gout, wbytes);
      p.out = outs[0];
      CKS(awq::cuda::pseudo_quantize(p, nullptr));
      p.out = gout;
      CKS(awq::cuda::pseudo_quantize(p, nullptr));
      CK(cudaMemcpy(a.data(), outs[0], wbytes, cudaMemcpyDeviceToHost));
      CK(cudaMemcpy(b.data(), gout, wbytes, cudaMemcpyDeviceToHost));
      size_t bad = 0;
      report(same_bytes(a.data(), b.data(), wbytes, dt_size(dt), &bad),
             fmt("pseudo_quantize fast == generic (IEEE /) %s %s scale=%d clip=%d zp=%d", dt_name(dt), shape.c_str(),
                 variant > 0, variant == 2, variant != 1));
    }
    p.clip = nullptr;
    p.zero_point = true;
    CK(cudaFree(gen));
    CK(cudaFree(dcl));
  }
  // quantize_int4 + dequantize_int4 + repack on the same shape
  std::vector<int32_t*> qws;
  std::vector<void*> scs;
  std::vector<uint8_t*> zs;
  for (int i = 0; i < nc; ++i) {
    qws.push_back(dalloc<int32_t>(elems / 2));
    scs.push_back(dalloc<char>(size_t(n * G) * dt_size(dt)));
    zs.push_back(dalloc<uint8_t>(size_t(n * G)));
  }
  awq::QuantizeInt4Params q;
  q.dtype = dt;
  q.n = n;
  q.k = k;
  q.group_size = g;
  q.zero_point = true;
  const double side = double(n * G) * (double(dt_size(dt)) + 1.0);  // scales + zeros
  const double int4_traffic = double(wbytes) + double(elems) / 2.0 + side;
  const float copy_q = copy_same_us(ws, outs, int4_traffic);
  {
    auto launch = [&](int i) {
      q.w = ws[size_t(i % nc)];
      q.qweight = qws[size_t(i % nc)];
      q.scales = scs[size_t(i % nc)];
      q.zeros = zs[size_t(i % nc)];
      CKS(awq::cuda::quantize_int4(q, g_stream));
    };
    add_row("quantize_int4", shape, dt, int4_traffic, time_graph_us(launch, per_graph_for(int4_traffic)),
            time_us(launch, 30), copy_q);
  }
  if (compare_generic) {  // fast vs generic (w one element off alignment) on the whole shape
    char* wmis = dalloc<char>(wbytes + 16);
    CK(cudaMemcpy(wmis + dt_size(dt), ws[0], wbytes, cudaMemcpyDeviceToDevice));
    bool ok = true;
    for (int zp = 0; zp < 2; ++zp) {
      q.zero_point = zp == 1;
      std::vector<int32_t> w1[2];
      std::vector<uint8_t> s1[2], z1[2];
      for (int pass = 0; pass < 2; ++pass) {
        q.w = pass == 0 ? ws[0] : static_cast<void*>(wmis + dt_size(dt));
        q.qweight = qws[0];
        q.scales = scs[0];
        q.zeros = zs[0];
        poison(q.qweight, elems / 2);
        CKS(awq::cuda::quantize_int4(q, nullptr));
        w1[pass] = download<int32_t>(q.qweight, elems / 8);
        s1[pass] = download<uint8_t>(q.scales, size_t(n * G) * dt_size(dt));
        z1[pass] = download<uint8_t>(q.zeros, size_t(n * G));
      }
      ok = ok && w1[0] == w1[1] && s1[0] == s1[1] && z1[0] == z1[1];
    }
    report(ok, fmt("quantize_int4 fast == generic %s %s (zp and symmetric)", dt_name(dt), shape.c_str()));
    q.zero_point = true;
    // dequantize: fast path against the generic one-word-per-thread kernel (output one element
    // off alignment), on the codes just written
    awq::DequantInt4Params d;
    d.qweight = qws[0];
    d.scales = scs[0];
    d.zeros = zs[0];
    d.dtype = dt;
    d.n = n;
    d.k = k;
    d.group_size = g;
    d.out = outs[0];
    poison(outs[0], wbytes);
    CKS(awq::cuda::dequantize_int4(d, nullptr));
    void* dmis = wmis + dt_size(dt);
    poison(dmis, wbytes);
    d.out = dmis;
    CKS(awq::cuda::dequantize_int4(d, nullptr));
    std::vector<uint8_t> a(wbytes), b(wbytes);
    CK(cudaMemcpy(a.data(), outs[0], wbytes, cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(b.data(), dmis, wbytes, cudaMemcpyDeviceToHost));
    size_t bad = 0;
    report(same_bytes(a.data(), b.data(), wbytes, dt_size(dt), &bad),
           fmt("dequantize_int4 fast == generic %s %s", dt_name(dt), shape.c_str()));
    CK(cudaFree(wmis));
  }
  {
    awq::DequantInt4Params d;
    d.dtype = dt;
    d.n = n;
    d.k = k;
    d.group_size = g;
    auto launch = [&](int i) {
      d.qweight = qws[size_t(i % nc)];
      d.scales = scs[size_t(i % nc)];
      d.zeros = zs[size_t(i % nc)];
      d.out = outs[size_t(i % nc)];
      CKS(awq::cuda::dequantize_int4(d, g_stream));
    };
    add_row("dequantize_int4", shape, dt, int4_traffic, time_graph_us(launch, per_graph_for(int4_traffic)),
            time_us(launch, 30), copy_q);
  }
  if (repack) {
    awq::AwqRepackParams r;
    r.n = n;
    r.k = k;
    r.group_size = g;
    const double traffic = double(elems) + 2.0 * double(n * G) * 0.75;
    const float copy_r = copy_same_us(ws, outs, traffic);
    for (int dir = 0; dir < 2; ++dir) {
      r.to_awq = dir == 0;
      auto launch = [&](int i) {
        r.qweight = qws[size_t(i % nc)];
        r.zeros = zs[size_t(i % nc)];
        r.qweight_awq = reinterpret_cast<int32_t*>(outs[size_t(i % nc)]);
        r.qzeros_awq = reinterpret_cast<int32_t*>(static_cast<char*>(outs[size_t(i % nc)]) + elems / 2);
        CKS(awq::cuda::awq_repack(r, g_stream));
      };
      add_row(dir == 0 ? "pack_awq" : "unpack_awq", shape, DType::kF16, traffic,
              time_graph_us(launch, per_graph_for(traffic)), time_us(launch, 30), copy_r, "int4 in+out");
    }
  }
  for (int i = 0; i < nc; ++i) {
    CK(cudaFree(ws[size_t(i)]));
    CK(cudaFree(outs[size_t(i)]));
    CK(cudaFree(qws[size_t(i)]));
    CK(cudaFree(scs[size_t(i)]));
    CK(cudaFree(zs[size_t(i)]));
  }
  CK(cudaFree(dsc));
}

// One launch of each timed kernel on the benchmark shapes, nothing else (for ncu).
void run_profile() {
  for (DType dt : {DType::kF16, DType::kBF16}) {
    const int64_t T = 8192, K = 4096;
    void* x = dev_random(dt, size_t(T * K), 4.0f);
    float* s = dalloc<float>(size_t(K) * 4);
    float* m = dalloc<float>(size_t(K) * 4);
    CK(cudaMemset(s, 0, size_t(K) * 4));
    CK(cudaMemset(m, 0, size_t(K) * 4));
    awq::ActStatsParams a;
    a.x = x;
    a.dtype = dt;
    a.tokens = T;
    a.k = K;
    a.x_stride = K;
    a.abs_sum = s;
    a.abs_max = m;
    CKS(awq::cuda::act_stats(a, nullptr));
    const int64_t n = 11008, k = 4096;
    void* w = dev_random(dt, size_t(n * k), 0.1f);
    void* out = dalloc<char>(size_t(n * k) * dt_size(dt));
    std::vector<float> sc = random_pos(size_t(k), 0.5f, 2.0f);
    awq::PseudoQuantParams p;
    p.w = w;
    p.out = out;
    p.dtype = dt;
    p.n = n;
    p.k = k;
    CKS(awq::cuda::pseudo_quantize(p, nullptr));
    p.in_scale = static_cast<float*>(upload(sc.data(), sc.size() * 4));
    CKS(awq::cuda::pseudo_quantize(p, nullptr));
    awq::QuantizeInt4Params q;
    q.w = w;
    q.dtype = dt;
    q.n = n;
    q.k = k;
    q.qweight = dalloc<int32_t>(size_t(n * k / 2));
    q.scales = dalloc<char>(size_t(n * k / 128) * dt_size(dt));
    q.zeros = dalloc<uint8_t>(size_t(n * k / 128));
    CKS(awq::cuda::quantize_int4(q, nullptr));
    awq::DequantInt4Params d;
    d.qweight = q.qweight;
    d.scales = q.scales;
    d.zeros = q.zeros;
    d.dtype = dt;
    d.n = n;
    d.k = k;
    d.out = out;
    CKS(awq::cuda::dequantize_int4(d, nullptr));
    CK(cudaDeviceSynchronize());
  }
}

struct ClipRow {
  std::string what;
  double ms, tflops;
};
std::vector<ClipRow> g_clip;

void bench_clip(DType dt, int64_t n, int64_t k, int64_t T, int g, int C) {
  void* w = dev_random(dt, size_t(n * k), 0.1f);
  void* x = dev_random(dt, size_t(T * k), 2.0f);
  const int64_t G = k / g;
  awq::ClipSearchParams p;
  p.w = w;
  p.x = x;
  p.dtype = dt;
  p.n = n;
  p.k = k;
  p.tokens = T;
  p.group_size = g;
  p.bits = 4;
  p.zero_point = true;
  p.n_grid = 20;
  p.n_candidates = C;
  p.best_ratio = dalloc<float>(size_t(n * G) * 4);
  p.best_err = dalloc<float>(size_t(n * G) * 4);
  const float us = time_us([&](int) { CKS(awq::cuda::clip_search(p, g_stream)); }, 7, 2);
  const double flops = 2.0 * double(n) * double(k) * double(T) * double(C);
  g_clip.push_back({fmt("clip_search %s W %lldx%lld g%d T=%lld C=%d", dt_name(dt), (long long)n, (long long)k, g,
                        (long long)T, C),
                    us / 1000.0, flops / (us * 1e-6) / 1e12});
  std::printf("  %s: %.2f ms, %.1f TFLOP/s (useful FMAs, fp32)\n", g_clip.back().what.c_str(), us / 1000.0,
              g_clip.back().tflops);
  CK(cudaFree(w));
  CK(cudaFree(x));
  CK(cudaFree(p.best_ratio));
  CK(cudaFree(p.best_err));
}

// cuBLAS GEMMs with the clip search's FLOP count: [T x K] @ [K x N*C]
void bench_cublas_ref(int64_t n, int64_t k, int64_t T, int C) {
  cublasHandle_t h;
  if (cublasCreate(&h) != CUBLAS_STATUS_SUCCESS) {
    std::printf("  cublasCreate failed\n");
    return;
  }
  const int64_t M = T, N = n * C, K = k;
  const double flops = 2.0 * double(M) * double(N) * double(K);
  for (int pass = 0; pass < 2; ++pass) {
    const bool f16 = pass == 1;
    const DType dt = f16 ? DType::kF16 : DType::kF32;
    void* A = dev_random(dt, size_t(M * K), 1.0f);
    void* B = dev_random(dt, size_t(K * N), 1.0f);
    void* Cm = dalloc<char>(size_t(M * N) * dt_size(dt));
    const float alpha = 1.0f, beta = 0.0f;
    cublasStatus_t st = CUBLAS_STATUS_SUCCESS;
    const float us = time_us([&](int) {
      // column-major: C [M x N] = A [M x K] * B [K x N]
      st = cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, int(M), int(N), int(K), &alpha, A, f16 ? CUDA_R_16F : CUDA_R_32F,
                        int(M), B, f16 ? CUDA_R_16F : CUDA_R_32F, int(K), &beta, Cm, f16 ? CUDA_R_16F : CUDA_R_32F,
                        int(M), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    }, 7, 2);
    if (st != CUBLAS_STATUS_SUCCESS) std::printf("  cublasGemmEx failed (%d)\n", int(st));
    g_clip.push_back({fmt("cuBLAS %s GEMM %lldx%lldx%lld (same FLOPs)", f16 ? "fp16 (tensor cores)" : "fp32 SGEMM",
                          (long long)M, (long long)N, (long long)K),
                      us / 1000.0, flops / (us * 1e-6) / 1e12});
    std::printf("  %s: %.2f ms, %.1f TFLOP/s\n", g_clip.back().what.c_str(), us / 1000.0, g_clip.back().tflops);
    CK(cudaFree(A));
    CK(cudaFree(B));
    CK(cudaFree(Cm));
  }
  cublasDestroy(h);
}

void run_bench(bool clip, bool group, bool act, bool large_checks) {
  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, 0));
  int clock_khz = 0;
  CK(cudaDeviceGetAttribute(&clock_khz, cudaDevAttrClockRate, 0));
  std::printf("== benchmark on %s (%d SMs, L2 %d MB, max SM clock %d MHz)\n", prop.name, prop.multiProcessorCount,
              prop.l2CacheSize >> 20, clock_khz / 1000);
  bench_copy();
  if (group && large_checks) run_large_checks();
  if (act)
    for (DType dt : {DType::kF16, DType::kBF16}) bench_act_stats(dt, 8192, 4096);
  if (group) {
    for (DType dt : {DType::kF16, DType::kBF16}) {
      bench_group_ops(dt, 11008, 4096, 128, large_checks, dt == DType::kF16);
      bench_group_ops(dt, 28672, 8192, 128, large_checks, dt == DType::kF16);
    }
    bench_group_ops(DType::kF16, 11008, 4096, 64, false, false);
  }
  if (clip) {
    for (DType dt : {DType::kF16, DType::kBF16}) bench_clip(dt, 11008, 4096, 512, 128, 10);
    bench_clip(DType::kF16, 4096, 11008, 512, 11008, 10);  // whole-row groups
    bench_cublas_ref(11008, 4096, 512, 10);
  }

  std::time_t now = std::time(nullptr);
  char date[64];
  std::strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", std::gmtime(&now));
  std::printf("\n## %s, %s; copy %.0f GB/s (1 GiB cudaMemcpyAsync D2D, read + write)\n\n", prop.name, date, g_copy_gbs);
  std::printf("graph: per-launch time inside a CUDA graph of back-to-back launches on rotating buffers;\n"
              "single: one launch between events; same-size copy: D2D copy of the op's byte count, graph-timed.\n\n");
  std::printf("| op | shape | dtype | us (graph) | GB/s | %% of copy | us (single) | %% (single) | same-size copy %% | note |\n"
              "|---|---|---|---|---|---|---|---|---|---|\n");
  for (const Row& r : g_rows)
    std::printf("| %s | %s | %s | %.1f | %.0f | %.1f | %.1f | %.1f | %.1f | %s |\n", r.op.c_str(), r.shape.c_str(),
                r.dtype.c_str(), r.us, r.gbs, r.pct, r.us_single, r.pct_single, r.pct_copy_same, r.note.c_str());
  if (!g_clip.empty()) {
    std::printf("\n| clip search / reference GEMM | ms | TFLOP/s |\n|---|---|---|\n");
    for (const ClipRow& c : g_clip) std::printf("| %s | %.2f | %.1f |\n", c.what.c_str(), c.ms, c.tflops);
  }
}

}  // namespace

int main(int argc, char** argv) {
  bool check_only = false, profile = false, skip_checks = false;
  bool clip = true, group = true, act = true;
  std::string only;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--check") check_only = true;
    if (a.rfind("--check=", 0) == 0) {
      check_only = true;
      only = a.substr(8);
    }
    if (a.rfind("--only=", 0) == 0) only = a.substr(7);  // checks of a subset, then the benchmark
    if (a == "--profile") profile = true;             // one launch per kernel, for ncu
    if (a == "--no-checks") skip_checks = true;       // timings only
    if (a.rfind("--bench=", 0) == 0) {                // subset of act, group, clip
      const std::string b = a.substr(8);
      act = b.find("act") != std::string::npos;
      group = b.find("group") != std::string::npos;
      clip = b.find("clip") != std::string::npos;
    }
  }
  CK(cudaSetDevice(0));
  CK(cudaStreamCreate(&g_stream));
  if (profile) {
    run_profile();
    return 0;
  }
  if (!skip_checks) run_checks(only);
  if (!check_only) {
    if (g_failures > 0) std::printf("!! %d correctness checks FAILED; timings follow anyway\n", g_failures);
    run_bench(clip, group, act, !skip_checks);
    std::printf("\n== %d checks in all, %d failed\n", g_checks, g_failures);
  }
  return g_failures == 0 ? 0 : 1;
}
