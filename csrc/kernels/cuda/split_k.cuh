// Split-K shared by the tensor-core GEMMs (int4_gemm.cu, int4_gemm_sm90.cu): how many K splits to
// launch, and the kernel that sums the fp32 partials (+ bias) into the output.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "awq/core.h"

namespace awq {
namespace cuda {
namespace detail {
// Internal linkage: each translation unit (int4_gemm.cu, int4_gemm_sm90.cu) launches its own
// instance of the reduce kernel, compiled for that file's targets. The sm_90 file launches its copy as
// a programmatic dependent, which is only safe with the sm_90 code's griddepcontrol.wait; with one
// shared instance the runtime could run the other file's (say sm_80 PTX only) copy, which has none.
namespace {

// Split-K only while the tiles fill less than one wave: pick the split count (each split keeping at
// least min_kblocks_per_split k-blocks, at most max_splits) whose blocks fill the waves best,
// preferring fewer splits on near-ties because each split adds M x N x 8 bytes of partial-sum traffic.
inline int choose_splits(int64_t tiles, int64_t k_blocks, int sm_count, int max_splits, int min_kblocks_per_split) {
  if (sm_count <= 0 || tiles >= sm_count) return 1;
  const int cap = int(std::min<int64_t>(max_splits, std::max<int64_t>(1, k_blocks / min_kblocks_per_split)));
  int best = 1;
  double best_score = -1.0;
  for (int s = 1; s <= cap; ++s) {
    const int64_t blocks = tiles * s;
    const int64_t waves = (blocks + sm_count - 1) / sm_count;
    // k-blocks finished per unit of time ~ s / waves; each split costs a little reduce traffic
    const double score = double(s) / double(waves) * (1.0 - 0.03 * s);
    if (score > best_score + 1e-9) {
      best_score = score;
      best = s;
    }
  }
  return best;
}

template <typename T>
__device__ __forceinline__ T from_f32(float v) {
  if constexpr (std::is_same_v<T, __half>) {
    return __float2half_rn(v);
  } else {
    return __float2bfloat16_rn(v);
  }
}

// y = sum over splits of the fp32 partials [splits, M, N] (+ bias), 4 outputs per thread (N % 4 == 0).
template <typename T>
__global__ void __launch_bounds__(256) splitk_reduce_kernel(const float* __restrict__ partials, int splits,
                                                            int64_t mn, int n, const T* __restrict__ bias,
                                                            T* __restrict__ y) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  // launched as a programmatic dependent of the GEMM (launch_splitk_reduce with pdl): wait until the
  // GEMM grid has completed and its partials are visible; without PDL this returns at once
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
  const int64_t e = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) * 4;
  if (e >= mn) return;
  float4 s = *reinterpret_cast<const float4*>(partials + e);
  for (int i = 1; i < splits; ++i) {
    const float4 v = *reinterpret_cast<const float4*>(partials + int64_t(i) * mn + e);
    s.x += v.x;
    s.y += v.y;
    s.z += v.z;
    s.w += v.w;
  }
  if (bias != nullptr) {
    const int col = int(e % n);
    s.x += float(bias[col]);
    s.y += float(bias[col + 1]);
    s.z += float(bias[col + 2]);
    s.w += float(bias[col + 3]);
  }
  T out[4] = {from_f32<T>(s.x), from_f32<T>(s.y), from_f32<T>(s.z), from_f32<T>(s.w)};
  // the kernels' callers guarantee 4-byte alignment of y only (e is a multiple of 4 elements)
  if ((reinterpret_cast<uintptr_t>(y) & 7) == 0) {
    *reinterpret_cast<uint2*>(y + e) = *reinterpret_cast<const uint2*>(out);
  } else {
    reinterpret_cast<uint32_t*>(y + e)[0] = reinterpret_cast<const uint32_t*>(out)[0];
    reinterpret_cast<uint32_t*>(y + e)[1] = reinterpret_cast<const uint32_t*>(out)[1];
  }
}

// pdl: launch the reduce as a programmatic dependent of the kernel just launched on the stream
// (sm_90; that kernel signals griddepcontrol.launch_dependents early), so its grid is resident and
// waiting when the GEMM ends instead of being launched after it.
template <typename T>
Status launch_splitk_reduce(const float* partials, int splits, int64_t m, int64_t n, const void* bias, void* y,
                            cudaStream_t stream, bool pdl = false) {
  const int64_t mn = m * n;
  const unsigned blocks = unsigned((mn / 4 + 255) / 256);
  if (!pdl) {
    splitk_reduce_kernel<T><<<blocks, 256, 0, stream>>>(partials, splits, mn, int(n), static_cast<const T*>(bias),
                                                        static_cast<T*>(y));
    return cudaGetLastError() == cudaSuccess ? Status::kOk : Status::kLaunchError;
  }
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3(blocks);
  cfg.blockDim = dim3(256);
  cfg.stream = stream;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr;
  cfg.numAttrs = 1;
  if (cudaLaunchKernelEx(&cfg, splitk_reduce_kernel<T>, partials, splits, mn, int(n), static_cast<const T*>(bias),
                         static_cast<T*>(y)) == cudaSuccess)
    return Status::kOk;
  // the GEMM is already queued: clear the error and launch the reduce in plain stream order
  (void)cudaGetLastError();
  return launch_splitk_reduce<T>(partials, splits, m, n, bias, y, stream, false);
}

}  // namespace
}  // namespace detail
}  // namespace cuda
}  // namespace awq
