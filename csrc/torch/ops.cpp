// Op schemas (registered once, here) and the pybind11 module that reports build facts.
//
// CPU implementations: cpu_ops.cpp; CUDA implementations: cuda_ops.cpp (compiled only in CUDA
// builds; without it a CUDA tensor gets torch's "could not run ... with arguments from the 'CUDA'
// backend" error). Fake implementations for torch.compile live in awq_ext/ops.py.
#include <torch/extension.h>
#include <torch/library.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#ifndef AWQ_CUDA_ARCHS
#define AWQ_CUDA_ARCHS ""
#endif
#ifndef AWQ_CUDA_VERSION
#define AWQ_CUDA_VERSION ""
#endif

TORCH_LIBRARY(awq_ext, m) {
  // Accumulates per-channel sum|x| and max|x| (fp32 [K]) of x [..., K]; adds the token count.
  m.def("act_stats_(Tensor x, Tensor(a!) abs_sum, Tensor(b!) abs_max, Tensor(c!) count) -> ()");
  // Grouped quantize-dequantize Q(w * scale) / scale of w [N, K]; clip: fp32 ratios [N, K/group].
  m.def("pseudo_quantize(Tensor w, int bits, int group_size, bool zero_point, Tensor? scale=None, "
        "Tensor? clip=None) -> Tensor");
  // err [C] fp32: err[c] = sum_{n,k} channel_weight[k] * (pseudo_quantize(w, scale=scales[c]) - w)^2 for
  // C candidate scalings scales fp32 [C, K]; no quantized copy is materialized.
  m.def("pseudo_quantize_error(Tensor w, Tensor scales, int bits, int group_size, bool zero_point, "
        "Tensor? channel_weight=None) -> Tensor");
  // w [N, K] -> (qweight int32 [N, K/8], scales [N, G] w.dtype, zeros uint8 [N, G]).
  m.def("quantize_int4(Tensor w, int group_size, bool zero_point, Tensor? clip=None) -> (Tensor, Tensor, Tensor)");
  // Kernel layout -> W [N, K] in scales.dtype.
  m.def("dequantize_int4(Tensor qweight, Tensor scales, Tensor zeros) -> Tensor");
  // Kernel layout -> AutoAWQ "gemm" (qweight int32 [K, N/8], qzeros int32 [G, N/8]).
  m.def("pack_awq(Tensor qweight, Tensor zeros) -> (Tensor, Tensor)");
  // AutoAWQ "gemm" -> kernel layout (qweight int32 [N, K/8], zeros uint8 [N, G]).
  m.def("unpack_awq(Tensor qweight_awq, Tensor qzeros_awq) -> (Tensor, Tensor)");
  // y [..., N] = x [..., K] @ dequant(W)^T (+ bias).
  m.def("int4_linear(Tensor x, Tensor qweight, Tensor scales, Tensor zeros, Tensor? bias=None) -> Tensor");
  // Best clip ratio (and its error) per (row, group) of w [N, K] over tokens x [T, K]: fp32 [N, G] each.
  m.def("clip_search(Tensor w, Tensor x, int bits, int group_size, bool zero_point, int n_grid=20, "
        "float max_shrink=0.5) -> (Tensor, Tensor)");
}

namespace {

pybind11::dict build_info() {
  pybind11::dict d;
#ifdef AWQ_WITH_CUDA
  d["cuda"] = true;
#else
  d["cuda"] = false;
#endif
  d["cuda_version"] = std::string(AWQ_CUDA_VERSION);
  d["cuda_archs"] = std::string(AWQ_CUDA_ARCHS);
#ifdef _OPENMP
  d["openmp"] = true;
#else
  d["openmp"] = false;
#endif
  d["torch_version"] = std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." +
                       std::to_string(TORCH_VERSION_PATCH);
  return d;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "awq_ext native ops (registered under torch.ops.awq_ext) and build facts";
  m.def("build_info", &build_info,
        "Build facts: whether CUDA kernels are compiled in, the CUDA version and archs, OpenMP, torch.");
}
