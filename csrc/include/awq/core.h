// awq_ext torch-free kernel core: the contract between kernels, launchers and the ATen binding.
//
// Every op is a plain function taking a params struct of raw pointers and sizes and returning a
// Status. CPU kernels live in awq::cpu, CUDA launchers in awq::cuda (stream passed as void* so
// this header compiles without the CUDA toolkit). Nothing here includes torch: the C++ benchmark
// binaries link the core alone. Validation of user input happens in csrc/torch (the binding layer);
// kernels only return kUnsupported for configurations they were not instantiated for.
//
// Weight layout of the INT4 kernels ("awq_ext kernel layout", see layout.h):
//   qweight int32 [N, K/8]   row n, word j holds W[n, 8j .. 8j+7], nibble i = element kNibbleOrder[i]
//   scales  T     [N, K/g]   T = compute dtype (fp16, bf16 or fp32)
//   zeros   uint8 [N, K/g]   0..15 (8 for symmetric quantization)
//   W[n, k] = (q[n, k] - zeros[n, k/g]) * scales[n, k/g]
#pragma once
#include <cstdint>

namespace awq {

enum class Status : int {
  kOk = 0,
  kUnsupported = 1,   // a configuration the kernels were not built for (message from the binding)
  kLaunchError = 2,   // the CUDA runtime rejected a launch; see cudaGetLastError
  kNoCuda = 3,        // the library was built without CUDA kernels
};

enum class DType : int { kF16 = 0, kBF16 = 1, kF32 = 2 };

inline const char* status_string(Status s) {
  switch (s) {
    case Status::kOk: return "ok";
    case Status::kUnsupported: return "unsupported configuration";
    case Status::kLaunchError: return "CUDA launch error";
    case Status::kNoCuda: return "built without CUDA kernels";
  }
  return "unknown status";
}

// Activation statistics, streaming: abs_sum[k] += sum_t |x[t, k]|, abs_max[k] = max(abs_max[k], |x[t, k]|).
// x is [tokens, k] with row stride x_stride (elements); statistics are fp32.
struct ActStatsParams {
  const void* x = nullptr;
  DType dtype = DType::kF16;
  int64_t tokens = 0;
  int64_t k = 0;
  int64_t x_stride = 0;
  float* abs_sum = nullptr;  // [k], accumulated into
  float* abs_max = nullptr;  // [k], accumulated into
  // [1], += tokens by the same launch when set (a calibration hook then needs no second launch). The
  // launchers return without touching anything when tokens or k is zero: callers count those.
  int64_t* count = nullptr;
};

// Grouped quantize-dequantize ("pseudo-quantization") of w [n, k], the inner loop of AWQ's searches.
// Per row and group of group_size input channels, on v = w * in_scale (fp32):
//   zero_point: lo = min v, hi = max v; with clip ratio r: A = max(|lo|, |hi|), lo = max(lo, -r A),
//               hi = min(hi, r A); scale = rnd_T(max(hi - lo, 1e-5) / (2^bits - 1));
//               z = clamp(rint(-lo / scale), 0, 2^bits - 1); q = clamp(rint(clamp(v, lo, hi) / scale) + z, 0, 2^bits - 1);
//               v' = (q - z) * scale
//   symmetric:  A = max(|lo|, |hi|) (times r with clip); scale = rnd_T(max(A, 1e-5) / (2^(bits-1) - 1));
//               q = clamp(rint(clamp(v, -A, A) / scale), -2^(bits-1), 2^(bits-1) - 1); v' = q * scale
// out = rnd_T(v' / in_scale), where rnd_T rounds an fp32 value to the tensor dtype T and rint rounds
// half to even. in_scale (nullable) is fp32 [k]; clip (nullable) is fp32 [n, k / group_size].
struct PseudoQuantParams {
  const void* w = nullptr;
  void* out = nullptr;         // may alias w
  DType dtype = DType::kF16;
  int64_t n = 0;
  int64_t k = 0;
  int group_size = 128;        // divides k (whole row: group_size == k)
  int bits = 4;                // 2..8
  bool zero_point = true;
  const float* in_scale = nullptr;
  const float* clip = nullptr;
};

// Error of grouped pseudo-quantization under C candidate per-input-channel scalings, the batched
// "error only" form of PseudoQuantParams for AWQ's scale search. For candidate c (0 <= c < C):
//   err[c] = sum_{n, k} channel_weight[k] * (PQ_c[n, k] - w[n, k])^2
// where PQ_c is exactly PseudoQuantParams' output for this w with in_scale = scales + c * k and no
// clip (so rnd_T(Q(w * s_c) / s_c), bit for bit the pseudo_quantize op's value), the difference and
// its square in fp32; channel_weight (nullable: all ones) is e.g. mean x^2 per input channel, which
// makes err a diagonal estimate of the output error. Nothing of size [C, n, k] or [n, k] is written.
// Sums: CUDA accumulates in fp32 in a fixed order (deterministic for a given device: per-lane
// partials, then per-block partials in `workspace`, then a fixed-order reduction); CPU in fp64.
struct PseudoQuantErrorParams {
  const void* w = nullptr;             // [n, k], contiguous
  DType dtype = DType::kF16;
  int64_t n = 0;
  int64_t k = 0;
  int group_size = 128;                // divides k (whole row: group_size == k)
  int bits = 4;                        // 2..8
  bool zero_point = true;
  const float* scales = nullptr;       // [n_candidates, k], contiguous
  int64_t n_candidates = 1;
  const float* channel_weight = nullptr;  // nullable, [k]
  float* err = nullptr;                // [n_candidates], overwritten
  void* workspace = nullptr;           // CUDA: pseudo_quantize_error_workspace_bytes() of scratch
  int64_t workspace_bytes = 0;
  int sm_count = 0;                    // CUDA: multiprocessors of the device (grid size)
};

// Quantize w [n, k] to 4 bits (same arithmetic as PseudoQuantParams, no in_scale) and pack into the
// kernel layout. Symmetric codes are stored offset by 8 with zero 8, so dequantization is uniform.
struct QuantizeInt4Params {
  const void* w = nullptr;
  DType dtype = DType::kF16;
  int64_t n = 0;
  int64_t k = 0;               // multiple of 8
  int group_size = 128;
  bool zero_point = true;
  const float* clip = nullptr; // nullable, fp32 [n, k / group_size]
  int32_t* qweight = nullptr;  // [n, k / 8]
  void* scales = nullptr;      // [n, k / group_size], dtype
  uint8_t* zeros = nullptr;    // [n, k / group_size]
};

// W [n, k] (dtype of scales) = (q - z) * s from the kernel layout.
struct DequantInt4Params {
  const int32_t* qweight = nullptr;
  const void* scales = nullptr;
  const uint8_t* zeros = nullptr;
  DType dtype = DType::kF16;
  int64_t n = 0;
  int64_t k = 0;
  int group_size = 128;
  void* out = nullptr;
};

// Conversion between the kernel layout and the AutoAWQ "gemm" layout:
//   qweight_awq int32 [k, n/8]: word c of row k holds W^T[k, 8c + kNibbleOrder[i]] in nibble i
//   qzeros_awq  int32 [k/g, n/8]: the zero points packed the same way
// to_awq: kernel -> AutoAWQ (needs n % 8 == 0); otherwise AutoAWQ -> kernel (needs k % 8 == 0).
struct AwqRepackParams {
  int32_t* qweight = nullptr;      // kernel layout [n, k/8]
  uint8_t* zeros = nullptr;        // [n, k/g]
  int32_t* qweight_awq = nullptr;  // [k, n/8]
  int32_t* qzeros_awq = nullptr;   // [k/g, n/8]
  int64_t n = 0;
  int64_t k = 0;
  int group_size = 128;
  bool to_awq = true;
};

// y [m, n] = x [m, k] @ W^T (+ bias [n]), W from the kernel layout; fp32 accumulation; x, scales,
// bias and y share dtype. x rows are x_stride elements apart; y is contiguous.
struct Int4LinearParams {
  const void* x = nullptr;
  const int32_t* qweight = nullptr;
  const void* scales = nullptr;
  const uint8_t* zeros = nullptr;
  const void* bias = nullptr;  // nullable
  void* y = nullptr;
  DType dtype = DType::kF16;
  int64_t m = 0;
  int64_t n = 0;
  int64_t k = 0;
  int64_t x_stride = 0;
  int group_size = 128;
  void* workspace = nullptr;        // fp32 scratch for split-k kernels (nullable if not needed)
  int64_t workspace_bytes = 0;
  int sm_count = 0;                 // multiprocessors of the device (launch heuristics)
};

// AWQ clip search. For every row n, group j and candidate ratio r_i = 1 - i / n_grid,
// i in [0, n_candidates) (n_candidates = int(max_shrink * n_grid)), the output error over tokens
//   err_i[n, j] = sum_t ( sum_{k in group j} x[t, k] * (Q_{r_i}(w)[n, k] - w[n, k]) )^2
// where Q_r is the fp32 dequantized value of PseudoQuantParams with clip ratio r (not rounded to the
// dtype). best_ratio[n, j] = r_i of the smallest err_i (first on ties); best_err likewise (nullable).
struct ClipSearchParams {
  const void* w = nullptr;   // [n, k]
  const void* x = nullptr;   // [tokens, k], same dtype as w
  DType dtype = DType::kF16;
  int64_t n = 0;
  int64_t k = 0;
  int64_t tokens = 0;
  int group_size = 128;
  int bits = 4;
  bool zero_point = true;
  int n_grid = 20;
  int n_candidates = 10;
  float* best_ratio = nullptr;  // [n, k / group_size]
  float* best_err = nullptr;    // nullable, [n, k / group_size]
};

namespace cpu {
Status act_stats(const ActStatsParams& p);
Status pseudo_quantize(const PseudoQuantParams& p);
Status pseudo_quantize_error(const PseudoQuantErrorParams& p);
Status quantize_int4(const QuantizeInt4Params& p);
Status dequantize_int4(const DequantInt4Params& p);
Status awq_repack(const AwqRepackParams& p);
Status int4_linear(const Int4LinearParams& p);
Status clip_search(const ClipSearchParams& p);
}  // namespace cpu

namespace cuda {
// Each launcher enqueues on `stream` (a cudaStream_t) and never synchronizes or allocates.
Status act_stats(const ActStatsParams& p, void* stream);
Status pseudo_quantize(const PseudoQuantParams& p, void* stream);
// Needs p.workspace of pseudo_quantize_error_workspace_bytes(p) bytes (fp32 per-block partials) and
// p.sm_count; the result is deterministic for a given sm_count.
Status pseudo_quantize_error(const PseudoQuantErrorParams& p, void* stream);
int64_t pseudo_quantize_error_workspace_bytes(const PseudoQuantErrorParams& p);
Status quantize_int4(const QuantizeInt4Params& p, void* stream);
Status dequantize_int4(const DequantInt4Params& p, void* stream);
Status awq_repack(const AwqRepackParams& p, void* stream);
Status int4_linear(const Int4LinearParams& p, void* stream);
// Bytes of fp32 workspace int4_linear needs for (m, n, k) on a device with sm_count SMs (0: none).
int64_t int4_linear_workspace_bytes(int64_t m, int64_t n, int64_t k, int group_size, int sm_count);
Status clip_search(const ClipSearchParams& p, void* stream);
}  // namespace cuda

}  // namespace awq
