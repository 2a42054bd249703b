// Standalone check + benchmark of the tensor-core INT4 GEMMs: the mma.sync kernel
// (csrc/kernels/cuda/int4_gemm.cu) and the Hopper wgmma kernel (int4_gemm_sm90.cu).
// Links the torch-free core and cuBLAS only.
//
//   nvcc -O3 -std=c++17 -Icsrc/include -Icsrc/kernels/cuda -gencode arch=compute_90a,code=sm_90a \
//        csrc/kernels/cuda/int4_gemm.cu csrc/kernels/cuda/int4_gemm_sm90.cu bench/cpp/bench_gemm.cu \
//        -lcublas -o bench_gemm
//   bench_gemm --check      correctness vs an fp64 host reference (random data, poisoned outputs)
//   bench_gemm --sanitize   a small subset of --check, for compute-sanitizer
//   bench_gemm --bench      timing vs cuBLAS fp16/bf16 on six LLM layer shapes (add --tune to time
//                           every wgmma configuration and split count; with -DAWQ_GEMM_TUNING also
//                           every mma.sync tile)
//   bench_gemm --one=N,K,M,cfg,splits   three calls of one problem (fp16, g = 128) for ncu; cfg -1
//                           is the dispatcher, 0.. a forced wgmma configuration; splits 0 automatic,
//                           -1 stream-K (configurations 1, 4, 6, 7)
//   bench_gemm --soak=N,K,M,seconds[,cfg]   the INT4 GEMM, cuBLAS fp16 and dequantize + cuBLAS, each
//                           called back to back for that long (sustained load: clocks under the power
//                           cap; wall-clock phase bounds printed for nvidia-smi sampling, gemm_soak.sh)
//   --ms=64,256   --dtypes=fp16   restrict the benchmark's token counts and dtypes
//   --shapes=4096x4096,28672x8192  --cfgs=1,2  --splits=0,1,-1   restrict the shapes (an N x K outside
//                           the six is added: N % 64 == 0, K % 128 == 0), and --tune's
//                           configurations and split counts (splits default: all, but <= 2 at M >= 1024)
//
// Accuracy rule (as the python tests): ||y - ref|| / ||ref|| <= 2 x the same error of cuBLAS at
// the same dtype on the dequantized weights, ref in fp64. One-hot inputs check the fused
// dequantization bit for bit (y[m, n] = W[n, k_m] exactly).
// Timing: CUDA graphs of R calls, each call on another copy of the weights (>= 4x L2 in all),
// CUDA events around each replay, median over replays divided by R.
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "awq/core.h"
#include "awq/layout.h"
#include "awq/quant_math.h"
#include "int4_gemm.h"

namespace awq {
namespace cuda {
namespace detail {
// Defined in int4_gemm.cu: forced tile (-1 auto) and split count (0 auto).
Status int4_gemm_with_config(const Int4LinearParams& p, cudaStream_t stream, int tile, int splits);
}  // namespace detail
}  // namespace cuda
}  // namespace awq

using awq::DType;
using awq::Status;

// Smallest scratch the benchmark hands the GEMMs: stream-K's partial tiles need up to ~17 MB on an
// H200 whatever M and N (a forced plan that does not fit is refused).
constexpr int64_t kMinWorkspaceBytes = int64_t(32) << 20;

