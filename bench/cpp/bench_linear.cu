// Standalone benchmark and correctness check of awq::cuda::int4_linear's decode path (M <= 16:
// int4_gemv_stream and the register-pipelined int4_gemv of int4_linear.cu), torch-free core + cuBLAS.
//
// Build (one arch; add -gencode for others), from the repository root:
//   nvcc -O3 -std=c++17 -DAWQ_GEMV_TUNING -Icsrc/include -Icsrc/kernels/cuda
//        -gencode arch=compute_90a,code=sm_90a -Xcompiler -fopenmp bench/cpp/bench_linear.cu
//        csrc/kernels/cuda/int4_linear.cu bench/cpp/int4_gemm_stub.cu -lcublas -lgomp -o bench_linear
// (-DAWQ_GEMV_TUNING adds the 29 sweep candidates to the library's 8 streaming configurations; link
// csrc/kernels/cuda/int4_gemm.cu instead of the stub to include the large-M GEMM; the stub declines
// every M > 32). bench/cpp/run_linear_device.sh runs the steps below on the device machine.
//
// Modes (any combination; default --check --bench):
//   --check      random problems vs a host fp64 reference: fp16/bf16, g 32/64/128, awkward M, N
//                and K (tails), bias, strided and misaligned x, every streaming configuration with
//                and without PDL, the previous GEMV with forced split-K, CUDA graph replay, a PDL
//                chain of layers, bitwise determinism. Tolerance: err(ours) <= 2 err(cuBLAS) + 1e-6,
//                err = ||y - ref|| / ||ref||, cuBLAS multiplying the same dequantized weights.
//   --sanitize   small cases without cuBLAS (for compute-sanitizer)
//   --bench      the six LLM shapes x M, weights rotated over >= 4x L2, CUDA-graph replays timed
//                with events, medians; int4_linear as the library runs it, the streaming kernel
//                without PDL, the previous GEMV, cuBLAS fp16/bf16, and copy / read-only kernels;
//                per shape also the read floor (read3_kernel: the fastest plain read of the same
//                weight, scale and zero bytes, timed the same way) and an empty kernel's time per call
//   --sweep      also time every streaming configuration (without PDL, the best again with PDL);
//                --cfgs 44,76,.. restricts it to those ids; --pdl-modes 1,3,5 times every swept
//                configuration with each PDL mode too (int4_gemv_stream's pdl bits: 1 on, 2 no L2
//                prefetch before the wait, 4 dependents launched after the main loop); the sweep's
//                "+pdl" line times the fastest configuration with mode 1
//   --one N K M cfg   two launches of one configuration (fp16, g128) for a profiler (cfg 1000: previous)
//   --dtype f16|bf16|both   --group 32|64|128   --m 1,2,4,8,16   --out results.md
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
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

namespace awq {
namespace cuda {
namespace detail {
Status int4_gemv(const Int4LinearParams& p, cudaStream_t stream, int cfg, int split, int* plan_split);
Status int4_gemv_stream(const Int4LinearParams& p, cudaStream_t stream, int cfg, int pdl);
}
}  // namespace cuda
}  // namespace awq

#define CK(x)                                                                                 \
  do {                                                                                        \
    cudaError_t e_ = (x);                                                                     \
    if (e_ != cudaSuccess) {                                                                  \
      std::fprintf(stderr, "CUDA error %s at %s:%d: %s\n", cudaGetErrorString(e_), __FILE__, \
                   __LINE__, #x);                                                             \
      std::exit(2);                                                                           \
    }                                                                                         \
  } while (0)
#define CB(x)                                                                          \
  do {                                                                                 \
    cublasStatus_t s_ = (x);                                                           \
    if (s_ != CUBLAS_STATUS_SUCCESS) {                                                 \
      std::fprintf(stderr, "cuBLAS error %d at %s:%d: %s\n", int(s_), __FILE__, __LINE__, #x); \
      std::exit(2);                                                                    \
    }                                                                                  \
  } while (0)

using awq::DType;
using awq::Status;

static uint16_t to_bits(float v, DType dt) {
  return dt == DType::kF16 ? awq::float_to_half(v) : awq::float_to_bf16(v);
}
static float from_bits(uint16_t v, DType dt) {
  return dt == DType::kF16 ? awq::half_to_float(v) : awq::bf16_to_float(v);
}
static const char* dt_name(DType dt) { return dt == DType::kF16 ? "f16" : "bf16"; }
static cudaDataType cuda_dt(DType dt) { return dt == DType::kF16 ? CUDA_R_16F : CUDA_R_16BF; }

// ---- a quantized problem on the host ------------------------------------------------------------
struct HostProblem {
  int64_t n, k, g;
  DType dt;
  std::vector<int32_t> qweight;   // [n, k/8]
  std::vector<uint16_t> scales;   // [n, k/g]
  std::vector<uint8_t> zeros;     // [n, k/g]
  std::vector<uint16_t> bias;     // [n]
  std::vector<uint16_t> wdeq;     // [n, k]: (q - z) * s rounded to dt, like reference.dequantize_int4
};

static HostProblem make_problem(int64_t n, int64_t k, int64_t g, DType dt, uint64_t seed, bool want_wdeq) {
  HostProblem hp{n, k, g, dt, {}, {}, {}, {}, {}};
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> code(0, 15);
  std::uniform_real_distribution<float> sdist(0.002f, 0.02f), bdist(-1.0f, 1.0f);
  const int64_t groups = k / g;
  hp.qweight.resize(size_t(n * k / 8));
  hp.scales.resize(size_t(n * groups));
  hp.zeros.resize(size_t(n * groups));
  hp.bias.resize(size_t(n));
  for (auto& s : hp.scales) s = to_bits(sdist(rng), dt);
  for (auto& z : hp.zeros) z = uint8_t(code(rng));
  for (auto& b : hp.bias) b = to_bits(bdist(rng), dt);
  if (want_wdeq) hp.wdeq.resize(size_t(n * k));
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t w = 0; w < k / 8; ++w) {
      uint8_t c[8];
      for (int e = 0; e < 8; ++e) c[e] = uint8_t(code(rng));
      hp.qweight[size_t(r * (k / 8) + w)] = int32_t(awq::pack8(c));
      if (want_wdeq) {
        for (int e = 0; e < 8; ++e) {
          const int64_t kk = w * 8 + e;
          const int64_t gi = r * groups + kk / g;
          const float s = from_bits(hp.scales[size_t(gi)], dt);
          const float v = (float(c[e]) - float(hp.zeros[size_t(gi)])) * s;
          hp.wdeq[size_t(r * k + kk)] = to_bits(v, dt);
        }
      }
    }
  }
  return hp;
}

