// Stand-in for csrc/kernels/cuda/int4_gemm.cu so bench_linear can be built and run before (or
// without) the tensor-core GEMM: it declines every problem, so int4_linear uses only the GEMV path
// and reports large M as unsupported. Link the real int4_gemm.cu instead to benchmark the GEMM.
#include "int4_gemm.h"

namespace awq {
namespace cuda {
namespace detail {

Status int4_gemm(const Int4LinearParams&, cudaStream_t) { return Status::kUnsupported; }

int64_t int4_gemm_workspace_bytes(int64_t, int64_t, int64_t, int, int) { return 0; }

}  // namespace detail
}  // namespace cuda
}  // namespace awq
