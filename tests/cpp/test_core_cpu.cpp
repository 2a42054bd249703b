// Smoke test of the torch-free core: links without libtorch and round-trips a quantized weight.
// (The exhaustive comparisons against the PyTorch oracle live in tests/test_ops.py.)
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "awq/core.h"
#include "awq/layout.h"

int main() {
  const int64_t n = 24, k = 192;
  const int g = 64;
  std::mt19937 rng(0);
  std::normal_distribution<float> dist(0.f, 1.f);
  std::vector<float> w(n * k), pq(n * k), deq(n * k), scales(n * k / g);
  for (auto& v : w) v = dist(rng);
  std::vector<int32_t> qweight(n * k / 8), qweight2(n * k / 8), qa(k * n / 8), za(k / g * n / 8);
  std::vector<uint8_t> zeros(n * k / g), zeros2(n * k / g);

  awq::QuantizeInt4Params qp;
  qp.w = w.data(); qp.dtype = awq::DType::kF32; qp.n = n; qp.k = k; qp.group_size = g;
  qp.qweight = qweight.data(); qp.scales = scales.data(); qp.zeros = zeros.data();
  awq::DequantInt4Params dp;
  dp.qweight = qweight.data(); dp.scales = scales.data(); dp.zeros = zeros.data();
  dp.dtype = awq::DType::kF32; dp.n = n; dp.k = k; dp.group_size = g; dp.out = deq.data();
  awq::PseudoQuantParams pp;
  pp.w = w.data(); pp.out = pq.data(); pp.dtype = awq::DType::kF32; pp.n = n; pp.k = k; pp.group_size = g;
  awq::AwqRepackParams to{qweight.data(), zeros.data(), qa.data(), za.data(), n, k, g, true};
  awq::AwqRepackParams from{qweight2.data(), zeros2.data(), qa.data(), za.data(), n, k, g, false};
  if (awq::cpu::quantize_int4(qp) != awq::Status::kOk || awq::cpu::dequantize_int4(dp) != awq::Status::kOk ||
      awq::cpu::pseudo_quantize(pp) != awq::Status::kOk || awq::cpu::awq_repack(to) != awq::Status::kOk ||
      awq::cpu::awq_repack(from) != awq::Status::kOk) {
    std::fprintf(stderr, "a kernel returned an error status\n");
    return 1;
  }
  int failures = 0;
  for (int64_t i = 0; i < n * k; ++i) {
    if (deq[i] != pq[i]) ++failures;  // packed + dequantized == pseudo-quantized, exactly
    if (std::fabs(deq[i] - w[i]) > scales[(i / k) * (k / g) + (i % k) / g]) ++failures;  // within one step
  }
  for (size_t i = 0; i < qweight.size(); ++i) failures += qweight[i] != qweight2[i];
  for (size_t i = 0; i < zeros.size(); ++i) failures += zeros[i] != zeros2[i];
  std::printf("core_cpu: %d failures\n", failures);
  return failures == 0 ? 0 : 1;
}