template <typename V>
static V* upload(const std::vector<V>& h) {
  V* d = nullptr;
  CK(cudaMalloc(&d, std::max<size_t>(h.size() * sizeof(V), 16)));
  CK(cudaMemcpy(d, h.data(), h.size() * sizeof(V), cudaMemcpyHostToDevice));
  return d;
}

struct DeviceProblem {
  int32_t* qweight = nullptr;
  uint16_t* scales = nullptr;
  uint8_t* zeros = nullptr;
  uint16_t* bias = nullptr;
  uint16_t* wdeq = nullptr;
  void free_all() {
    cudaFree(qweight);
    cudaFree(scales);
    cudaFree(zeros);
    cudaFree(bias);
    if (wdeq) cudaFree(wdeq);
  }
};

static DeviceProblem upload_problem(const HostProblem& hp) {
  DeviceProblem d;
  d.qweight = upload(hp.qweight);
  d.scales = upload(hp.scales);
  d.zeros = upload(hp.zeros);
  d.bias = upload(hp.bias);
  if (!hp.wdeq.empty()) d.wdeq = upload(hp.wdeq);
  return d;
}

static awq::Int4LinearParams params(const DeviceProblem& d, const HostProblem& hp, const void* x, int64_t m,
                                    int64_t x_stride, void* y, bool bias, int sm_count) {
  awq::Int4LinearParams p;
  p.x = x;
  p.qweight = d.qweight;
  p.scales = d.scales;
  p.zeros = d.zeros;
  p.bias = bias ? d.bias : nullptr;
  p.y = y;
  p.dtype = hp.dt;
  p.m = m;
  p.n = hp.n;
  p.k = hp.k;
  p.x_stride = x_stride;
  p.group_size = int(hp.g);
  p.sm_count = sm_count;
  return p;
}

// Uniform values in [-0.05, 0.05) from a hash of the index: random fp weights for cuBLAS without a
// host round trip (constant or zero data can run faster than real data).
__global__ void fill_random(uint16_t* p, size_t n, uint32_t seed, bool bf16) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) {
    uint32_t v = uint32_t(i) * 0x9E3779B1u ^ seed;
    v ^= v >> 15;
    v *= 0x2C1B3C6Du;
    v ^= v >> 12;
    v *= 0x297A2D39u;
    v ^= v >> 15;
    const float f = (float(v >> 8) * (1.0f / 16777216.0f) - 0.5f) * 0.1f;
    p[i] = bf16 ? __bfloat16_as_ushort(__float2bfloat16_rn(f)) : __half_as_ushort(__float2half_rn(f));
  }
}

// y = x W^T (+ y0 when beta = 1) with cuBLAS (row-major y [m, n] is column-major [n, m] = W [n, k] . x^T)
static void cublas_linear(cublasHandle_t h, DType dt, const void* w, const void* x, int64_t x_stride, void* y,
                          int64_t m, int64_t n, int64_t k, float beta = 0.0f) {
  const float one = 1.0f;
  CB(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, int(n), int(m), int(k), &one, w, cuda_dt(dt), int(k), x,
                  cuda_dt(dt), int(x_stride), &beta, y, cuda_dt(dt), int(n), CUBLAS_COMPUTE_32F,
                  CUBLAS_GEMM_DEFAULT));
}

// ---- correctness ---------------------------------------------------------------------------------
struct CheckCase {
  int64_t n, k, g, m;
  DType dt;
  bool bias;
  int64_t x_pad;   // x_stride = k + x_pad (elements); x_pad % 8 != 0 misaligns rows
  int x_offset;    // elements the x base pointer is shifted by
  int cfg, split;  // -1: int4_linear; 0..999: int4_gemv_stream(cfg); kOldCfg: the register-pipelined GEMV
  int pdl = -1;    // int4_gemv_stream: -1 default, 0 off, 1 on
};
constexpr int kOldCfg = 1000;  // above every streaming configuration id
// int4_gemv_stream configuration ids: the library's (AWQ_STREAM_LIBRARY) and, with -DAWQ_GEMV_TUNING,
// every candidate of the sweep (AWQ_STREAM_TUNING), listed with their number of 8-row x tiles.
static std::vector<int> g_sweep_only;   // --cfgs: restrict the sweep to these ids
static std::vector<int> g_pdl_modes;    // --pdl-modes: PDL modes timed for every swept configuration
static std::vector<int> stream_cfgs(bool small_m_only, bool large_m_only) {
  // (id, 8-row x tiles): the library's eight, then the candidates of AWQ_STREAM_TUNING
  std::vector<std::pair<int, int>> all = {{76, 1}, {44, 1}, {48, 1}, {71, 1}, {111, 1}, {74, 2}, {73, 2}, {49, 2}};
#ifdef AWQ_GEMV_TUNING
  for (auto c : {std::pair<int, int>{18, 1}, {50, 2}, {9, 1}, {10, 1}, {19, 1}, {25, 1}, {20, 2}, {21, 2}, {24, 1}, {32, 1},
                 {33, 1}, {34, 1}, {35, 1}, {36, 1}, {37, 2}, {38, 2}, {39, 2}, {40, 2}, {41, 2}, {42, 2}, {43, 1},
                 {45, 2}, {46, 2}, {47, 1}, {15, 2}, {16, 2}, {51, 1}, {110, 1}, {112, 1}}) {
    all.push_back(c);
  }
#endif
  std::vector<int> out;
  for (auto [c, mt] : all) {
    const bool listed = g_sweep_only.empty() || std::find(g_sweep_only.begin(), g_sweep_only.end(), c) != g_sweep_only.end();
    if (listed && (!small_m_only || mt == 1) && (!large_m_only || mt == 2)) out.push_back(c);
  }
  return out;
}
static Status launch_case(const CheckCase& c, const awq::Int4LinearParams& p, cudaStream_t stream) {
  if (c.cfg < 0) return awq::cuda::int4_linear(p, stream);
  if (c.cfg >= kOldCfg) return awq::cuda::detail::int4_gemv(p, stream, 0, c.split, nullptr);
  return awq::cuda::detail::int4_gemv_stream(p, stream, c.cfg, c.pdl);
}

static int g_fail = 0, g_cases = 0;
static void pdl_chain_check(int sm_count);