#define CK(call)                                                                                  \
  do {                                                                                            \
    cudaError_t e_ = (call);                                                                      \
    if (e_ != cudaSuccess) {                                                                      \
      std::fprintf(stderr, "%s:%d CUDA error %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_)); \
      std::exit(2);                                                                               \
    }                                                                                             \
  } while (0)
#define CKB(call)                                                                       \
  do {                                                                                  \
    cublasStatus_t s_ = (call);                                                         \
    if (s_ != CUBLAS_STATUS_SUCCESS) {                                                  \
      std::fprintf(stderr, "%s:%d cuBLAS error %d: %s\n", __FILE__, __LINE__, int(s_), #call); \
      std::exit(2);                                                                     \
    }                                                                                   \
  } while (0)

namespace {

#ifdef AWQ_GEMM_TUNING
constexpr int kNumTiles = 9;
const char* kTileNames[kNumTiles] = {"32x128", "64x128", "128x128", "64x256", "128x256",
                                     "128x128s3", "256x128", "32x128k2", "64x128k2"};
#else
constexpr int kNumTiles = 3;
const char* kTileNames[kNumTiles] = {"32x128", "64x128", "128x128"};
#endif

float to_f(uint16_t v, DType dt) { return dt == DType::kF16 ? awq::half_to_float(v) : awq::bf16_to_float(v); }
uint16_t from_f(float v, DType dt) { return dt == DType::kF16 ? awq::float_to_half(v) : awq::float_to_bf16(v); }
cudaDataType_t cu_type(DType dt) { return dt == DType::kF16 ? CUDA_R_16F : CUDA_R_16BF; }
const char* dt_name(DType dt) { return dt == DType::kF16 ? "fp16" : "bf16"; }

// ---- host problem ------------------------------------------------------------------------------
struct Problem {
  int m, n, k, g;
  DType dt;
  bool bias;
  std::vector<uint16_t> x, scales, b;
  std::vector<uint8_t> zeros;
  std::vector<uint32_t> qw;
  std::vector<float> w;  // dequantized weights [n, k], exactly representable in dt
};

Problem make_problem(int m, int n, int k, int g, DType dt, bool bias, uint64_t seed, bool one_hot = false) {
  Problem p{m, n, k, g, dt, bias};
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> code(0, 15);
  std::uniform_real_distribution<float> unif(-1.f, 1.f), sdist(1.f / 256.f, 1.f / 32.f);
  const int groups = k / g;
  p.scales.resize(size_t(n) * groups);
  p.zeros.resize(size_t(n) * groups);
  for (auto& s : p.scales) s = from_f(sdist(rng), dt);
  for (auto& z : p.zeros) z = uint8_t(code(rng));
  p.qw.resize(size_t(n) * k / 8);
  p.w.resize(size_t(n) * k);
  for (int r = 0; r < n; ++r)
    for (int j = 0; j < k / 8; ++j) {
      uint8_t c[8];
      for (int e = 0; e < 8; ++e) c[e] = uint8_t(code(rng));
      p.qw[size_t(r) * (k / 8) + j] = awq::pack8(c);
      for (int e = 0; e < 8; ++e) {
        const int kk = j * 8 + e, grp = kk / g;
        const float s = to_f(p.scales[size_t(r) * groups + grp], dt);
        const float z = float(p.zeros[size_t(r) * groups + grp]);
        p.w[size_t(r) * k + kk] = awq::round_to_host((float(c[e]) - z) * s, dt);
      }
    }
  p.x.resize(size_t(m) * k);
  if (one_hot) {
    std::uniform_int_distribution<int> col(0, k - 1);
    std::fill(p.x.begin(), p.x.end(), from_f(0.f, dt));
    for (int r = 0; r < m; ++r) p.x[size_t(r) * k + col(rng)] = from_f(1.f, dt);
  } else {
    for (auto& v : p.x) v = from_f(unif(rng), dt);
  }
  p.b.resize(n);
  for (auto& v : p.b) v = from_f(unif(rng) * 0.5f, dt);
  return p;
}

std::vector<double> host_reference(const Problem& p) {
  std::vector<double> y(size_t(p.m) * p.n);
  std::vector<float> xf(size_t(p.m) * p.k);
  for (size_t i = 0; i < xf.size(); ++i) xf[i] = to_f(p.x[i], p.dt);
  const int nth = std::max(1u, std::min(16u, std::thread::hardware_concurrency()));
  std::vector<std::thread> th;
  for (int t = 0; t < nth; ++t)
    th.emplace_back([&, t] {
      for (int r = t; r < p.m; r += nth)
        for (int c = 0; c < p.n; ++c) {
          double s = p.bias ? double(to_f(p.b[c], p.dt)) : 0.0;
          const float* xr = &xf[size_t(r) * p.k];
          const float* wr = &p.w[size_t(c) * p.k];
          for (int kk = 0; kk < p.k; ++kk) s += double(xr[kk]) * double(wr[kk]);
          y[size_t(r) * p.n + c] = s;
        }
    });
  for (auto& t : th) t.join();
  return y;
}

template <typename V>
V* dev_upload(const std::vector<V>& h) {
  V* d = nullptr;
  CK(cudaMalloc(&d, std::max<size_t>(16, h.size() * sizeof(V))));
  if (!h.empty()) CK(cudaMemcpy(d, h.data(), h.size() * sizeof(V), cudaMemcpyHostToDevice));
  return d;
}

struct DevProblem {
  uint16_t *x = nullptr, *scales = nullptr, *b = nullptr, *y = nullptr, *w = nullptr;
  uint8_t* zeros = nullptr;
  uint32_t* qw = nullptr;
  float* ws = nullptr;
  int64_t ws_bytes = 0;
  explicit DevProblem(const Problem& p) {
    x = dev_upload(p.x);
    scales = dev_upload(p.scales);
    b = dev_upload(p.b);
    zeros = dev_upload(p.zeros);
    qw = dev_upload(p.qw);
    std::vector<uint16_t> wt(p.w.size());
    for (size_t i = 0; i < wt.size(); ++i) wt[i] = from_f(p.w[i], p.dt);
    w = dev_upload(wt);
    CK(cudaMalloc(&y, size_t(p.m) * p.n * 2 + 16));  // + room for g_y_shift
    // split-K planes, or the stream-K CTAs' partial tiles
    ws_bytes = std::max(int64_t(16) * p.m * p.n * 4, kMinWorkspaceBytes);
    CK(cudaMalloc(&ws, ws_bytes));
  }
  ~DevProblem() {
    cudaFree(x); cudaFree(scales); cudaFree(b); cudaFree(zeros); cudaFree(qw); cudaFree(w); cudaFree(y); cudaFree(ws);
  }
};

// Elements by which the checks shift y off its 256-byte-aligned allocation: 2 leaves it 4-byte aligned
// only, so the wgmma kernel's direct (unstaged) epilogue runs.
int g_y_shift = 0;

awq::Int4LinearParams params_of(const Problem& p, const DevProblem& d, int sm_count) {
  awq::Int4LinearParams q;
  q.x = d.x;
  q.qweight = reinterpret_cast<const int32_t*>(d.qw);
  q.scales = d.scales;
  q.zeros = d.zeros;
  q.bias = p.bias ? d.b : nullptr;
  q.y = d.y + g_y_shift;
  q.dtype = p.dt;
  q.m = p.m;
  q.n = p.n;
  q.k = p.k;
  q.x_stride = p.k;
  q.group_size = p.g;
  q.workspace = d.ws;
  q.workspace_bytes = d.ws_bytes;
  q.sm_count = sm_count;
  return q;
}

double rel_err(const std::vector<uint16_t>& y, const std::vector<double>& ref, DType dt, bool* finite) {
  double num = 0, den = 0;
  *finite = true;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double v = to_f(y[i], dt);
    if (!std::isfinite(v)) *finite = false;
    num += (v - ref[i]) * (v - ref[i]);
    den += ref[i] * ref[i];
  }
  return std::sqrt(num / std::max(den, 1e-300));
}

int g_failures = 0;
int g_wgmma_checks = 0;  // cases the wgmma kernel ran (0 on GPUs other than sm_90)
int g_sm_count = 0;

std::string tile_name(int tile) {
  if (tile == -2) return "dispatch";
  if (tile == -1) return "auto";
  if (tile < kNumTiles) return kTileNames[tile];
  return "wg" + std::to_string(tile - kNumTiles);
}
cublasHandle_t g_cublas;

// y [m, n] = x [m, k] @ w [n, k]^T at dtype, fp32 accumulation (what torch.matmul does)
void cublas_linear(const void* x, const void* w, void* y, int m, int n, int k, DType dt, cudaStream_t st) {
  const float alpha = 1.f, beta = 0.f;
  CKB(cublasSetStream(g_cublas, st));
  CKB(cublasGemmEx(g_cublas, CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, &alpha, w, cu_type(dt), k, x, cu_type(dt), k, &beta, y,
                   cu_type(dt), n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

// Runs every tile configuration and split count on one problem against the fp64 reference.
void check_problem(const Problem& p, const char* what, bool one_hot, const std::vector<int>& split_list) {
  const std::vector<double> ref = host_reference(p);
  DevProblem d(p);
  const size_t ny = size_t(p.m) * p.n;
  std::vector<uint16_t> y(ny);
  uint16_t* const yd = d.y + g_y_shift;
  bool fin = true;
  double base = 0;
  if (!one_hot) {
    CK(cudaMemset(yd, 0xff, ny * 2));
    cublas_linear(d.x, d.w, yd, p.m, p.n, p.k, p.dt, 0);
    CK(cudaDeviceSynchronize());
    CK(cudaMemcpy(y.data(), yd, ny * 2, cudaMemcpyDeviceToHost));
    if (p.bias)
      for (size_t i = 0; i < ny; ++i) y[i] = from_f(to_f(y[i], p.dt) + to_f(p.b[i % p.n], p.dt), p.dt);
    base = rel_err(y, ref, p.dt, &fin);
  }
  // kernel ids: -2 the dispatcher (what int4_linear calls), -1 .. kNumTiles - 1 the mma.sync kernel
  // (auto, forced tiles), kNumTiles + c the wgmma kernel's configuration c
  const int n_wg = awq::cuda::detail::int4_gemm_sm90_num_configs();
  for (int tile = -2; tile < kNumTiles + n_wg; ++tile)
    for (int splits : split_list) {
      if (tile == -2 && splits != split_list[0]) continue;
      if (splits < 0 && tile < kNumTiles) continue;  // stream-K (-1): the wgmma kernel only
      CK(cudaMemset(d.y, 0xff, ny * 2 + 16));  // NaN in fp16 and bf16: unwritten outputs fail
      const awq::Int4LinearParams prm = params_of(p, d, g_sm_count);
      const Status s = tile == -2         ? awq::cuda::detail::int4_gemm(prm, 0)
                       : tile < kNumTiles ? awq::cuda::detail::int4_gemm_with_config(prm, 0, tile, splits)
                                          : awq::cuda::detail::int4_gemm_sm90(prm, 0, tile - kNumTiles, splits);
      if (s == Status::kUnsupported) continue;  // e.g. a tile whose shared memory this GPU lacks
      if (tile >= kNumTiles) ++g_wgmma_checks;
      CK(cudaGetLastError());
      CK(cudaDeviceSynchronize());
      bool ok = s == Status::kOk;
      CK(cudaMemcpy(y.data(), yd, ny * 2, cudaMemcpyDeviceToHost));
      // the 16 spare bytes around the shifted y must stay untouched
      uint16_t guard[8 + 8];
      CK(cudaMemcpy(guard, d.y, g_y_shift * 2, cudaMemcpyDeviceToHost));
      CK(cudaMemcpy(guard + g_y_shift, yd + ny, 16 - g_y_shift * 2, cudaMemcpyDeviceToHost));
      for (int i = 0; i < 8; ++i) ok = ok && guard[i] == 0xffff;
      double err = 0;
      if (one_hot) {
        size_t bad = 0;
        for (size_t i = 0; i < ny; ++i) {
          const uint16_t want = from_f(float(ref[i]), p.dt);  // exactly one product of 1 x w
          bad += y[i] != want;
        }
        err = double(bad);
        ok = ok && bad == 0;
      } else {
        err = rel_err(y, ref, p.dt, &fin);
        ok = ok && fin && err <= 2.0 * base;
      }
      if (!ok) ++g_failures;
      std::printf("%-5s %-9s %s M=%-5d N=%-5d K=%-5d g=%-4d bias=%d tile=%-9s splits=%-2d %s=%.3e%s%s\n",
                  ok ? "ok" : "FAIL", what, dt_name(p.dt), p.m, p.n, p.k, p.g, int(p.bias),
                  tile_name(tile).c_str(), splits, one_hot ? "mismatches" : "err", err,
                  one_hot ? "" : (" cublas=" + std::to_string(base)).c_str(), s == Status::kOk ? "" : " status!=ok");
    }
}

void run_checks(bool small) {
  uint64_t seed = std::random_device{}();
  std::printf("check seed %llu\n", (unsigned long long)seed);
  for (DType dt : {DType::kF16, DType::kBF16}) {
    if (small) {
      check_problem(make_problem(33, 136, 288, 32, dt, true, seed++), "random", false, {0, 2});
      check_problem(make_problem(20, 136, 288, 96, dt, false, seed++, true), "onehot", true, {0});
      check_problem(make_problem(70, 192, 384, 96, dt, true, seed++), "random", false, {0, 2, -1});
      check_problem(make_problem(40, 192, 384, 64, dt, false, seed++), "random", false, {0, 2, -1});  // G64 form
      // G128 form, 10 k-blocks: 3 splits start ranges on block 3 (odd: run alone before the pairs)
      check_problem(make_problem(70, 192, 640, 128, dt, true, seed++), "random", false, {0, 3, -1});
      continue;
    }
    // wgmma shapes (N % 64, K % 64): N = 192 / 320 leave half a 128-row tile, g = 96 puts group
    // boundaries inside 64-k blocks, M = 65 / 255 / 1000 leave partial token tiles
    check_problem(make_problem(65, 192, 1088, 64, dt, true, seed++), "random", false, {0, 1, 3, -1});
    check_problem(make_problem(255, 320, 1152, 96, dt, false, seed++), "random", false, {0, 1, 3, -1});
    check_problem(make_problem(1000, 256, 2048, 32, dt, true, seed++), "random", false, {0, 1, 5, -1});
    check_problem(make_problem(256, 4096, 4096, 128, dt, true, seed++), "random", false, {0, -1});
    check_problem(make_problem(130, 192, 1152, 96, dt, false, seed++, true), "onehot", true, {0, 3, -1});
    // G64 form with a group size that is not a power of two (group index by multiply-high)
    check_problem(make_problem(96, 320, 1152, 192, dt, true, seed++), "random", false, {0, 1, 3, -1});
    check_problem(make_problem(40, 192, 1152, 192, dt, false, seed++, true), "onehot", true, {0, 2, -1});
    // G128 form (group_size % 128 == 0: parameters once per aligned pair of k-blocks) with ranges that
    // start on odd blocks: 18 k-blocks in 4 or 5 splits start at 9, 13 and 3, 7; 20 in 3 at 13. M = 40,
    // 100, 130 run the step-by-step 64-token tile and the batched 128- and 256-token tiles.
    check_problem(make_problem(40, 320, 1152, 128, dt, true, seed++), "random", false, {0, 4, 5, -1});
    check_problem(make_problem(100, 192, 1152, 128, dt, false, seed++), "random", false, {0, 4, 5, -1});
    check_problem(make_problem(130, 192, 1152, 128, dt, true, seed++), "random", false, {0, 4, 5, -1});
    check_problem(make_problem(40, 192, 1280, 256, dt, false, seed++, true), "onehot", true, {0, 3, -1});
    check_problem(make_problem(130, 192, 1280, 256, dt, true, seed++, true), "onehot", true, {0, 3, -1});
    // N tails (264, 392 are not multiples of 128), K tails (1056, 1088), every group size
    check_problem(make_problem(17, 264, 1056, 32, dt, false, seed++), "random", false, {0, 1, 3});
    check_problem(make_problem(65, 264, 1088, 64, dt, true, seed++), "random", false, {0, 1, 3});
    check_problem(make_problem(255, 392, 1152, 128, dt, true, seed++), "random", false, {0, 1, 3});
    check_problem(make_problem(1000, 136, 2048, 128, dt, false, seed++), "random", false, {0, 1, 5});
    check_problem(make_problem(1, 128, 512, 512, dt, true, seed++), "random", false, {0, 2, -1});
    check_problem(make_problem(64, 4096, 4096, 128, dt, false, seed++), "random", false, {0, -1});
    check_problem(make_problem(128, 264, 1088, 64, dt, false, seed++, true), "onehot", true, {0, 3});
    // y only 4-byte aligned: the wgmma kernel's direct epilogue (no shared-memory staging) after one
    // split and stream-K, and the split-K reduce's 4-byte stores
    g_y_shift = 2;
    check_problem(make_problem(255, 320, 1152, 96, dt, true, seed++), "y+4B", false, {0, 1, 3, -1});
    check_problem(make_problem(130, 192, 1152, 64, dt, false, seed++, true), "y+4B", true, {1, 2, -1});
    g_y_shift = 0;
    // stream-K on 3 SMs: each CTA walks several whole tiles, so a staged epilogue is followed by the
    // bulk copies of its next range into the same shared memory
    const int sms = g_sm_count;
    g_sm_count = 3;
    check_problem(make_problem(520, 640, 1024, 128, dt, true, seed++), "sk-walk", false, {-1});
    check_problem(make_problem(300, 384, 1152, 64, dt, false, seed++, true), "sk-walk", true, {-1});
    g_sm_count = sms;
  }
}

// ---- timing -------------------------------------------------------------------------------------
// Dequantize the kernel layout to T (bench's own, for the dequantize + cuBLAS reference path):
// one thread per packed word, 8 outputs.
template <typename T>
__global__ void dequant_kernel(const uint32_t* __restrict__ qw, const T* __restrict__ scales,
                               const uint8_t* __restrict__ zeros, T* __restrict__ w, int64_t words, int k, int g) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= words) return;
  const int kw = k / 8;
  const int64_t row = i / kw;
  const int col = int(i % kw) * 8;
  const int64_t gi = row * (k / g) + col / g;
  const float s = float(scales[gi]), z = float(zeros[gi]);
  const uint32_t q = qw[i];
  alignas(16) T out[8];
#pragma unroll
  for (int e = 0; e < 8; ++e) out[e] = T((float((q >> (4 * ((e >> 1) + 4 * (e & 1)))) & 0xf) - z) * s);  // kNibblePos
  *reinterpret_cast<uint4*>(w + row * k + col) = *reinterpret_cast<const uint4*>(out);
}

// The dequantize + cuBLAS reference path: W in the kernel layout to T (scratch w), then y = x W^T.
void dequant_mm(const uint32_t* qw, const uint16_t* sc, const uint8_t* z, uint16_t* w, const uint16_t* x, uint16_t* y,
                int m, int n, int k, int g, DType dt, cudaStream_t st) {
  const int64_t words = int64_t(n) * k / 8;
  const unsigned blocks = unsigned((words + 255) / 256);
  if (dt == DType::kF16)
    dequant_kernel<__half><<<blocks, 256, 0, st>>>(qw, reinterpret_cast<const __half*>(sc), z,
                                                   reinterpret_cast<__half*>(w), words, k, g);
  else
    dequant_kernel<__nv_bfloat16><<<blocks, 256, 0, st>>>(qw, reinterpret_cast<const __nv_bfloat16*>(sc), z,
                                                          reinterpret_cast<__nv_bfloat16*>(w), words, k, g);
  cublas_linear(x, w, y, m, n, k, dt, st);
}

__global__ void diff_kernel(const uint16_t* a, const uint16_t* b, int64_t n, bool bf, double* acc) {
  double num = 0, den = 0;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const float va = bf ? __bfloat162float(__ushort_as_bfloat16(a[i])) : __half2float(__ushort_as_half(a[i]));
    const float vb = bf ? __bfloat162float(__ushort_as_bfloat16(b[i])) : __half2float(__ushort_as_half(b[i]));
    num += double(va - vb) * double(va - vb);
    den += double(vb) * double(vb);
  }
  atomicAdd(acc, num);
  atomicAdd(acc + 1, den);
}

struct Timer {
  cudaStream_t st;
  cudaEvent_t e0, e1;
  Timer() {
    CK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
  }
  // median time (us) of one call of fn(i), i = 0..reps-1, captured in a graph
  template <typename F>
  double time_us(int reps, F fn, int replays = 7) {
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    CK(cudaStreamBeginCapture(st, cudaStreamCaptureModeGlobal));
    for (int i = 0; i < reps; ++i) fn(i);
    CK(cudaStreamEndCapture(st, &graph));
    CK(cudaGraphInstantiate(&exec, graph, 0));
    CK(cudaGraphLaunch(exec, st));
    CK(cudaStreamSynchronize(st));
    std::vector<float> ms;
    for (int r = 0; r < replays; ++r) {
      CK(cudaEventRecord(e0, st));
      CK(cudaGraphLaunch(exec, st));
      CK(cudaEventRecord(e1, st));
      CK(cudaEventSynchronize(e1));
      float t = 0;
      CK(cudaEventElapsedTime(&t, e0, e1));
      ms.push_back(t);
    }
    CK(cudaGraphExecDestroy(exec));
    CK(cudaGraphDestroy(graph));
    std::sort(ms.begin(), ms.end());
    return 1000.0 * ms[ms.size() / 2] / reps;
  }
};

template <typename T>
void fill_random(T* d, size_t n, uint64_t seed, DType dt, float lo, float hi) {
  std::vector<uint16_t> h(std::min<size_t>(n, size_t(1) << 24));
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  for (auto& v : h) v = from_f(u(rng), dt);
  for (size_t off = 0; off < n; off += h.size())
    CK(cudaMemcpy(reinterpret_cast<uint16_t*>(d) + off, h.data(), std::min(h.size(), n - off) * 2, cudaMemcpyHostToDevice));
}

struct Row {
  int n, k, m;
  DType dt;
  double cublas, int4, mma, deq, op, diff, best_us, splits_best_us;
  std::string best, splits_best;
};

std::vector<int> g_ms = {17, 64, 128, 256, 1024, 4096, 8192};
std::vector<DType> g_dtypes = {DType::kF16, DType::kBF16};
// --tune restrictions (empty: all): configurations, split counts, shapes as N * 100000 + K
std::vector<int64_t> g_cfgs, g_splits, g_shapes;
bool wanted(const std::vector<int64_t>& v, int64_t x) { return v.empty() || std::find(v.begin(), v.end(), x) != v.end(); }
// "a,b,c" -> ints; "NxK" items -> N * 100000 + K
std::vector<int64_t> parse_list(const std::string& s) {
  std::vector<int64_t> out;
  for (size_t pos = 0; pos < s.size();) {
    size_t end = s.find(',', pos);
    if (end == std::string::npos) end = s.size();
    const std::string item = s.substr(pos, end - pos);
    const size_t x = item.find('x');
    out.push_back(x == std::string::npos ? std::atoll(item.c_str())
                                         : std::atoll(item.substr(0, x).c_str()) * 100000 + std::atoll(item.substr(x + 1).c_str()));
    pos = end + 1;
  }
  return out;
}

void run_bench(bool tune, const cudaDeviceProp& prop) {
  // the six LLM shapes, then any other N x K named by --shapes
  std::vector<std::array<int, 2>> shapes = {{4096, 4096}, {11008, 4096}, {4096, 11008}, {14336, 4096}, {4096, 14336}, {28672, 8192}};
  for (int64_t code : g_shapes) {
    const std::array<int, 2> sh = {int(code / 100000), int(code % 100000)};
    if (std::find(shapes.begin(), shapes.end(), sh) == shapes.end()) shapes.push_back(sh);
  }
  const std::vector<int>& ms = g_ms;
  const size_t rotate_bytes = 4 * size_t(prop.l2CacheSize);
  Timer tm;
  void* cublas_ws = nullptr;
  CK(cudaMalloc(&cublas_ws, 64 << 20));
  CKB(cublasSetWorkspace(g_cublas, cublas_ws, 64 << 20));
  double* dacc = nullptr;
  CK(cudaMalloc(&dacc, 16));

  // measured copy bandwidth (bytes read + written)
  double copy_tbs = 0;
  {
    const size_t bytes = size_t(1) << 30;
    void *a, *b;
    CK(cudaMalloc(&a, bytes));
    CK(cudaMalloc(&b, bytes));
    CK(cudaMemset(a, 1, bytes));
    const double us = tm.time_us(3, [&](int) { CK(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, tm.st)); });
    copy_tbs = 2.0 * bytes / us * 1e-6;
    CK(cudaFree(a));
    CK(cudaFree(b));
  }
  std::printf("device-to-device copy: %.2f TB/s (read + write)\n", copy_tbs);

  std::vector<Row> rows;
  for (auto& sh : shapes) {
    if (!wanted(g_shapes, int64_t(sh[0]) * 100000 + sh[1])) continue;
    const int n = sh[0], k = sh[1], g = 128, groups = k / g;
    const size_t q_bytes = size_t(n) * k / 2 + size_t(n) * groups * 3;
    const int nq = int(std::max<size_t>(2, (rotate_bytes + q_bytes - 1) / q_bytes));
    const size_t w_bytes = size_t(n) * k * 2;
    const int nw = int(std::max<size_t>(2, (rotate_bytes + w_bytes - 1) / w_bytes));
    std::vector<uint32_t*> qws(nq);
    std::vector<uint16_t*> scs(nq);
    std::vector<uint8_t*> zs(nq);
    std::vector<uint16_t*> ws(nw);
    {
      std::mt19937 rng(n * 31 + k);
      std::vector<uint32_t> hq(size_t(n) * k / 8);
      std::vector<uint8_t> hz(size_t(n) * groups);
      for (auto& v : hq) v = rng();
      for (auto& v : hz) v = uint8_t(rng() & 15);
      for (int i = 0; i < nq; ++i) {
        qws[i] = dev_upload(hq);
        zs[i] = dev_upload(hz);
        CK(cudaMalloc(&scs[i], size_t(n) * groups * 2));
        fill_random(scs[i], size_t(n) * groups, 7 + i, DType::kF16, 1.f / 256, 1.f / 32);  // fp16 and bf16 alike
      }
    }
    for (int i = 0; i < nw; ++i) {
      CK(cudaMalloc(&ws[i], w_bytes));
      fill_random(ws[i], size_t(n) * k, 100 + i, DType::kF16, -0.05f, 0.05f);
    }
    uint16_t* wtmp = nullptr;
    CK(cudaMalloc(&wtmp, w_bytes));
    for (DType dt : g_dtypes) {
      // bf16 runs re-interpret the same random bits: fine for timing; scales are re-filled as bf16
      if (dt == DType::kBF16) {
        for (int i = 0; i < nq; ++i) fill_random(scs[i], size_t(n) * groups, 7 + i, dt, 1.f / 256, 1.f / 32);
        for (int i = 0; i < nw; ++i) fill_random(ws[i], size_t(n) * k, 100 + i, dt, -0.05f, 0.05f);
      }
      for (int m : ms) {
        const bool do_tune = tune && dt == DType::kF16;
        uint16_t *x, *y, *y2;
        CK(cudaMalloc(&x, size_t(m) * k * 2));
        CK(cudaMalloc(&y, size_t(m) * n * 2));
        CK(cudaMalloc(&y2, size_t(m) * n * 2));
        fill_random(x, size_t(m) * k, 1000 + m, dt, -1.f, 1.f);
        // forced split counts (tuning) need up to that many partial planes (16 by default up to M = 1024,
        // 2 above, where --tune tries at most 2 unless --splits asks for more); otherwise what the op asks for
        int64_t max_splits = m <= 1024 ? 16 : 2;
        for (int64_t sp : g_splits) max_splits = std::max(max_splits, sp);
        const int64_t ws_bytes = std::max({do_tune ? max_splits * m * n * 4 : int64_t(0), kMinWorkspaceBytes,
                                           awq::cuda::detail::int4_gemm_workspace_bytes(m, n, k, g, g_sm_count)});
        float* wsp = nullptr;
        CK(cudaMalloc(&wsp, ws_bytes + 16));
        const double flops = 2.0 * m * n * k;
        const int reps = m <= 256 ? 20 : m <= 1024 ? 8 : 3;

        // tile -2: the dispatcher int4_gemm; -1 .. kNumTiles - 1: mma.sync; kNumTiles + c: wgmma config c
        auto int4_call = [&](int i, int tile, int splits, uint16_t* out) {
          awq::Int4LinearParams p;
          p.x = x;
          p.qweight = reinterpret_cast<const int32_t*>(qws[i % nq]);
          p.scales = scs[i % nq];
          p.zeros = zs[i % nq];
          p.y = out;
          p.dtype = dt;
          p.m = m;
          p.n = n;
          p.k = k;
          p.x_stride = k;
          p.group_size = g;
          p.workspace = wsp;
          p.workspace_bytes = ws_bytes;
          p.sm_count = g_sm_count;
          if (tile == -2) return awq::cuda::detail::int4_gemm(p, tm.st);
          if (tile >= kNumTiles) return awq::cuda::detail::int4_gemm_sm90(p, tm.st, tile - kNumTiles, splits);
          return awq::cuda::detail::int4_gemm_with_config(p, tm.st, tile, splits);
        };
        auto deq_call = [&](int i, uint16_t* out) {
          dequant_mm(qws[i % nq], scs[i % nq], zs[i % nq], wtmp, x, out, m, n, k, g, dt, tm.st);
        };
        // agreement of the int4 kernel with dequantize + cuBLAS on this shape (rel. L2 difference)
        auto diff_vs_deq = [&](uint16_t* out) {
          CK(cudaMemsetAsync(y2, 0xff, size_t(m) * n * 2, tm.st));
          deq_call(0, y2);
          CK(cudaMemsetAsync(dacc, 0, 16, tm.st));
          diff_kernel<<<264, 256, 0, tm.st>>>(out, y2, int64_t(m) * n, dt == DType::kBF16, dacc);
          double h[2];
          CK(cudaMemcpyAsync(h, dacc, 16, cudaMemcpyDeviceToHost, tm.st));
          CK(cudaStreamSynchronize(tm.st));
          return std::sqrt(h[0] / std::max(h[1], 1e-300));
        };

        Row r{n, k, m, dt};
        r.cublas = tm.time_us(reps, [&](int i) { cublas_linear(x, ws[i % nw], y, m, n, k, dt, tm.st); });
        // the op path: int4_gemm (wgmma on sm_90 for kSm90MinM <= M <= kSm90MaxM, mma.sync up to M = 128), else
        // the fallback
        CK(cudaMemsetAsync(y, 0xff, size_t(m) * n * 2, tm.st));
        const bool op_ok = int4_call(0, -2, 0, y) == Status::kOk;
        r.deq = tm.time_us(reps, [&](int i) { deq_call(i, y2); });
        r.int4 = r.mma = r.diff = 0;
        if (op_ok) {
          r.diff = diff_vs_deq(y);
          if (!(r.diff < 2e-2)) ++g_failures;
          r.int4 = tm.time_us(reps, [&](int i) { int4_call(i, -2, 0, y); });
        } else if (m <= 128) {
          std::printf("int4_gemm refused N=%d K=%d M=%d\n", n, k, m);
          ++g_failures;
        }
        r.op = op_ok ? r.int4 : r.deq;
        if (m <= 256 && int4_call(0, -1, 0, y) == Status::kOk)
          r.mma = tm.time_us(reps, [&](int i) { int4_call(i, -1, 0, y); });
        r.best_us = r.op;
        r.best = "op";
        r.splits_best_us = r.op;
        r.splits_best = "op";
        if (do_tune) {
          // every wgmma configuration x split count (0: the automatic plan, which may be stream-K; -1: forced stream-K)
          for (int c = 0; c < awq::cuda::detail::int4_gemm_sm90_num_configs(); ++c)
            for (int sp : {0, 1, 2, 3, 4, 6, 8, -1}) {  // -1: stream-K
              if (!wanted(g_cfgs, c) || (g_splits.empty() ? m >= 1024 && sp > 2 : !wanted(g_splits, sp))) continue;
              if (int4_call(0, kNumTiles + c, sp, y) != Status::kOk) {
                // stream-K (-1) exists for configurations 1, 4, 6, 7 only; a forced split count is refused
                // when the workspace cannot hold its partials: say so
                if (sp > 0) std::printf("  tune %s N=%d K=%d M=%d wg%d splits=%d declined\n", dt_name(dt), n, k, m, c, sp);
                continue;
              }
              const double d = diff_vs_deq(y);
              // EXP_NODIFF: timing-only builds (ablations whose results are wrong on purpose)
              if (!(d < 2e-2) && std::getenv("EXP_NODIFF") == nullptr) {
                std::printf("wg%d splits %d wrong: diff %.3e\n", c, sp, d);
                ++g_failures;
                continue;
              }
              const double us = tm.time_us(reps, [&](int i) { int4_call(i, kNumTiles + c, sp, y); });
              std::printf("  tune %s N=%d K=%d M=%d wg%d splits=%d %9.2f us %6.1f TF\n", dt_name(dt), n, k, m, c, sp,
                          us, flops / us * 1e-6);
              if (us < r.best_us) {
                r.best_us = us;
                r.best = "wg" + std::to_string(c) + "s" + std::to_string(sp);
              }
            }
        }
        const double gbs = (double(q_bytes) + 2.0 * m * k + 2.0 * m * n) / r.op * 1e-3;
        std::printf("%s N=%-5d K=%-5d M=%-5d cublas %9.2f us %6.1f TF | op %9.2f us %6.1f TF %7.1f GB/s (%4.1f%%) "
                    "x%.2f | mma.sync %9.2f us | deq+mm %9.2f us x%.2f | diff %.1e | best %s %.2f\n",
                    dt_name(dt), n, k, m, r.cublas, flops / r.cublas * 1e-6, r.op, flops / r.op * 1e-6, gbs,
                    100.0 * gbs / (copy_tbs * 1e3), r.cublas / r.op, r.mma, r.deq, r.cublas / r.deq, r.diff,
                    r.best.c_str(), r.best_us);
        std::fflush(stdout);
        rows.push_back(r);
        CK(cudaFree(x));
        CK(cudaFree(y));
        CK(cudaFree(y2));
        CK(cudaFree(wsp));
      }
    }
    for (int i = 0; i < nq; ++i) {
      CK(cudaFree(qws[i]));
      CK(cudaFree(scs[i]));
      CK(cudaFree(zs[i]));
    }
    for (int i = 0; i < nw; ++i) CK(cudaFree(ws[i]));
    CK(cudaFree(wtmp));
  }

  std::printf("\n## %s, %d SMs, L2 %d MB, copy %.2f TB/s; g=128, zero points; us = median per call\n", prop.name,
              prop.multiProcessorCount, prop.l2CacheSize >> 20, copy_tbs);
  std::printf("| dtype | N x K | M | cuBLAS us | int4 op us | TFLOP/s | speedup | mma.sync us | speedup | deq+mm us | speedup |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (const Row& r : rows)
    std::printf("| %s | %d x %d | %d | %.1f | %.1f | %.1f | %.2fx | %.1f | %.2fx | %.1f | %.2fx |\n", dt_name(r.dt), r.n,
                r.k, r.m, r.cublas, r.op, 2.0 * r.m * r.n * r.k / r.op * 1e-6, r.cublas / r.op, r.mma,
                r.mma > 0 ? r.cublas / r.mma : 0.0, r.deq, r.cublas / r.deq);
  std::printf("\n| dtype | M | op path vs cuBLAS, geo-mean (6 shapes) | min | mma.sync geo-mean | deq+mm geo-mean |\n"
              "|---|---|---|---|---|---|\n");
  for (DType dt : {DType::kF16, DType::kBF16})
    for (int m : ms) {
      double lgm = 0, lgd = 0, lgo = 0, mn = 1e9;
      int c = 0, cm = 0;
      for (const Row& r : rows)
        if (r.dt == dt && r.m == m) {
          if (r.mma > 0) {
            lgm += std::log(r.cublas / r.mma);
            ++cm;
          }
          lgd += std::log(r.cublas / r.deq);
          lgo += std::log(r.cublas / r.op);
          mn = std::min(mn, r.cublas / r.op);
          ++c;
        }
      if (c)
        std::printf("| %s | %d | %.2fx | %.2fx | %s | %.2fx |\n", dt_name(dt), m, std::exp(lgo / c), mn,
                    cm ? (std::to_string(std::exp(lgm / cm)).substr(0, 4) + "x").c_str() : "-", std::exp(lgd / c));
    }
  CK(cudaFree(cublas_ws));
  CK(cudaFree(dacc));
}

}  // namespace

// One fp16, g = 128 problem on random device data for --one and --soak: packed weights (random bits),
// scales in [1/256, 1/32], zero points 7, x in [-1, 1]; the workspace holds `max_splits` partial planes
// or what the op asks for, whichever is larger.
struct DeviceProblem {
  int n, k, m, g = 128;
  uint32_t* qw = nullptr;
  uint16_t *sc = nullptr, *x = nullptr, *y = nullptr;
  uint8_t* z = nullptr;
  float* ws = nullptr;
  int64_t ws_bytes = 0;
  DeviceProblem(int n_, int k_, int m_, int max_splits) : n(n_), k(k_), m(m_) {
    ws_bytes = std::max({int64_t(max_splits) * m * n * 4, kMinWorkspaceBytes,
                         awq::cuda::detail::int4_gemm_workspace_bytes(m, n, k, g, g_sm_count)});
    CK(cudaMalloc(&qw, size_t(n) * k / 2));
    CK(cudaMalloc(&sc, size_t(n) * (k / g) * 2));
    CK(cudaMalloc(&z, size_t(n) * (k / g)));
    CK(cudaMalloc(&x, size_t(m) * k * 2));
    CK(cudaMalloc(&y, size_t(m) * n * 2));
    CK(cudaMalloc(&ws, ws_bytes));
    std::vector<uint32_t> h(size_t(n) * k / 8);
    std::mt19937 rng(5);
    for (auto& w : h) w = uint32_t(rng());
    CK(cudaMemcpy(qw, h.data(), h.size() * 4, cudaMemcpyHostToDevice));
    CK(cudaMemset(z, 7, size_t(n) * (k / g)));
    fill_random(sc, size_t(n) * (k / g), 7, DType::kF16, 1.f / 256, 1.f / 32);
    fill_random(x, size_t(m) * k, 8, DType::kF16, -1.f, 1.f);
  }
  ~DeviceProblem() {
    cudaFree(qw); cudaFree(sc); cudaFree(z); cudaFree(x); cudaFree(y); cudaFree(ws);
  }
  awq::Int4LinearParams params() const {
    awq::Int4LinearParams p;
    p.x = x;
    p.qweight = reinterpret_cast<const int32_t*>(qw);
    p.scales = sc;
    p.zeros = z;
    p.y = y;
    p.dtype = DType::kF16;
    p.m = m;
    p.n = n;
    p.k = k;
    p.x_stride = k;
    p.group_size = g;
    p.workspace = ws;
    p.workspace_bytes = ws_bytes;
    p.sm_count = g_sm_count;
    return p;
  }
};

// --one=N,K,M,cfg,splits: three calls of one configuration on random device data (fp16, g = 128),
// for ncu (--launch-skip 1 --launch-count 1). cfg >= 0 forces the wgmma configuration, -1 the
// dispatcher; splits 0 automatic (which may be stream-K), -1 stream-K.
void run_one(const std::vector<int>& v) {
  const int n = v[0], k = v[1], m = v[2], cfg = v[3], splits = v[4];
  const DeviceProblem d(n, k, m, 16);
  const awq::Int4LinearParams p = d.params();
  for (int i = 0; i < 3; ++i) {
    const Status s = cfg >= 0 ? awq::cuda::detail::int4_gemm_sm90(p, 0, cfg, splits) : awq::cuda::detail::int4_gemm(p, 0);
    if (s != Status::kOk) {
      std::printf("one: N=%d K=%d M=%d cfg %d: status %d\n", n, k, m, cfg, int(s));
      ++g_failures;
      break;
    }
  }
  CK(cudaDeviceSynchronize());
  std::printf("one: N=%d K=%d M=%d cfg %d splits %d done\n", n, k, m, cfg, splits);
}

// --soak=N,K,M,seconds[,cfg]: the INT4 GEMM (cfg -1 or absent: the op path int4_gemm; >= 0: that wgmma
// configuration, automatic splits), cuBLAS fp16 and dequantize + cuBLAS on the same problem (fp16,
// g = 128), each called back to back for `seconds` (int4, cuBLAS, dequantize + cuBLAS, int4 again,
// half an idle second between), printing each phase's wall-clock start and end (Unix seconds) and
// time per call. One batch of 20 calls stays queued behind the one being waited for, so the GPU never
// idles within a phase. For clocks and power under sustained load, sample nvidia-smi alongside
// (--query-gpu=timestamp,clocks.sm,power.draw -lms 50; bench/cpp/gemm_soak.sh).
void run_soak(const std::vector<int64_t>& v) {
  const int n = int(v[0]), k = int(v[1]), m = int(v[2]);
  const double secs = double(v[3]);
  const int cfg = v.size() > 4 ? int(v[4]) : -1;
  if (secs <= 0) {
    std::printf("soak: seconds must be > 0, got %g\n", secs);
    ++g_failures;
    return;
  }
  // forced configurations may split K (automatic count): up to 16 planes where plans split (M <= 1024)
  const DeviceProblem d(n, k, m, cfg >= 0 && m <= 1024 ? 16 : 0);
  const awq::Int4LinearParams p = d.params();
  uint16_t *w16 = nullptr, *wdq = nullptr;
  CK(cudaMalloc(&w16, size_t(n) * k * 2));
  CK(cudaMalloc(&wdq, size_t(n) * k * 2));
  fill_random(w16, size_t(n) * k, 9, DType::kF16, -0.05f, 0.05f);
  auto int4 = [&] {
    return cfg >= 0 ? awq::cuda::detail::int4_gemm_sm90(p, 0, cfg, 0) : awq::cuda::detail::int4_gemm(p, 0);
  };
  if (int4() != Status::kOk) {  // e.g. the op path at M > kSm90MaxM (the binding's fallback, not this binary's)
    std::printf("soak: N=%d K=%d M=%d cfg %d: the INT4 GEMM declines this problem\n", n, k, m, cfg);
    ++g_failures;
    CK(cudaFree(w16)); CK(cudaFree(wdq));
    return;
  }
  auto now = [] {
    return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  };
  auto phase = [&](const std::string& what, auto fn) {
    constexpr int kBatch = 20;
    cudaEvent_t e0, ev[2];
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&ev[0]));
    CK(cudaEventCreate(&ev[1]));
    for (int i = 0; i < 3; ++i) fn();
    CK(cudaDeviceSynchronize());
    const double t0 = now();
    CK(cudaEventRecord(e0));
    int64_t batches = 0;
    do {
      for (int i = 0; i < kBatch; ++i) fn();
      CK(cudaEventRecord(ev[batches % 2]));
      if (batches > 0) CK(cudaEventSynchronize(ev[(batches - 1) % 2]));  // the previous batch, not this one
      ++batches;
    } while (now() - t0 < secs);
    const cudaEvent_t last = ev[(batches - 1) % 2];
    CK(cudaEventSynchronize(last));
    float ms = 0;
    CK(cudaEventElapsedTime(&ms, e0, last));
    std::printf("soak %-6s N=%d K=%d M=%d start %.3f end %.3f calls %lld %.2f us/call\n", what.c_str(), n, k, m, t0,
                now(), (long long)(batches * kBatch), 1000.0 * ms / double(batches * kBatch));
    CK(cudaEventDestroy(e0));
    CK(cudaEventDestroy(ev[0]));
    CK(cudaEventDestroy(ev[1]));
  };
  auto int4_call = [&] {
    if (int4() != Status::kOk) ++g_failures;
  };
  auto cublas = [&] { cublas_linear(d.x, w16, d.y, m, n, k, DType::kF16, 0); };
  auto deqmm = [&] { dequant_mm(d.qw, d.sc, d.z, wdq, d.x, d.y, m, n, k, d.g, DType::kF16, 0); };
  const std::string int4_name = cfg >= 0 ? "wg" + std::to_string(cfg) : "int4";
  const auto pause = std::chrono::milliseconds(500);
  phase(int4_name, int4_call);
  std::this_thread::sleep_for(pause);
  phase("cublas", cublas);
  std::this_thread::sleep_for(pause);
  phase("deq+mm", deqmm);
  std::this_thread::sleep_for(pause);
  phase(int4_name, int4_call);
  CK(cudaFree(w16));
  CK(cudaFree(wdq));
}

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // a crashing case still leaves every line before it in the log
  bool check = false, sanitize = false, bench = false, tune = false;
  std::vector<int> one;
  std::vector<int64_t> soak;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--check") check = true;
    else if (a == "--sanitize") sanitize = true;
    else if (a == "--bench") bench = true;
    else if (a == "--tune") tune = true;
    else if (a.rfind("--ms=", 0) == 0) {
      g_ms.clear();
      for (size_t pos = 5; pos < a.size();) {
        const size_t end = a.find(',', pos);
        g_ms.push_back(std::atoi(a.substr(pos, end - pos).c_str()));
        pos = end == std::string::npos ? a.size() : end + 1;
      }
    } else if (a.rfind("--one=", 0) == 0) {
      for (size_t pos = 6; pos < a.size();) {
        const size_t end = a.find(',', pos);
        one.push_back(std::atoi(a.substr(pos, end - pos).c_str()));
        pos = end == std::string::npos ? a.size() : end + 1;
      }
      if (one.size() != 5) {
        std::fprintf(stderr, "--one wants N,K,M,cfg,splits, got %s\n", a.c_str());
        return 2;
      }
    } else if (a.rfind("--soak=", 0) == 0) {
      soak = parse_list(a.substr(7));
      if (soak.size() != 4 && soak.size() != 5) {
        std::fprintf(stderr, "--soak wants N,K,M,seconds[,cfg], got %s\n", a.c_str());
        return 2;
      }
    } else if (a.rfind("--cfgs=", 0) == 0) g_cfgs = parse_list(a.substr(7));
    else if (a.rfind("--splits=", 0) == 0) g_splits = parse_list(a.substr(9));
    else if (a.rfind("--shapes=", 0) == 0) g_shapes = parse_list(a.substr(9));
    else if (a == "--dtypes=fp16") g_dtypes = {DType::kF16};
    else if (a == "--dtypes=bf16") g_dtypes = {DType::kBF16};
  }
  if (!check && !sanitize && !bench && one.empty() && soak.empty()) check = bench = true;
  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, 0));
  g_sm_count = prop.multiProcessorCount;
  std::printf("device: %s, sm_%d%d, %d SMs\n", prop.name, prop.major, prop.minor, prop.multiProcessorCount);
  CKB(cublasCreate(&g_cublas));
  if (sanitize) run_checks(true);
  if (check) run_checks(false);
  if (bench) run_bench(tune, prop);
  if (!one.empty()) run_one(one);
  if (!soak.empty()) run_soak(soak);
  if ((check || sanitize) && prop.major == 9 && prop.minor == 0 && g_wgmma_checks == 0) {
    std::printf("FAIL: the wgmma kernel ran no check case on this sm_90 device\n");
    ++g_failures;
  }
  std::printf("wgmma kernel check cases run: %d\n", g_wgmma_checks);
  CKB(cublasDestroy(g_cublas));
  std::printf("%s: %d failure(s)\n", g_failures ? "FAILED" : "PASSED", g_failures);
  return g_failures ? 1 : 0;
}
