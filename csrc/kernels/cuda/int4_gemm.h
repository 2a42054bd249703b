// Internal interface between the INT4 linear dispatcher (int4_linear.cu) and the tensor-core GEMMs
// for larger M (int4_gemm.cu: mma.sync, int4_gemm_sm90.cu: Hopper wgmma). Not part of the public
// core API.
#pragma once
#include <cuda_runtime.h>

#include <cstdlib>

#include "awq/core.h"

namespace awq {
namespace cuda {
namespace detail {

// Programmatic dependent launch, the library's default for the decode kernels (int4_linear.cu) and for
// the split-K reduce after the wgmma GEMM (int4_gemm_sm90.cu). The environment variable
// AWQ_DISABLE_PDL (any value but "" or "0") turns it off, e.g. to rule it out when debugging or
// profiling; read once per process.
inline bool pdl_allowed() {
  static const bool allowed = [] {
    const char* v = std::getenv("AWQ_DISABLE_PDL");
    return v == nullptr || v[0] == '\0' || (v[0] == '0' && v[1] == '\0');
  }();
  return allowed;
}

// Tensor-core INT4 GEMM for the prefill / batched regime. Returns kUnsupported for shapes or
// dtypes it does not handle (the binding then falls back to dequantize + cuBLAS).
Status int4_gemm(const Int4LinearParams& p, cudaStream_t stream);

// fp32 workspace bytes int4_gemm needs for this problem (0: none).
int64_t int4_gemm_workspace_bytes(int64_t m, int64_t n, int64_t k, int group_size, int sm_count);

// Hopper wgmma GEMM (int4_gemm_sm90.cu), used by int4_gemm for kSm90MinM <= M <= kSm90MaxM on
// compute capability 9.0 (sm_90a code); kUnsupported on other devices and shapes (N % 64, K % 64,
// group_size % 32). cfg: tile configuration (-1 automatic, 0 .. int4_gemm_sm90_num_configs() - 1);
// splits: split-K count (0 automatic), -1 stream-K (configurations 1, 4, 6, 7; kUnsupported for the
// others). Forced values are for the benchmark and tests.
// Up to kSm90MaxM = 4096 (H200, 2026-11-22, bench/results/gemm_notes.md, session 13; C++ benchmark,
// graph-timed bursts, against the binding's dequantize + cuBLAS fallback on six LLM shapes): M = 2048
// 5-10 % faster on all six; M = 4096 level on the geo-mean (per shape -8 .. +5 % over two runs,
// 14336 x 4096 slower in both); under sustained load (power-capped clocks, bench/cpp/gemm_soak.sh)
// 3-5 % faster on all six at M = 4096, and no [N, K] fp16 temporary. At M = 8192 the fallback is
// faster on five of six shapes (up to 14 %), so it keeps M > 4096.
// From M = 17 (the decode kernels take M <= 16): at M = 17..48 the 64-token tile with its padding
// rows still beats the mma.sync kernel, 1.21-1.23x cuBLAS against ~0.97x (H200, 12:40 UTC,
// raw_gemm_h200/tune_m17-48.log).
constexpr int64_t kSm90MinM = 17;
constexpr int64_t kSm90MaxM = 4096;
Status int4_gemm_sm90(const Int4LinearParams& p, cudaStream_t stream, int cfg, int splits);
int int4_gemm_sm90_num_configs();
// Whether int4_gemm would take the wgmma path for this problem on the current device.
bool int4_gemm_sm90_handles(int64_t m, int64_t n, int64_t k, int group_size);
int64_t int4_gemm_sm90_workspace_bytes(int64_t m, int64_t n, int64_t k, int group_size, int sm_count);

}  // namespace detail
}  // namespace cuda
}  // namespace awq