static void run_check(const CheckCase& c, cublasHandle_t h, int sm_count, bool with_cublas, bool via_graph) {
  ++g_cases;
  const HostProblem hp = make_problem(c.n, c.k, c.g, c.dt, 1234 + c.n * 7 + c.k * 13 + c.g + c.m * 101, true);
  const DeviceProblem d = upload_problem(hp);
  const int64_t xs = c.k + c.x_pad;
  std::mt19937_64 rng(99 + c.m);
  std::uniform_real_distribution<float> xd(-1.0f, 1.0f);
  std::vector<uint16_t> hx(size_t(c.m * xs + c.x_offset + 8));
  for (auto& v : hx) v = to_bits(xd(rng), c.dt);
  uint16_t* dx_base = upload(hx);
  const uint16_t* dx = dx_base + c.x_offset;
  uint16_t* dy = nullptr;
  uint16_t* dyc = nullptr;
  CK(cudaMalloc(&dy, size_t(c.m * c.n) * 2));
  CK(cudaMalloc(&dyc, size_t(c.m * c.n) * 2));
  CK(cudaMemset(dy, 0xFF, size_t(c.m * c.n) * 2));  // NaN poison: every element must be written

  const awq::Int4LinearParams p = params(d, hp, dx, c.m, xs, dy, c.bias, sm_count);
  Status st;
  cudaStream_t stream;
  CK(cudaStreamCreate(&stream));
  auto launch = [&]() { return launch_case(c, p, stream); };
  if (via_graph) {
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    CK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
    st = launch();
    CK(cudaStreamEndCapture(stream, &graph));
    CK(cudaGraphInstantiate(&exec, graph, 0));
    CK(cudaGraphLaunch(exec, stream));
    CK(cudaStreamSynchronize(stream));
    CK(cudaGraphExecDestroy(exec));
    CK(cudaGraphDestroy(graph));
  } else {
    st = launch();
  }
  CK(cudaGetLastError());
  CK(cudaStreamSynchronize(stream));
  char label[200];
  std::snprintf(label, sizeof(label), "%s g%-3ld N=%-5ld K=%-5ld M=%-3ld bias=%d xs=%ld+%d cfg=%d split=%d pdl=%d%s",
                dt_name(c.dt), long(c.g), long(c.n), long(c.k), long(c.m), int(c.bias), long(xs), c.x_offset,
                c.cfg, c.split, c.pdl, via_graph ? " graph" : "");
  if (st == Status::kUnsupported && c.cfg > 0 && c.cfg < kOldCfg) {
    // a forced tuning candidate whose shared memory does not fit this device at this M (the library's
    // dispatch never picks it there): not a failure
    std::printf("skip %s: configuration does not fit\n", label);
    --g_cases;
    return;
  }
  if (st != Status::kOk) {
    std::printf("FAIL %s: status %s\n", label, awq::status_string(st));
    ++g_fail;
    return;
  }
  std::vector<uint16_t> hy(size_t(c.m * c.n)), hyc(size_t(c.m * c.n));
  CK(cudaMemcpy(hy.data(), dy, hy.size() * 2, cudaMemcpyDeviceToHost));

  // determinism: a second launch into a fresh poison gives the same bits
  CK(cudaMemset(dy, 0xFF, size_t(c.m * c.n) * 2));
  if (launch() != Status::kOk) ++g_fail;
  CK(cudaStreamSynchronize(stream));
  std::vector<uint16_t> hy2(hy.size());
  CK(cudaMemcpy(hy2.data(), dy, hy2.size() * 2, cudaMemcpyDeviceToHost));
  const bool deterministic = std::memcmp(hy.data(), hy2.data(), hy.size() * 2) == 0;

  // fp64 reference with the dequantized weights
  std::vector<double> ref(size_t(c.m * c.n));
  std::vector<double> wrow_all(size_t(c.n * c.k));
  for (size_t i = 0; i < wrow_all.size(); ++i) wrow_all[i] = from_bits(hp.wdeq[i], c.dt);
  std::vector<double> xdbl(size_t(c.m * c.k));
  for (int64_t mm = 0; mm < c.m; ++mm)
    for (int64_t kk = 0; kk < c.k; ++kk)
      xdbl[size_t(mm * c.k + kk)] = from_bits(hx[size_t(c.x_offset + mm * xs + kk)], c.dt);
#pragma omp parallel for schedule(static)
  for (int64_t nn = 0; nn < c.n; ++nn) {
    for (int64_t mm = 0; mm < c.m; ++mm) {
      double acc = 0.0;
      const double* wr = &wrow_all[size_t(nn * c.k)];
      const double* xr = &xdbl[size_t(mm * c.k)];
      for (int64_t kk = 0; kk < c.k; ++kk) acc += xr[kk] * wr[kk];
      if (c.bias) acc += from_bits(hp.bias[size_t(nn)], c.dt);
      ref[size_t(mm * c.n + nn)] = acc;
    }
  }
  double num = 0, den = 0, numc = 0, maxabs = 0;
  int64_t nonfinite = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double v = from_bits(hy[i], c.dt);
    if (!std::isfinite(v)) ++nonfinite;
    num += (v - ref[i]) * (v - ref[i]);
    den += ref[i] * ref[i];
    maxabs = std::max(maxabs, std::fabs(v - ref[i]));
  }
  const double err = std::sqrt(num / std::max(den, 1e-30));
  double errc = -1;
  if (with_cublas) {
    // bias as C with beta = 1: one rounding of the fp32 result, like torch's addmm epilogue
    std::vector<uint16_t> y0(hyc.size(), 0);
    if (c.bias)
      for (size_t i = 0; i < y0.size(); ++i) y0[i] = hp.bias[i % size_t(c.n)];
    CK(cudaMemcpy(dyc, y0.data(), y0.size() * 2, cudaMemcpyHostToDevice));
    cublas_linear(h, c.dt, d.wdeq, dx, xs, dyc, c.m, c.n, c.k, c.bias ? 1.0f : 0.0f);
    CK(cudaDeviceSynchronize());
    CK(cudaMemcpy(hyc.data(), dyc, hyc.size() * 2, cudaMemcpyDeviceToHost));
    for (size_t i = 0; i < ref.size(); ++i) {
      const double v = from_bits(hyc[i], c.dt);
      numc += (v - ref[i]) * (v - ref[i]);
    }
    errc = std::sqrt(numc / std::max(den, 1e-30));
  }
  const double tol = with_cublas ? 2.0 * errc + 1e-6 : (c.dt == DType::kF16 ? 2e-3 : 1.5e-2);
  const bool ok = nonfinite == 0 && err <= tol && deterministic;
  if (!ok) ++g_fail;
  std::printf("%s %s: err %.3e  cublas %.3e  ratio %.2f  maxabs %.2e  nonfinite %ld  det %d\n", ok ? "ok  " : "FAIL",
              label, err, errc, errc > 0 ? err / errc : 0.0, maxabs, long(nonfinite), int(deterministic));
  cudaFree(dx_base);
  cudaFree(dy);
  cudaFree(dyc);
  cudaStreamDestroy(stream);
  DeviceProblem dd = d;
  dd.free_all();
}

