// CPU backend: binds the shared op implementations (ops_impl.h) to awq::cpu::*.
#include <torch/library.h>

#include "ops_impl.h"

namespace awq_torch {
namespace {

struct CpuBackend {
  static awq::Status act_stats(const awq::ActStatsParams& p) { return awq::cpu::act_stats(p); }
  static awq::Status pseudo_quantize(const awq::PseudoQuantParams& p) { return awq::cpu::pseudo_quantize(p); }
  static awq::Status pseudo_quantize_error(const awq::PseudoQuantErrorParams& p) {
    return awq::cpu::pseudo_quantize_error(p);
  }
  static int64_t pseudo_quantize_error_workspace(awq::PseudoQuantErrorParams&) { return 0; }
  static awq::Status quantize_int4(const awq::QuantizeInt4Params& p) { return awq::cpu::quantize_int4(p); }
  static awq::Status dequantize_int4(const awq::DequantInt4Params& p) { return awq::cpu::dequantize_int4(p); }
  static awq::Status awq_repack(const awq::AwqRepackParams& p) { return awq::cpu::awq_repack(p); }
  static awq::Status clip_search(const awq::ClipSearchParams& p) { return awq::cpu::clip_search(p); }
};

// Batches of at least this many rows go through dequantize + BLAS matmul, which beats the direct
// kernel once the dequantization is amortized over enough rows.
constexpr int64_t kCpuMatmulMinRows = 16;

at::Tensor int4_linear_cpu(const at::Tensor& x, const at::Tensor& qweight, const at::Tensor& scales,
                           const at::Tensor& zeros, const c10::optional<at::Tensor>& bias) {
  const int64_t g = check_int4_linear(x, qweight, scales, zeros, bias);
  const int64_t n = qweight.size(0), k = qweight.size(1) * 8;
  const at::Tensor x2 = x.reshape({-1, k}).contiguous();  // x [..., K] -> [M, K]
  const auto out_shape = int4_linear_out_shape(x, n);
  if (x2.size(0) >= kCpuMatmulMinRows) {
    const at::Tensor w = dequantize_int4_impl<CpuBackend>(qweight, scales, zeros).to(at::kFloat);
    at::Tensor y = at::matmul(x2.to(at::kFloat), w.t());
    if (bias.has_value()) y.add_(bias->to(at::kFloat));
    return y.to(x.scalar_type()).reshape(out_shape);
  }
  at::Tensor y = at::empty({x2.size(0), n}, x.options());
  const at::Tensor b = bias.has_value() ? bias->contiguous() : at::Tensor();
  const awq::Int4LinearParams p = int4_linear_params(x2, qweight, scales, zeros, b, y, g);
  if (y.numel() > 0) raise_on(awq::cpu::int4_linear(p), "awq_ext.int4_linear");
  return y.reshape(out_shape);
}

}  // namespace

TORCH_LIBRARY_IMPL(awq_ext, CPU, m) {
  m.impl("act_stats_", &act_stats_impl<CpuBackend>);
  m.impl("pseudo_quantize", &pseudo_quantize_impl<CpuBackend>);
  m.impl("pseudo_quantize_error", &pseudo_quantize_error_impl<CpuBackend>);
  m.impl("quantize_int4", &quantize_int4_impl<CpuBackend>);
  m.impl("dequantize_int4", &dequantize_int4_impl<CpuBackend>);
  m.impl("pack_awq", &pack_awq_impl<CpuBackend>);
  m.impl("unpack_awq", &unpack_awq_impl<CpuBackend>);
  m.impl("int4_linear", &int4_linear_cpu);
  m.impl("clip_search", &clip_search_impl<CpuBackend>);
}

}  // namespace awq_torch
