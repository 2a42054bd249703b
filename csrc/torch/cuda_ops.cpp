// CUDA backend: binds the shared op implementations (ops_impl.h) to awq::cuda::*, on the current
// stream of the tensors' device. Compiled only in CUDA builds.
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "ops_impl.h"

namespace awq_torch {
namespace {

void* current_stream() { return static_cast<void*>(at::cuda::getCurrentCUDAStream().stream()); }

// The ops_impl.h templates run on the tensors' device: the caller sets the guard first.
struct CudaBackend {
  static awq::Status act_stats(const awq::ActStatsParams& p) { return awq::cuda::act_stats(p, current_stream()); }
  static awq::Status pseudo_quantize(const awq::PseudoQuantParams& p) {
    return awq::cuda::pseudo_quantize(p, current_stream());
  }
  static awq::Status pseudo_quantize_error(const awq::PseudoQuantErrorParams& p) {
    return awq::cuda::pseudo_quantize_error(p, current_stream());
  }
  static int64_t pseudo_quantize_error_workspace(awq::PseudoQuantErrorParams& p) {
    p.sm_count = at::cuda::getCurrentDeviceProperties()->multiProcessorCount;
    return awq::cuda::pseudo_quantize_error_workspace_bytes(p);
  }
  static awq::Status quantize_int4(const awq::QuantizeInt4Params& p) {
    return awq::cuda::quantize_int4(p, current_stream());
  }
  static awq::Status dequantize_int4(const awq::DequantInt4Params& p) {
    return awq::cuda::dequantize_int4(p, current_stream());
  }
  static awq::Status awq_repack(const awq::AwqRepackParams& p) { return awq::cuda::awq_repack(p, current_stream()); }
  static awq::Status clip_search(const awq::ClipSearchParams& p) {
    return awq::cuda::clip_search(p, current_stream());
  }
};

// Wraps an ops_impl.h function with a device guard taken from its first tensor argument.
template <auto Fn>
struct Guarded;
template <typename R, typename... Args, R (*Fn)(const at::Tensor&, Args...)>
struct Guarded<Fn> {
  static R call(const at::Tensor& first, Args... rest) {
    const c10::cuda::OptionalCUDAGuard guard(first.device());
    return Fn(first, rest...);
  }
};
at::Tensor int4_linear_cuda(const at::Tensor& x, const at::Tensor& qweight, const at::Tensor& scales,
                            const at::Tensor& zeros, const c10::optional<at::Tensor>& bias) {
  const int64_t g = check_int4_linear(x, qweight, scales, zeros, bias);
  const c10::cuda::OptionalCUDAGuard guard(x.device());
  const int64_t n = qweight.size(0), k = qweight.size(1) * 8;
  // x [..., K] -> [M, K]; rows may be strided, elements must be contiguous
  at::Tensor x2 = x.reshape({-1, k});
  if (x2.stride(1) != 1 || x2.stride(0) % 8 != 0 || reinterpret_cast<uintptr_t>(x2.data_ptr()) % 16 != 0) {
    x2 = x2.contiguous();
  }
  const auto out_shape = int4_linear_out_shape(x, n);
  at::Tensor y = at::empty({x2.size(0), n}, x.options());
  if (y.numel() == 0) return y.reshape(out_shape);
  const at::Tensor b = bias.has_value() ? bias->contiguous() : at::Tensor();
  awq::Int4LinearParams p = int4_linear_params(x2, qweight, scales, zeros, b, y, g);
  p.sm_count = at::cuda::getCurrentDeviceProperties()->multiProcessorCount;
  // split-k scratch from the caching allocator: graph-capturable, no host sync
  const int64_t ws_bytes = awq::cuda::int4_linear_workspace_bytes(p.m, p.n, p.k, p.group_size, p.sm_count);
  at::Tensor ws;
  if (ws_bytes > 0) {
    ws = at::empty({(ws_bytes + 3) / 4}, x.options().dtype(at::kFloat));
    p.workspace = ws.data_ptr();
    p.workspace_bytes = ws_bytes;
  }
  const awq::Status s = awq::cuda::int4_linear(p, current_stream());
  if (s == awq::Status::kUnsupported) {
    // Shapes or dtypes without a specialised kernel (e.g. fp32, K not a multiple of a tile):
    // dequantize once and let cuBLAS do the product. Correct everywhere, not the fast path.
    const at::Tensor w = dequantize_int4_impl<CudaBackend>(qweight, scales, zeros);
    at::Tensor out = bias.has_value() ? at::addmm(*bias, x2, w.t()) : at::mm(x2, w.t());
    return out.reshape(out_shape);
  }
  raise_on(s, "awq_ext.int4_linear");
  return y.reshape(out_shape);
}

}  // namespace

TORCH_LIBRARY_IMPL(awq_ext, CUDA, m) {
  m.impl("act_stats_", &Guarded<&act_stats_impl<CudaBackend>>::call);
  m.impl("pseudo_quantize", &Guarded<&pseudo_quantize_impl<CudaBackend>>::call);
  m.impl("pseudo_quantize_error", &Guarded<&pseudo_quantize_error_impl<CudaBackend>>::call);
  m.impl("quantize_int4", &Guarded<&quantize_int4_impl<CudaBackend>>::call);
  m.impl("dequantize_int4", &Guarded<&dequantize_int4_impl<CudaBackend>>::call);
  m.impl("pack_awq", &Guarded<&pack_awq_impl<CudaBackend>>::call);
  m.impl("unpack_awq", &Guarded<&unpack_awq_impl<CudaBackend>>::call);
  m.impl("int4_linear", &int4_linear_cuda);
  m.impl("clip_search", &Guarded<&clip_search_impl<CudaBackend>>::call);
}

}  // namespace awq_torch