static void check_suite(cublasHandle_t h, int sm_count) {
  std::printf("== correctness: int4_linear vs fp64 host reference (tolerance 2x cuBLAS error) ==\n");
  struct Shape { int64_t n, k; };
  // 14336 x 512: many rows whose 32-row grid may fill its last wave badly, so some M <= 8 take the 64-row tile
  // (111; on an H200 at g128 M 5..8, see stream_auto)
  const Shape shapes[] = {{512, 4096}, {1000, 576}, {192, 1536}, {4096, 4160}, {17, 256}, {300, 11008}, {14336, 512}};
  const int64_t ms[] = {1, 3, 7, 8, 9, 16, 17, 32};
  for (DType dt : {DType::kF16, DType::kBF16}) {
    for (int64_t g : {32, 64, 128}) {
      for (const Shape& s : shapes) {
        if (s.k % g != 0) continue;
        for (int64_t m : ms) {
          if (s.n * s.k > 4096 * 4096 && m != 1 && m != 16) continue;
          const bool bias = (m % 2) == 1;
          run_check({s.n, s.k, g, m, dt, bias, 0, 0, -1, 0}, h, sm_count, true, false);
        }
      }
    }
  }
  std::printf("-- streaming kernel: every candidate configuration, pdl on and off --\n");
  for (DType dt : {DType::kF16, DType::kBF16}) {
    for (int cfg : stream_cfgs(false, false)) {
      for (int64_t m : {1, 3, 8, 16}) {
        const int pdl = m % 2;
        run_check({1000, 576, 64, m, dt, true, 0, 0, cfg, 0, pdl}, h, sm_count, true, false);     // K tail, N tail
        run_check({200, 1056, 32, m, dt, false, 0, 0, cfg, 0, pdl}, h, sm_count, true, false);    // K tail
        run_check({512, 4096, 128, m, dt, m == 3, 0, 0, cfg, 0, pdl}, h, sm_count, true, false);
      }
      run_check({300, 11008, 128, 5, dt, true, 3, 1, cfg, 0, 1}, h, sm_count, true, false);       // misaligned x
      run_check({17, 256, 32, 20, dt, true, 0, 0, cfg, 0, 0}, h, sm_count, true, false);          // 2 block rows
    }
  }
  std::printf("-- register-pipelined GEMV (previous kernel), forced split-K --\n");
  for (DType dt : {DType::kF16, DType::kBF16}) {
    for (int split : {1, 2, 8}) {
      for (int64_t m : {1, 12}) {
        run_check({1000, 576, 64, m, dt, true, 0, 0, kOldCfg, split}, h, sm_count, true, false);
        run_check({512, 4096, 128, m, dt, false, 0, 0, kOldCfg, split}, h, sm_count, true, false);
      }
    }
  }
  std::printf("-- strided / misaligned x, CUDA graph --\n");
  for (DType dt : {DType::kF16, DType::kBF16}) {
    for (int64_t m : {1, 4, 16, 20}) {
      run_check({512, 4096, 128, m, dt, true, 8, 0, -1, 0}, h, sm_count, true, false);    // strided rows
      run_check({512, 4096, 128, m, dt, true, 3, 1, -1, 0}, h, sm_count, true, false);    // misaligned
      run_check({1000, 576, 32, m, dt, true, 0, 0, -1, 0}, h, sm_count, true, true);      // graph replay
      run_check({4096, 4096, 128, m, dt, false, 0, 0, 0, 0, 1}, h, sm_count, true, true);   // graph, PDL
    }
  }
  pdl_chain_check(sm_count);
  std::printf("correctness: %d / %d cases passed\n", g_cases - g_fail, g_cases);
}

// Programmatic dependent launch: a chain of square layers, each reading the previous layer's output as
// x, launched back to back (eagerly and as one CUDA graph) with PDL must give the same bits as the
// same chain without PDL (the kernel is deterministic), i.e. no layer read its x before it was written.
// Run with the library's choice (cfg 0, PDL on: the few-row configuration with its early trigger) and with
// the many-row configurations forced (48 / 71 / 111 / 73 with the library's late trigger, 71 also without
// the L2 prefetch) and the few-row ones with the late trigger (76, and the cluster pair 74).
static void pdl_chain_check(int sm_count) {
  constexpr int kLayers = 6;
  const int64_t n = 1024, m = 4;
  struct Mode {
    int cfg, pdl;
  };
  for (const Mode md : {Mode{0, 1}, Mode{48, 5}, Mode{71, 5}, Mode{71, 7}, Mode{111, 5}, Mode{76, 5}, Mode{73, 5}, Mode{74, 5}})
  for (DType dt : {DType::kF16, DType::kBF16}) {
    ++g_cases;
    std::vector<HostProblem> hps;
    std::vector<DeviceProblem> ds;
    for (int l = 0; l < kLayers; ++l) {
      hps.push_back(make_problem(n, n, 64, dt, 4242 + l, false));
      ds.push_back(upload_problem(hps.back()));
    }
    std::mt19937_64 rng(7);
    std::uniform_real_distribution<float> xd(-1.0f, 1.0f);
    std::vector<uint16_t> hx(size_t(m * n));
    for (auto& v : hx) v = to_bits(xd(rng), dt);
    std::vector<uint16_t*> act(kLayers + 1);
    for (auto& a : act) CK(cudaMalloc(&a, size_t(m * n) * 2));
    cudaStream_t stream;
    CK(cudaStreamCreate(&stream));
    auto chain = [&](int pdl) {
      bool ok = true;
      for (int l = 0; l < kLayers; ++l) {
        const awq::Int4LinearParams p = params(ds[size_t(l)], hps[size_t(l)], act[size_t(l)], m, n, act[size_t(l) + 1], true, sm_count);
        ok = awq::cuda::detail::int4_gemv_stream(p, stream, md.cfg, pdl) == Status::kOk && ok;
      }
      return ok;
    };
    auto run = [&](int pdl, bool graph, std::vector<uint16_t>& out) {
      CK(cudaMemcpy(act[0], hx.data(), hx.size() * 2, cudaMemcpyHostToDevice));
      for (int l = 1; l <= kLayers; ++l) CK(cudaMemset(act[size_t(l)], 0xFF, size_t(m * n) * 2));
      bool ok;
      if (graph) {
        cudaGraph_t gr;
        cudaGraphExec_t ex;
        CK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
        ok = chain(pdl);
        CK(cudaStreamEndCapture(stream, &gr));
        CK(cudaGraphInstantiate(&ex, gr, 0));
        for (int r = 0; r < 3; ++r) CK(cudaGraphLaunch(ex, stream));
        CK(cudaStreamSynchronize(stream));
        cudaGraphExecDestroy(ex);
        cudaGraphDestroy(gr);
      } else {
        ok = chain(pdl);
      }
      CK(cudaStreamSynchronize(stream));
      CK(cudaGetLastError());
      out.resize(hx.size());
      CK(cudaMemcpy(out.data(), act[kLayers], out.size() * 2, cudaMemcpyDeviceToHost));
      return ok;
    };
    std::vector<uint16_t> ref, eager, graph;
    bool ok = run(0, false, ref) && run(md.pdl, false, eager) && run(md.pdl, true, graph);
    int64_t nonfinite = 0;
    for (uint16_t v : ref) nonfinite += !std::isfinite(from_bits(v, dt));
    ok = ok && nonfinite == 0 && std::memcmp(ref.data(), eager.data(), ref.size() * 2) == 0 &&
         std::memcmp(ref.data(), graph.data(), ref.size() * 2) == 0;
    if (!ok) ++g_fail;
    std::printf("%s %s PDL chain of %d layers %ldx%ld M=%ld cfg %d pdl mode %d: eager and graph bitwise equal to no-PDL "
                "(nonfinite %ld)\n", ok ? "ok  " : "FAIL", dt_name(dt), kLayers, long(n), long(n), long(m), md.cfg, md.pdl,
                long(nonfinite));
    for (auto& a : act) cudaFree(a);
    for (auto& d : ds) d.free_all();
    cudaStreamDestroy(stream);
  }
}

