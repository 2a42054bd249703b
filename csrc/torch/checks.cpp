#include "checks.h"

#include <cmath>

namespace awq_torch {

namespace {

// w [N, K] float, contiguous, with a supported bit width; returns the resolved group size.
int64_t check_grouped_weight(const char* op, const at::Tensor& w, int64_t bits, int64_t group_size) {
  check_float(op, "w", w);
  check_dim(op, "w", w, 2, "[N, K]");
  check_contiguous(op, "w", w);
  check_bits(op, bits);
  return resolve_group(op, group_size, w.size(1));
}

// clip ratios: fp32 [N, K / group_size] on w's device
void check_clip(const char* op, const c10::optional<at::Tensor>& clip, const at::Tensor& w, int64_t g) {
  if (!clip.has_value()) return;
  check_dtype(op, "clip", *clip, at::kFloat);
  check_shape(op, "clip", *clip, {w.size(0), w.size(1) / g});
  check_same_device(op, "clip", *clip, w, "w");
}

}  // namespace

void check_act_stats(const at::Tensor& x, const at::Tensor& abs_sum, const at::Tensor& abs_max,
                     const at::Tensor& count) {
  const char* op = "awq_ext.act_stats_";
  check_float(op, "x", x);
  AWQ_CHECK(x.dim() >= 1, op, ": x must have at least one dimension [..., K], got a scalar");
  const int64_t k = x.size(-1);
  check_dtype(op, "abs_sum", abs_sum, at::kFloat);
  check_dtype(op, "abs_max", abs_max, at::kFloat);
  check_dtype(op, "count", count, at::kLong);
  check_shape(op, "abs_sum", abs_sum, {k});
  check_shape(op, "abs_max", abs_max, {k});
  check_shape(op, "count", count, {1});
  check_contiguous(op, "abs_sum", abs_sum);
  check_contiguous(op, "abs_max", abs_max);
  check_same_device(op, "abs_sum", abs_sum, x, "x");
  check_same_device(op, "abs_max", abs_max, x, "x");
  check_same_device(op, "count", count, x, "x");
}

int64_t check_pseudo_quantize(const at::Tensor& w, int64_t bits, int64_t group_size,
                              const c10::optional<at::Tensor>& scale, const c10::optional<at::Tensor>& clip) {
  const char* op = "awq_ext.pseudo_quantize";
  const int64_t g = check_grouped_weight(op, w, bits, group_size);
  if (scale.has_value()) {
    check_float(op, "scale", *scale);
    check_shape(op, "scale", *scale, {w.size(1)});
    check_same_device(op, "scale", *scale, w, "w");
  }
  check_clip(op, clip, w, g);
  return g;
}

int64_t check_pseudo_quantize_error(const at::Tensor& w, const at::Tensor& scales, int64_t bits, int64_t group_size,
                                    const c10::optional<at::Tensor>& channel_weight) {
  const char* op = "awq_ext.pseudo_quantize_error";
  const int64_t g = check_grouped_weight(op, w, bits, group_size);
  check_dtype(op, "scales", scales, at::kFloat);
  check_dim(op, "scales", scales, 2, "[C, K]");
  AWQ_CHECK(scales.size(1) == w.size(1), op, ": scales has ", scales.size(1), " columns (shape ", scales.sizes(),
            ") but w has in_features=", w.size(1));
  AWQ_CHECK(scales.size(0) >= 1, op, ": scales must hold at least one candidate row, got shape ", scales.sizes());
  check_same_device(op, "scales", scales, w, "w");
  if (channel_weight.has_value()) {
    check_dtype(op, "channel_weight", *channel_weight, at::kFloat);
    check_shape(op, "channel_weight", *channel_weight, {w.size(1)});
    check_same_device(op, "channel_weight", *channel_weight, w, "w");
  }
  return g;
}

int64_t check_quantize_int4(const at::Tensor& w, int64_t group_size, const c10::optional<at::Tensor>& clip) {
  const char* op = "awq_ext.quantize_int4";
  check_float(op, "w", w);
  check_dim(op, "w", w, 2, "[N, K]");
  check_contiguous(op, "w", w);
  AWQ_CHECK(w.size(1) % 8 == 0, op, ": in_features=", w.size(1), " must be a multiple of 8 for INT4 packing");
  const int64_t g = resolve_group(op, group_size, w.size(1));
  check_clip(op, clip, w, g);
  return g;
}

int64_t check_int4_weight(const char* op, const at::Tensor& qweight, const at::Tensor& scales,
                          const at::Tensor& zeros) {
  check_dtype(op, "qweight", qweight, at::kInt);
  check_dim(op, "qweight", qweight, 2, "[N, K/8]");
  check_float(op, "scales", scales);
  check_dim(op, "scales", scales, 2, "[N, K/group_size]");
  check_dtype(op, "zeros", zeros, at::kByte);
  check_contiguous(op, "qweight", qweight);
  check_contiguous(op, "scales", scales);
  check_contiguous(op, "zeros", zeros);
  check_same_device(op, "scales", scales, qweight, "qweight");
  check_same_device(op, "zeros", zeros, qweight, "qweight");
  const int64_t n = qweight.size(0), k = qweight.size(1) * 8;
  AWQ_CHECK(scales.size(0) == n && scales.size(1) >= 1 && k % scales.size(1) == 0, op,
            ": scales shape ", scales.sizes(), " does not match qweight shape ", qweight.sizes(),
            " (expected [", n, ", K/group_size] with K=", k, ")");
  check_shape(op, "zeros", zeros, scales.sizes());
  return k / scales.size(1);
}

void check_pack_awq(const at::Tensor& qweight, const at::Tensor& zeros) {
  const char* op = "awq_ext.pack_awq";
  check_dtype(op, "qweight", qweight, at::kInt);
  check_dim(op, "qweight", qweight, 2, "[N, K/8]");
  check_dtype(op, "zeros", zeros, at::kByte);
  check_dim(op, "zeros", zeros, 2, "[N, K/group_size]");
  check_contiguous(op, "qweight", qweight);
  check_contiguous(op, "zeros", zeros);
  check_same_device(op, "zeros", zeros, qweight, "qweight");
  const int64_t n = qweight.size(0), k = qweight.size(1) * 8;
  AWQ_CHECK(n % 8 == 0, op, ": out_features=", n, " must be a multiple of 8 for the AutoAWQ layout");
  AWQ_CHECK(zeros.size(0) == n && zeros.size(1) >= 1 && k % zeros.size(1) == 0, op, ": zeros shape ",
            zeros.sizes(), " does not match qweight shape ", qweight.sizes());
}

int64_t check_unpack_awq(const at::Tensor& qweight_awq, const at::Tensor& qzeros_awq) {
  const char* op = "awq_ext.unpack_awq";
  check_dtype(op, "qweight_awq", qweight_awq, at::kInt);
  check_dim(op, "qweight_awq", qweight_awq, 2, "[K, N/8]");
  check_dtype(op, "qzeros_awq", qzeros_awq, at::kInt);
  check_dim(op, "qzeros_awq", qzeros_awq, 2, "[K/group_size, N/8]");
  check_contiguous(op, "qweight_awq", qweight_awq);
  check_contiguous(op, "qzeros_awq", qzeros_awq);
  check_same_device(op, "qzeros_awq", qzeros_awq, qweight_awq, "qweight_awq");
  const int64_t k = qweight_awq.size(0);
  AWQ_CHECK(k % 8 == 0, op, ": in_features=", k, " must be a multiple of 8");
  AWQ_CHECK(qzeros_awq.size(1) == qweight_awq.size(1), op, ": qzeros_awq shape ", qzeros_awq.sizes(),
            " does not match qweight_awq shape ", qweight_awq.sizes(), " (N/8 columns differ)");
  AWQ_CHECK(qzeros_awq.size(0) >= 1 && k % qzeros_awq.size(0) == 0, op, ": qzeros_awq has ",
            qzeros_awq.size(0), " group rows, which does not divide in_features=", k);
  return k / qzeros_awq.size(0);
}

int64_t check_int4_linear(const at::Tensor& x, const at::Tensor& qweight, const at::Tensor& scales,
                          const at::Tensor& zeros, const c10::optional<at::Tensor>& bias) {
  const char* op = "awq_ext.int4_linear";
  check_float(op, "x", x);
  AWQ_CHECK(x.dim() >= 1, op, ": x must have shape [..., K], got a scalar");
  const int64_t g = check_int4_weight(op, qweight, scales, zeros);
  const int64_t k = qweight.size(1) * 8;
  AWQ_CHECK(x.size(-1) == k, op, ": x has ", x.size(-1), " features (shape ", x.sizes(),
            ") but the weight has in_features=", k);
  AWQ_CHECK(x.scalar_type() == scales.scalar_type(), op, ": x dtype ", dtype_name(x.scalar_type()),
            " must match scales dtype ", dtype_name(scales.scalar_type()));
  check_same_device(op, "qweight", qweight, x, "x");
  if (bias.has_value()) {
    check_shape(op, "bias", *bias, {qweight.size(0)});
    AWQ_CHECK(bias->scalar_type() == x.scalar_type(), op, ": bias dtype ", dtype_name(bias->scalar_type()),
              " must match x dtype ", dtype_name(x.scalar_type()));
    check_same_device(op, "bias", *bias, x, "x");
  }
  return g;
}

std::pair<int64_t, int64_t> check_clip_search(const at::Tensor& w, const at::Tensor& x, int64_t bits,
                                              int64_t group_size, int64_t n_grid, double max_shrink) {
  const char* op = "awq_ext.clip_search";
  check_float(op, "w", w);
  check_dim(op, "w", w, 2, "[N, K]");
  check_contiguous(op, "w", w);
  check_bits(op, bits);
  const int64_t g = resolve_group(op, group_size, w.size(1));
  check_dim(op, "x", x, 2, "[T, K]");
  AWQ_CHECK(x.size(1) == w.size(1), op, ": x has ", x.size(1), " features (shape ", x.sizes(),
            ") but w has in_features=", w.size(1));
  AWQ_CHECK(x.size(0) >= 1, op, ": x must hold at least one token, got shape ", x.sizes());
  AWQ_CHECK(x.scalar_type() == w.scalar_type(), op, ": x dtype ", dtype_name(x.scalar_type()),
            " must match w dtype ", dtype_name(w.scalar_type()));
  check_same_device(op, "x", x, w, "w");
  AWQ_CHECK(n_grid >= 1, op, ": n_grid=", n_grid, " must be >= 1");
  AWQ_CHECK(max_shrink > 0.0 && max_shrink < 1.0, op, ": max_shrink=", max_shrink, " must be in (0, 1)");
  const int64_t c = int64_t(std::floor(max_shrink * double(n_grid)));
  AWQ_CHECK(c >= 1 && c <= 64, op, ": int(max_shrink * n_grid)=", c, " candidates must be in 1..64 (max_shrink=",
            max_shrink, ", n_grid=", n_grid, ")");
  return {g, c};
}

}  // namespace awq_torch
