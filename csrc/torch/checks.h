// Input validation shared by the CPU and CUDA bindings. The only place that inspects user input:
// every failure names the op, the argument and the offending value.
#pragma once
#include <ATen/ATen.h>

#include <cstdio>
#include <string>

#include "awq/core.h"

namespace awq_torch {

// Error messages are assembled here into one std::string (numbers via std::to_string) and thrown as
// c10::ValueError (Python ValueError). Formatting integers through an std::ostream inside the
// extension crashed on a torch build whose libstdc++ locale facets differ from the compiler's
// (seen with torch 2.11 on the GPU machine): no iostreams on this path.
namespace detail {
inline void append(std::string& s, const char* v) { s += v; }
inline void append(std::string& s, const std::string& v) { s += v; }
inline void append(std::string& s, int v) { s += std::to_string(v); }
inline void append(std::string& s, long v) { s += std::to_string(v); }
inline void append(std::string& s, long long v) { s += std::to_string(v); }
inline void append(std::string& s, double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g", v);
  s += buf;
}
inline void append(std::string& s, at::IntArrayRef v) {
  s += "[";
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(v[i]);
  }
  s += "]";
}
inline void append(std::string& s, const c10::Device& d) { s += d.str(); }
template <typename... A>
std::string message(const A&... parts) {
  std::string s;
  (append(s, parts), ...);
  return s;
}
}  // namespace detail

#define AWQ_CHECK(cond, ...)                                                                    \
  do {                                                                                          \
    if (C10_UNLIKELY(!(cond))) {                                                                \
      throw ::c10::ValueError({__func__, __FILE__, static_cast<uint32_t>(__LINE__)},            \
                              ::awq_torch::detail::message(__VA_ARGS__));                       \
    }                                                                                           \
  } while (0)

inline const char* dtype_name(at::ScalarType t) { return c10::toString(t); }

inline awq::DType to_awq_dtype(at::ScalarType t) {
  switch (t) {
    case at::kHalf: return awq::DType::kF16;
    case at::kBFloat16: return awq::DType::kBF16;
    default: return awq::DType::kF32;
  }
}

inline void check_float(const char* op, const char* name, const at::Tensor& t) {
  AWQ_CHECK(t.scalar_type() == at::kHalf || t.scalar_type() == at::kBFloat16 || t.scalar_type() == at::kFloat,
            op, ": ", name, " must be float16, bfloat16 or float32, got ", dtype_name(t.scalar_type()));
}

inline void check_dtype(const char* op, const char* name, const at::Tensor& t, at::ScalarType want) {
  AWQ_CHECK(t.scalar_type() == want, op, ": ", name, " must be ", dtype_name(want), ", got ",
            dtype_name(t.scalar_type()));
}

inline void check_dim(const char* op, const char* name, const at::Tensor& t, int64_t dim, const char* shape) {
  AWQ_CHECK(t.dim() == dim, op, ": ", name, " must be ", dim, "-D ", shape, ", got shape ", t.sizes());
}

inline void check_contiguous(const char* op, const char* name, const at::Tensor& t) {
  AWQ_CHECK(t.is_contiguous(), op, ": ", name, " must be contiguous (shape ", t.sizes(), ", strides ",
            t.strides(), ")");
}

inline void check_same_device(const char* op, const char* name, const at::Tensor& t, const at::Tensor& ref,
                              const char* ref_name) {
  AWQ_CHECK(t.device() == ref.device(), op, ": ", name, " is on ", t.device(), " but ", ref_name, " is on ",
            ref.device());
}

inline void check_shape(const char* op, const char* name, const at::Tensor& t, at::IntArrayRef want) {
  AWQ_CHECK(t.sizes() == want, op, ": ", name, " must have shape ", want, ", got ", t.sizes());
}

inline void check_bits(const char* op, int64_t bits) {
  AWQ_CHECK(bits >= 2 && bits <= 8, op, ": bits=", bits, " must be in 2..8");
}

// group_size: -1 (whole row) or a positive divisor of k. Returns the resolved group size.
inline int64_t resolve_group(const char* op, int64_t group_size, int64_t k) {
  if (group_size == -1) return k;
  AWQ_CHECK(group_size > 0, op, ": group_size=", group_size, " must be positive or -1 (whole row)");
  AWQ_CHECK(k % group_size == 0, op, ": group_size=", group_size, " must divide in_features=", k);
  return group_size;
}

// ---- per-op validation (shared by CPU and CUDA) ----------------------------------------------

void check_act_stats(const at::Tensor& x, const at::Tensor& abs_sum, const at::Tensor& abs_max,
                     const at::Tensor& count);

// Returns the resolved group size.
int64_t check_pseudo_quantize(const at::Tensor& w, int64_t bits, int64_t group_size,
                              const c10::optional<at::Tensor>& scale, const c10::optional<at::Tensor>& clip);

// Returns the resolved group size.
int64_t check_pseudo_quantize_error(const at::Tensor& w, const at::Tensor& scales, int64_t bits, int64_t group_size,
                                    const c10::optional<at::Tensor>& channel_weight);

int64_t check_quantize_int4(const at::Tensor& w, int64_t group_size, const c10::optional<at::Tensor>& clip);

// Returns the group size implied by the shapes.
int64_t check_int4_weight(const char* op, const at::Tensor& qweight, const at::Tensor& scales,
                          const at::Tensor& zeros);

void check_pack_awq(const at::Tensor& qweight, const at::Tensor& zeros);
int64_t check_unpack_awq(const at::Tensor& qweight_awq, const at::Tensor& qzeros_awq);

int64_t check_int4_linear(const at::Tensor& x, const at::Tensor& qweight, const at::Tensor& scales,
                          const at::Tensor& zeros, const c10::optional<at::Tensor>& bias);

// Returns (resolved group size, number of candidates).
std::pair<int64_t, int64_t> check_clip_search(const at::Tensor& w, const at::Tensor& x, int64_t bits,
                                              int64_t group_size, int64_t n_grid, double max_shrink);

}  // namespace awq_torch