static void sanitize_suite(int sm_count) {
  std::printf("== sanitize: small cases, no cuBLAS ==\n");
  run_check({192, 1536, 64, 1, DType::kF16, true, 0, 0, -1, 0}, nullptr, sm_count, false, false);
  run_check({1000, 576, 32, 7, DType::kBF16, false, 0, 0, kOldCfg, 8}, nullptr, sm_count, false, false);
  run_check({17, 256, 128, 16, DType::kF16, true, 3, 1, kOldCfg, 2}, nullptr, sm_count, false, false);
  run_check({300, 1536, 128, 20, DType::kF16, true, 0, 0, -1, 0}, nullptr, sm_count, false, false);
  run_check({512, 4096, 128, 12, DType::kBF16, true, 0, 0, kOldCfg, 8}, nullptr, sm_count, false, false);
  for (int cfg : stream_cfgs(false, false)) {
    run_check({200, 1056, 32, 3, DType::kF16, true, 0, 0, cfg, 0, 1}, nullptr, sm_count, false, false);
    run_check({70, 576, 64, 16, DType::kBF16, false, 3, 1, cfg, 0, 0}, nullptr, sm_count, false, false);
  }
  pdl_chain_check(sm_count);
  std::printf("sanitize: %d / %d cases passed\n", g_cases - g_fail, g_cases);
}

// ---- timing ----------------------------------------------------------------------------------------
// Captures `calls` launches (launch(i) for i = 0..calls-1) in one graph, replays it `reps` times,
// each replay timed with events; returns the median time per call in microseconds.
static double time_graph(cudaStream_t stream, int calls, int reps, const std::function<bool(int)>& launch) {
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  CK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  bool ok = true;
  for (int i = 0; i < calls; ++i) ok = launch(i) && ok;
  CK(cudaStreamEndCapture(stream, &graph));
  if (!ok) {
    cudaGraphDestroy(graph);
    return -1.0;
  }
  CK(cudaGraphInstantiate(&exec, graph, 0));
  cudaEvent_t e0, e1;
  CK(cudaEventCreate(&e0));
  CK(cudaEventCreate(&e1));
  for (int w = 0; w < 2; ++w) CK(cudaGraphLaunch(exec, stream));
  std::vector<float> ts;
  for (int r = 0; r < reps; ++r) {
    CK(cudaEventRecord(e0, stream));
    CK(cudaGraphLaunch(exec, stream));
    CK(cudaEventRecord(e1, stream));
    CK(cudaEventSynchronize(e1));
    float ms = 0;
    CK(cudaEventElapsedTime(&ms, e0, e1));
    ts.push_back(ms);
  }
  CK(cudaGetLastError());
  std::sort(ts.begin(), ts.end());
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  return 1000.0 * ts[ts.size() / 2] / calls;
}

__global__ void copy_kernel(const uint4* __restrict__ src, uint4* __restrict__ dst, size_t n) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) dst[i] = src[i];
}

// Read-only stream of up to three buffers a, b, c (na, nb, nc 16-byte units), U independent loads in
// flight per thread, folded into one word that is stored only if it equals a constant (so the loads
// stay, with no store traffic). Used for the 1 GiB read ceiling and for each problem's read floor:
// qweight, scales and zeros read once (the bytes every W4A16 kernel must read; x and y are < 0.6 % of
// them at M <= 16), the fastest of a few grid shapes, timed like the kernels, launch gaps and DRAM
// ramp included: a practical floor for a kernel that only reads them.
template <int U>
__global__ void read3_kernel(const uint4* __restrict__ a, size_t na, const uint4* __restrict__ b, size_t nb,
                             const uint4* __restrict__ c, size_t nc, uint32_t* __restrict__ sink) {
  const size_t total = na + nb + nc, stride = size_t(gridDim.x) * blockDim.x;
  uint32_t acc = 0;
  for (size_t i0 = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i0 < total; i0 += stride * U) {
    uint4 v[U];
#pragma unroll
    for (int j = 0; j < U; ++j) {
      const size_t i = i0 + j * stride;
      v[j] = i < na ? __ldg(a + i) : i < na + nb ? __ldg(b + (i - na)) : i < total ? __ldg(c + (i - na - nb)) : make_uint4(0, 0, 0, 0);
    }
#pragma unroll
    for (int j = 0; j < U; ++j) acc ^= v[j].x ^ v[j].y ^ v[j].z ^ v[j].w;
  }
  if (acc == 0x9E3779B9u) sink[0] = acc;
}
__global__ void empty_kernel() {}

