// The ATen side of every op, written once: validate (checks.h), allocate outputs, fill the
// params struct, call the backend. B is a backend (cpu_ops.cpp, cuda_ops.cpp) with static functions
// of the core's signatures (awq::cpu::* or awq::cuda::* with the current stream bound). The CUDA
// registration wraps each function in a device guard.
#pragma once
#include <ATen/ATen.h>

#include <tuple>
#include <vector>

#include "checks.h"

namespace awq_torch {

inline void raise_on(awq::Status s, const char* op) {
  TORCH_CHECK(s == awq::Status::kOk, op, ": kernel failed: ", awq::status_string(s));
}

template <class B>
void act_stats_impl(const at::Tensor& x, at::Tensor& abs_sum, at::Tensor& abs_max, at::Tensor& count) {
  check_act_stats(x, abs_sum, abs_max, count);
  const int64_t k = x.size(-1);
  int64_t tokens = 1;  // product of the leading dims (a reshape to [-1, 0] would be ambiguous)
  for (int64_t d = 0; d + 1 < x.dim(); ++d) tokens *= x.size(d);
  if (tokens == 0 || k == 0) {  // nothing to reduce; the tokens still count
    count.add_(tokens);
    return;
  }
  const at::Tensor x2 = x.reshape({tokens, k}).contiguous();  // x [..., K] -> [T, K]
  awq::ActStatsParams p;
  p.x = x2.data_ptr();
  p.dtype = to_awq_dtype(x2.scalar_type());
  p.tokens = tokens;
  p.k = k;
  p.x_stride = k;
  p.abs_sum = abs_sum.data_ptr<float>();
  p.abs_max = abs_max.data_ptr<float>();
  p.count = count.data_ptr<int64_t>();  // updated by the statistics launch itself
  raise_on(B::act_stats(p), "awq_ext.act_stats_");
}

template <class B>
at::Tensor pseudo_quantize_impl(const at::Tensor& w, int64_t bits, int64_t group_size, bool zero_point,
                               const c10::optional<at::Tensor>& scale, const c10::optional<at::Tensor>& clip) {
  const int64_t g = check_pseudo_quantize(w, bits, group_size, scale, clip);
  at::Tensor out = at::empty_like(w);
  at::Tensor s32, c32;
  awq::PseudoQuantParams p;
  p.w = w.data_ptr();
  p.out = out.data_ptr();
  p.dtype = to_awq_dtype(w.scalar_type());
  p.n = w.size(0);
  p.k = w.size(1);
  p.group_size = int(g);
  p.bits = int(bits);
  p.zero_point = zero_point;
  if (scale.has_value()) {
    s32 = scale->to(at::kFloat).contiguous();
    p.in_scale = s32.data_ptr<float>();
  }
  if (clip.has_value()) {
    c32 = clip->contiguous();
    p.clip = c32.data_ptr<float>();
  }
  if (w.numel() > 0) raise_on(B::pseudo_quantize(p), "awq_ext.pseudo_quantize");
  return out;
}

// B::pseudo_quantize_error_workspace fills the backend's launch facts into p (CUDA: sm_count) and
// returns the scratch bytes the kernel needs (CPU: 0); the scratch comes from the caching allocator.
template <class B>
at::Tensor pseudo_quantize_error_impl(const at::Tensor& w, const at::Tensor& scales, int64_t bits, int64_t group_size,
                                      bool zero_point, const c10::optional<at::Tensor>& channel_weight) {
  const int64_t g = check_pseudo_quantize_error(w, scales, bits, group_size, channel_weight);
  const at::Tensor sc = scales.contiguous();
  const at::Tensor cw = channel_weight.has_value() ? channel_weight->contiguous() : at::Tensor();
  at::Tensor err = at::empty({scales.size(0)}, w.options().dtype(at::kFloat));
  if (w.numel() == 0) return err.zero_();
  awq::PseudoQuantErrorParams p;
  p.w = w.data_ptr();
  p.dtype = to_awq_dtype(w.scalar_type());
  p.n = w.size(0);
  p.k = w.size(1);
  p.group_size = int(g);
  p.bits = int(bits);
  p.zero_point = zero_point;
  p.scales = sc.data_ptr<float>();
  p.n_candidates = sc.size(0);
  p.channel_weight = cw.defined() ? cw.data_ptr<float>() : nullptr;
  p.err = err.data_ptr<float>();
  const int64_t ws_bytes = B::pseudo_quantize_error_workspace(p);
  at::Tensor ws;
  if (ws_bytes > 0) {
    ws = at::empty({(ws_bytes + 3) / 4}, w.options().dtype(at::kFloat));
    p.workspace = ws.data_ptr();
    p.workspace_bytes = ws_bytes;
  }
  raise_on(B::pseudo_quantize_error(p), "awq_ext.pseudo_quantize_error");
  return err;
}

template <class B>
std::tuple<at::Tensor, at::Tensor, at::Tensor> quantize_int4_impl(const at::Tensor& w, int64_t group_size,
                                                                 bool zero_point,
                                                                 const c10::optional<at::Tensor>& clip) {
  const int64_t g = check_quantize_int4(w, group_size, clip);
  const int64_t n = w.size(0), k = w.size(1);
  at::Tensor qweight = at::empty({n, k / 8}, w.options().dtype(at::kInt));
  at::Tensor scales = at::empty({n, k / g}, w.options());
  at::Tensor zeros = at::empty({n, k / g}, w.options().dtype(at::kByte));
  at::Tensor c32;
  awq::QuantizeInt4Params p;
  p.w = w.data_ptr();
  p.dtype = to_awq_dtype(w.scalar_type());
  p.n = n;
  p.k = k;
  p.group_size = int(g);
  p.zero_point = zero_point;
  if (clip.has_value()) {
    c32 = clip->contiguous();
    p.clip = c32.data_ptr<float>();
  }
  p.qweight = qweight.data_ptr<int32_t>();
  p.scales = scales.data_ptr();
  p.zeros = zeros.data_ptr<uint8_t>();
  if (w.numel() > 0) raise_on(B::quantize_int4(p), "awq_ext.quantize_int4");
  return {qweight, scales, zeros};
}

template <class B>
at::Tensor dequantize_int4_impl(const at::Tensor& qweight, const at::Tensor& scales, const at::Tensor& zeros) {
  const int64_t g = check_int4_weight("awq_ext.dequantize_int4", qweight, scales, zeros);
  const int64_t n = qweight.size(0), k = qweight.size(1) * 8;
  at::Tensor out = at::empty({n, k}, scales.options());
  awq::DequantInt4Params p;
  p.qweight = qweight.data_ptr<int32_t>();
  p.scales = scales.data_ptr();
  p.zeros = zeros.data_ptr<uint8_t>();
  p.dtype = to_awq_dtype(scales.scalar_type());
  p.n = n;
  p.k = k;
  p.group_size = int(g);
  p.out = out.data_ptr();
  if (out.numel() > 0) raise_on(B::dequantize_int4(p), "awq_ext.dequantize_int4");
  return out;
}

template <class B>
std::tuple<at::Tensor, at::Tensor> pack_awq_impl(const at::Tensor& qweight, const at::Tensor& zeros) {
  check_pack_awq(qweight, zeros);
  const int64_t n = qweight.size(0), k = qweight.size(1) * 8, groups = zeros.size(1);
  at::Tensor qweight_awq = at::empty({k, n / 8}, qweight.options());
  at::Tensor qzeros_awq = at::empty({groups, n / 8}, qweight.options());
  awq::AwqRepackParams p;
  p.qweight = qweight.data_ptr<int32_t>();
  p.zeros = zeros.data_ptr<uint8_t>();
  p.qweight_awq = qweight_awq.data_ptr<int32_t>();
  p.qzeros_awq = qzeros_awq.data_ptr<int32_t>();
  p.n = n;
  p.k = k;
  p.group_size = int(k / groups);
  p.to_awq = true;
  if (qweight_awq.numel() > 0) raise_on(B::awq_repack(p), "awq_ext.pack_awq");
  return {qweight_awq, qzeros_awq};
}

template <class B>
std::tuple<at::Tensor, at::Tensor> unpack_awq_impl(const at::Tensor& qweight_awq, const at::Tensor& qzeros_awq) {
  const int64_t g = check_unpack_awq(qweight_awq, qzeros_awq);
  const int64_t k = qweight_awq.size(0), n = qweight_awq.size(1) * 8;
  at::Tensor qweight = at::empty({n, k / 8}, qweight_awq.options());
  at::Tensor zeros = at::empty({n, k / g}, qweight_awq.options().dtype(at::kByte));
  awq::AwqRepackParams p;
  p.qweight = qweight.data_ptr<int32_t>();
  p.zeros = zeros.data_ptr<uint8_t>();
  p.qweight_awq = qweight_awq.data_ptr<int32_t>();
  p.qzeros_awq = qzeros_awq.data_ptr<int32_t>();
  p.n = n;
  p.k = k;
  p.group_size = int(g);
  p.to_awq = false;
  if (qweight.numel() > 0) raise_on(B::awq_repack(p), "awq_ext.unpack_awq");
  return {qweight, zeros};
}

template <class B>
std::tuple<at::Tensor, at::Tensor> clip_search_impl(const at::Tensor& w, const at::Tensor& x, int64_t bits,
                                                   int64_t group_size, bool zero_point, int64_t n_grid,
                                                   double max_shrink) {
  const auto [g, candidates] = check_clip_search(w, x, bits, group_size, n_grid, max_shrink);
  const at::Tensor xc = x.contiguous();
  const int64_t n = w.size(0), k = w.size(1);
  at::Tensor ratio = at::empty({n, k / g}, w.options().dtype(at::kFloat));
  at::Tensor err = at::empty({n, k / g}, w.options().dtype(at::kFloat));
  awq::ClipSearchParams p;
  p.w = w.data_ptr();
  p.x = xc.data_ptr();
  p.dtype = to_awq_dtype(w.scalar_type());
  p.n = n;
  p.k = k;
  p.tokens = xc.size(0);
  p.group_size = int(g);
  p.bits = int(bits);
  p.zero_point = zero_point;
  p.n_grid = int(n_grid);
  p.n_candidates = int(candidates);
  p.best_ratio = ratio.data_ptr<float>();
  p.best_err = err.data_ptr<float>();
  if (ratio.numel() > 0) raise_on(B::clip_search(p), "awq_ext.clip_search");
  return {ratio, err};
}


// Fills Int4LinearParams for x2 [M, K] -> y [M, N] (shared by both backends' int4_linear).
inline awq::Int4LinearParams int4_linear_params(const at::Tensor& x2, const at::Tensor& qweight,
                                                const at::Tensor& scales, const at::Tensor& zeros,
                                                const at::Tensor& bias, at::Tensor& y, int64_t group_size) {
  awq::Int4LinearParams p;
  p.x = x2.data_ptr();
  p.qweight = qweight.data_ptr<int32_t>();
  p.scales = scales.data_ptr();
  p.zeros = zeros.data_ptr<uint8_t>();
  p.bias = bias.defined() ? bias.data_ptr() : nullptr;
  p.y = y.data_ptr();
  p.dtype = to_awq_dtype(x2.scalar_type());
  p.m = x2.size(0);
  p.n = qweight.size(0);
  p.k = x2.size(1);
  p.x_stride = x2.stride(0);
  p.group_size = int(group_size);
  return p;
}

// Output shape of int4_linear: x's leading dims, then N.
inline std::vector<int64_t> int4_linear_out_shape(const at::Tensor& x, int64_t n) {
  std::vector<int64_t> out_shape(x.sizes().begin(), x.sizes().end());
  out_shape.back() = n;
  return out_shape;
}

}  // namespace awq_torch