// Device-to-device copy of 1 GiB, bytes read + written per second: with a plain 16-byte copy kernel
// (what an SM-driven stream reaches) and with cudaMemcpyAsync, which goes through the copy engines
// and reads low (2.77 TB/s on an H200 whose cuBLAS fp16 GEMV read 4.3 TB/s in the same run).
static void copy_bandwidth(cudaStream_t stream, int sm_count, double* kernel_bw, double* memcpy_bw, double* read_bw) {
  const size_t bytes = size_t(1) << 30;
  void *a, *b;
  CK(cudaMalloc(&a, bytes));
  CK(cudaMalloc(&b, bytes));
  CK(cudaMemset(a, 1, bytes));
  const double us_k = time_graph(stream, 4, 10, [&](int) {
    copy_kernel<<<sm_count * 8, 512, 0, stream>>>(static_cast<const uint4*>(a), static_cast<uint4*>(b), bytes / 16);
    return cudaGetLastError() == cudaSuccess;
  });
  const double us_m = time_graph(stream, 4, 10, [&](int) { return cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, stream) == cudaSuccess; });
  const double us_r = time_graph(stream, 4, 10, [&](int i) {
    // alternate the two buffers so no read hits L2 from the previous call
    read3_kernel<1><<<sm_count * 8, 512, 0, stream>>>(static_cast<const uint4*>(i % 2 ? a : b), bytes / 16, nullptr, 0,
                                                       nullptr, 0, static_cast<uint32_t*>(i % 2 ? b : a));
    return cudaGetLastError() == cudaSuccess;
  });
  *read_bw = double(bytes) / (us_r * 1e-6);
  cudaFree(a);
  cudaFree(b);
  *kernel_bw = 2.0 * double(bytes) / (us_k * 1e-6);
  *memcpy_bw = 2.0 * double(bytes) / (us_m * 1e-6);
}

struct BenchRow {
  int64_t n, k, m;
  double ours, nopdl, old, cublas, best, floor;
  std::string best_cfg;
  double bytes;
};

static std::vector<int64_t> parse_list(const char* s) {
  std::vector<int64_t> v;
  std::string str(s);
  size_t pos = 0;
  while (pos < str.size()) {
    size_t e = str.find(',', pos);
    if (e == std::string::npos) e = str.size();
    v.push_back(std::atoll(str.substr(pos, e - pos).c_str()));
    pos = e + 1;
  }
  return v;
}

int main(int argc, char** argv) {
  bool do_check = false, do_bench = false, do_sweep = false, do_sanitize = false;
  std::vector<DType> dts = {DType::kF16};
  int64_t group = 128;
  std::vector<int64_t> ms = {1, 2, 4, 8, 16, 32, 64, 256, 1024, 4096, 8192};
  const char* out_path = nullptr;
  int64_t one_n = 0, one_k = 0, one_m = 0;
  int one_cfg = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--check") do_check = true;
    else if (a == "--bench") do_bench = true;
    else if (a == "--sweep") do_sweep = do_bench = true;
    else if (a == "--sanitize") do_sanitize = true;
    else if (a == "--dtype" && i + 1 < argc) {
      const std::string v = argv[++i];
      dts = v == "bf16" ? std::vector<DType>{DType::kBF16}
                        : v == "both" ? std::vector<DType>{DType::kF16, DType::kBF16} : std::vector<DType>{DType::kF16};
    } else if (a == "--group" && i + 1 < argc) group = std::atoll(argv[++i]);
    else if (a == "--m" && i + 1 < argc) ms = parse_list(argv[++i]);
    else if (a == "--out" && i + 1 < argc) out_path = argv[++i];
    else if (a == "--cfgs" && i + 1 < argc) {
      for (int64_t c : parse_list(argv[++i])) g_sweep_only.push_back(int(c));
    }
    else if (a == "--pdl-modes" && i + 1 < argc) {
      for (int64_t c : parse_list(argv[++i])) g_pdl_modes.push_back(int(c));
    }
    else if (a == "--one" && i + 4 < argc) {
      // --one N K M cfg: two launches of one configuration (fp16, g128), for a profiler
      one_n = std::atoll(argv[++i]);
      one_k = std::atoll(argv[++i]);
      one_m = std::atoll(argv[++i]);
      one_cfg = std::atoi(argv[++i]);
    }
    else {
      std::fprintf(stderr, "unknown argument %s\n", a.c_str());
      return 2;
    }
  }
  if (one_n > 0) {
    int dev0 = 0;
    CK(cudaGetDevice(&dev0));
    int sms = 0;
    CK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev0));
    const HostProblem hp = make_problem(one_n, one_k, 128, DType::kF16, 3, false);
    const DeviceProblem d = upload_problem(hp);
    std::vector<uint16_t> hx(size_t(one_m * one_k), to_bits(0.5f, DType::kF16));
    for (size_t i = 0; i < hx.size(); ++i) hx[i] = to_bits(float(int(i % 7) - 3) * 0.25f, DType::kF16);
    uint16_t* dx = upload(hx);
    uint16_t* dy;
    CK(cudaMalloc(&dy, size_t(one_m * one_n) * 2));
    const awq::Int4LinearParams p = params(d, hp, dx, one_m, one_k, dy, false, sms);
    for (int r = 0; r < 2; ++r) {
      const Status st = one_cfg >= kOldCfg ? awq::cuda::detail::int4_gemv(p, nullptr, 0, 0, nullptr)
                                           : awq::cuda::detail::int4_gemv_stream(p, nullptr, one_cfg, 0);
      if (st != Status::kOk) return 1;
    }
    CK(cudaDeviceSynchronize());
    std::printf("one: N=%ld K=%ld M=%ld cfg=%d done\n", long(one_n), long(one_k), long(one_m), one_cfg);
    return 0;
  }
  if (!do_check && !do_bench && !do_sanitize) do_check = do_bench = true;

  cudaDeviceProp prop;
  int dev = 0;
  CK(cudaGetDevice(&dev));
  CK(cudaGetDeviceProperties(&prop, dev));
  const int sm_count = prop.multiProcessorCount;
  char date[64];
  const std::time_t now = std::time(nullptr);
  std::strftime(date, sizeof(date), "%Y-%m-%d %H:%M UTC", std::gmtime(&now));
  int rt = 0;
  cudaRuntimeGetVersion(&rt);
  std::printf("device: %s, %d SMs, L2 %d MB, CUDA runtime %d, %s\n", prop.name, sm_count, prop.l2CacheSize >> 20, rt, date);

  if (do_sanitize) sanitize_suite(sm_count);
  cublasHandle_t h = nullptr;
  if (do_check || do_bench) CB(cublasCreate(&h));
  if (do_check) check_suite(h, sm_count);
  if (!do_bench) return g_fail ? 1 : 0;

  cudaStream_t stream;
  CK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  CB(cublasSetStream(h, stream));
  // cuBLAS workspace set up front so graph capture does not allocate
  void* cublas_ws = nullptr;
  CK(cudaMalloc(&cublas_ws, 64 << 20));
  CB(cublasSetWorkspace(h, cublas_ws, 64 << 20));
  double copy_bw = 0, memcpy_bw = 0, read_bw = 0;
  copy_bandwidth(stream, sm_count, &copy_bw, &memcpy_bw, &read_bw);
  std::printf("device-to-device copy (bytes read + written): copy kernel %.0f GB/s, cudaMemcpyAsync %.0f GB/s; "
              "read-only kernel %.0f GB/s\n", copy_bw / 1e9, memcpy_bw / 1e9, read_bw / 1e9);

  struct Shape { int64_t n, k; };
  const Shape shapes[] = {{4096, 4096}, {11008, 4096}, {4096, 11008}, {14336, 4096}, {4096, 14336}, {28672, 8192}};
  const double l2 = double(prop.l2CacheSize);
  const int64_t max_m = *std::max_element(ms.begin(), ms.end());

  for (DType dt : dts) {
    std::vector<BenchRow> rows;
    std::printf("== benchmark %s, group %ld: int4_linear vs cuBLAS %s (graph of calls rotating weight copies, median) ==\n",
                dt_name(dt), long(group), dt_name(dt));
    for (const Shape& s : shapes) {
      const HostProblem hp = make_problem(s.n, s.k, group, dt, 77 + s.n + s.k, false);
      const double int4_bytes = double(s.n) * s.k / 2 + double(s.n) * (s.k / group) * 3;
      const double fp_bytes = double(s.n) * s.k * 2;
      const int copies_q = int(std::max(2.0, std::ceil(4 * l2 / int4_bytes)));
      const int copies_f = int(std::max(2.0, std::ceil(4 * l2 / fp_bytes)));
      std::vector<DeviceProblem> dq(static_cast<size_t>(copies_q));
      for (auto& d : dq) d = upload_problem(hp);
      std::vector<void*> dw(static_cast<size_t>(copies_f), nullptr);
      for (size_t i = 0; i < dw.size(); ++i) {
        CK(cudaMalloc(&dw[i], size_t(fp_bytes)));
        fill_random<<<1024, 256>>>(static_cast<uint16_t*>(dw[i]), size_t(s.n * s.k), uint32_t(i + 1), dt == DType::kBF16);
        CK(cudaGetLastError());
      }
      CK(cudaDeviceSynchronize());
      std::mt19937_64 rng(5);
      std::uniform_real_distribution<float> xd(-1.0f, 1.0f);
      std::vector<uint16_t> hx(size_t(max_m * s.k));
      for (auto& v : hx) v = to_bits(xd(rng), dt);
      uint16_t* dx = upload(hx);
      uint16_t* dy;
      CK(cudaMalloc(&dy, size_t(max_m * s.n) * 2));
      // the shape's streaming floor: fastest read3_kernel over the same rotated copies
      double t_floor = 1e30;
      std::string floor_cfg;
      {
        uint32_t* sink;
        CK(cudaMalloc(&sink, 16));
        const size_t nq = size_t(s.n * s.k / 2) / 16, ns = size_t(s.n * (s.k / group) * 2) / 16,
                     nz = size_t(s.n * (s.k / group)) / 16;
        const int calls = copies_q * 2;
        for (int bps : {1, 2, 4}) {
          for (int u : {2, 4, 8}) {
            const double t = time_graph(stream, calls, 15, [&](int i) {
              const DeviceProblem& d = dq[size_t(i % copies_q)];
              const uint4* q = reinterpret_cast<const uint4*>(d.qweight);
              const uint4* sc = reinterpret_cast<const uint4*>(d.scales);
              const uint4* z = reinterpret_cast<const uint4*>(d.zeros);
              const dim3 grid(unsigned(sm_count * bps));
              if (u == 2) read3_kernel<2><<<grid, 512, 0, stream>>>(q, nq, sc, ns, z, nz, sink);
              else if (u == 4) read3_kernel<4><<<grid, 512, 0, stream>>>(q, nq, sc, ns, z, nz, sink);
              else read3_kernel<8><<<grid, 512, 0, stream>>>(q, nq, sc, ns, z, nz, sink);
              return cudaGetLastError() == cudaSuccess;
            });
            std::printf("   floor N=%ld K=%ld read3 %d blocks/SM x 512, %d loads in flight: %.2f us\n", long(s.n), long(s.k),
                        bps, u, t);
            if (t > 0 && t < t_floor) {
              t_floor = t;
              floor_cfg = std::to_string(bps) + "x512 u" + std::to_string(u);
            }
          }
        }
        const double t_empty = time_graph(stream, calls, 15, [&](int) {
          empty_kernel<<<1, 32, 0, stream>>>();
          return cudaGetLastError() == cudaSuccess;
        });
        std::printf("   floor N=%ld K=%ld: %.2f us (%s, %.0f GB/s); empty kernel %.2f us per call\n", long(s.n), long(s.k),
                    t_floor, floor_cfg.c_str(), int4_bytes / (t_floor * 1e-6) / 1e9, t_empty);
        cudaFree(sink);
      }

      for (int64_t m : ms) {
        const int calls = std::max(copies_q, copies_f) * 2;
        const int reps = 15;
        // kind 0: int4_linear as the library runs it; 1: int4_gemv_stream(cfg, pdl); 2: previous GEMV
        auto run_fn = [&](int kind, int cfg, int pdl) {
          return [&, kind, cfg, pdl](int i) {
            const DeviceProblem& d = dq[size_t(i % copies_q)];
            const awq::Int4LinearParams p = params(d, hp, dx, m, s.k, dy, false, sm_count);
            const Status st = kind == 0   ? awq::cuda::int4_linear(p, stream)
                              : kind == 1 ? awq::cuda::detail::int4_gemv_stream(p, stream, cfg, pdl)
                                          : awq::cuda::detail::int4_gemv(p, stream, 0, 0, nullptr);
            return st == Status::kOk;
          };
        };
        const double t_ours = time_graph(stream, calls, reps, run_fn(0, 0, -1));
        const double t_nopdl = m <= 16 ? time_graph(stream, calls, reps, run_fn(1, 0, 0)) : -1.0;
        const double t_old = m <= 16 ? time_graph(stream, calls, reps, run_fn(2, 0, 0)) : -1.0;
        const double t_cub = time_graph(stream, calls, reps, [&](int i) {
          cublas_linear(h, dt, dw[size_t(i % copies_f)], dx, s.k, dy, m, s.n, s.k);
          return true;
        });
        double best = t_ours;
        std::string best_cfg = "default";
        if (do_sweep && m <= 16) {
          // every streaming configuration for this M class, without PDL; the fastest is then timed
          // with PDL too
          const std::vector<int> cfgs = m <= 8 ? stream_cfgs(true, false) : stream_cfgs(false, true);
          double best_np = 1e30;
          int best_np_cfg = 0;
          for (int cfg : cfgs) {
            const double t = time_graph(stream, calls, reps, run_fn(1, cfg, 0));
            if (t <= 0) continue;
            std::printf("   sweep N=%ld K=%ld M=%ld cfg%d: %.2f us\n", long(s.n), long(s.k), long(m), cfg, t);
            for (int mode : g_pdl_modes) {
              const double tm2 = time_graph(stream, calls, reps, run_fn(1, cfg, mode));
              if (tm2 <= 0) continue;
              std::printf("   sweep N=%ld K=%ld M=%ld cfg%d pdl-mode %d: %.2f us\n", long(s.n), long(s.k), long(m), cfg, mode, tm2);
            }
            if (t < best_np) {
              best_np = t;
              best_np_cfg = cfg;
            }
          }
          if (best_np_cfg > 0) {
            const double t = time_graph(stream, calls, reps, run_fn(1, best_np_cfg, 1));
            std::printf("   sweep N=%ld K=%ld M=%ld cfg%d+pdl: %.2f us\n", long(s.n), long(s.k), long(m), best_np_cfg, t);
            char name[32];
            std::snprintf(name, sizeof(name), "cfg%d %.1f/pdl %.1f", best_np_cfg, best_np, t);
            best = std::min(best_np, t);
            best_cfg = name;
          }
        }
        const double bytes = int4_bytes + double(m) * s.k * 2 + double(m) * s.n * 2;
        rows.push_back({s.n, s.k, m, t_ours, t_nopdl, t_old, t_cub, best, t_floor, best_cfg, bytes});
        std::printf("N=%-6ld K=%-6ld M=%-5ld ours %8.2f us (no PDL %8.2f, previous %8.2f)  cuBLAS %8.2f us  speedup %5.2fx  %6.0f GB/s  %5.1f%% of copy\n",
                    long(s.n), long(s.k), long(m), t_ours, t_nopdl, t_old, t_cub, t_ours > 0 ? t_cub / t_ours : 0.0,
                    t_ours > 0 ? bytes / (t_ours * 1e-6) / 1e9 : 0.0, t_ours > 0 ? 100.0 * bytes / (t_ours * 1e-6) / copy_bw : 0.0);
        std::fflush(stdout);
      }
      for (auto& d : dq) d.free_all();
      for (auto& w : dw) cudaFree(w);
      cudaFree(dx);
      cudaFree(dy);
    }

    // summary table (markdown) + geo-means per M
    std::string md;
    char line[512];
    std::snprintf(line, sizeof(line), "\n### %s, group %ld, %s, %s\n\ncopy kernel bandwidth %.0f GB/s (read + write; %% copy BW below), read-only kernel %.0f GB/s\n\n",
                  dt_name(dt), long(group), prop.name, date, copy_bw / 1e9, read_bw / 1e9);
    md += line;
    md += "| N x K | M | int4_linear us | no PDL us | previous GEMV us | cuBLAS us | speedup | speedup no PDL | GB/s | % copy BW | read floor us | floor / ours | best sweep (cfg no-PDL/PDL us) |\n";
    md += "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
    for (const BenchRow& r : rows) {
      if (r.ours < 0) {
        std::snprintf(line, sizeof(line), "| %ld x %ld | %ld | unsupported | %.1f | - | - | - | - |\n", long(r.n),
                      long(r.k), long(r.m), r.cublas);
      } else {
        std::snprintf(line, sizeof(line), "| %ld x %ld | %ld | %.1f | %.1f | %.1f | %.1f | %.2fx | %.2fx | %.0f | %.1f | %.1f | %.0f %% | %s |\n",
                      long(r.n), long(r.k), long(r.m), r.ours, r.nopdl, r.old, r.cublas, r.cublas / r.ours,
                      r.nopdl > 0 ? r.cublas / r.nopdl : 0.0, r.bytes / (r.ours * 1e-6) / 1e9,
                      100.0 * r.bytes / (r.ours * 1e-6) / copy_bw, r.floor, 100.0 * r.floor / r.ours, r.best_cfg.c_str());
      }
      md += line;
    }
    md += "\n| M | geo-mean speedup over the 6 shapes | without PDL | previous GEMV | read floor (fastest plain read of the same bytes) |\n|---|---|---|---|---|\n";
    for (int64_t m : ms) {
      double lg = 0, lg_np = 0, lg_old = 0, lg_fl = 0;
      int cnt = 0, cnt_np = 0;
      for (const BenchRow& r : rows)
        if (r.m == m && r.ours > 0) {
          lg += std::log(r.cublas / r.ours);
          lg_fl += std::log(r.cublas / r.floor);
          ++cnt;
          if (r.nopdl > 0 && r.old > 0) {
            lg_np += std::log(r.cublas / r.nopdl);
            lg_old += std::log(r.cublas / r.old);
            ++cnt_np;
          }
        }
      if (cnt == 6) {
        if (cnt_np == 6) {
          std::snprintf(line, sizeof(line), "| %ld | %.2fx | %.2fx | %.2fx | %.2fx |\n", long(m), std::exp(lg / cnt),
                        std::exp(lg_np / cnt), std::exp(lg_old / cnt), std::exp(lg_fl / cnt));
        } else {
          std::snprintf(line, sizeof(line), "| %ld | %.2fx | - | - | %.2fx |\n", long(m), std::exp(lg / cnt), std::exp(lg_fl / cnt));
        }
        md += line;
      }
    }
    std::printf("%s", md.c_str());
    if (out_path) {
      FILE* f = std::fopen(out_path, "a");
      if (f) {
        std::fputs(md.c_str(), f);
        std::fclose(f);
      }
    }
  }
  return g_fail ? 1 : 0;
}
