// INT4 packing orders.
//
// Both the kernel layout and the AutoAWQ "gemm" layout put 8 codes in one int32 word with the
// interleaved nibble order below: nibble i (bits 4i..4i+3) holds element kNibbleOrder[i] of the
// word's 8 consecutive elements. With this order, (word >> 4j) & 0x000F000F yields elements 2j and
// 2j+1 in the low and high 16-bit halves, which the fp16/bf16 "magic number" conversion
// (0x6400 | q for fp16 = 1024 + q, 0x4300 | q for bf16 = 128 + q) turns into a packed pair with
// one LOP3 and one subtraction, no per-element shifts.
//
//   kernel layout   qweight [N, K/8]: word (n, j) = W[n, 8j .. 8j+7]          (packed along K)
//   AutoAWQ "gemm"  qweight [K, N/8]: word (k, c) = W^T[k, 8c .. 8c+7]        (packed along N)
//                   qzeros  [K/g, N/8]: zero points, packed like qweight
#pragma once
#include <cstdint>

namespace awq {

// nibble i holds element kNibbleOrder[i]
constexpr int kNibbleOrder[8] = {0, 2, 4, 6, 1, 3, 5, 7};
// element e sits in nibble kNibblePos[e]
constexpr int kNibblePos[8] = {0, 4, 1, 5, 2, 6, 3, 7};

inline constexpr uint32_t pack8(const uint8_t* codes) {
  uint32_t w = 0;
  for (int e = 0; e < 8; ++e) w |= uint32_t(codes[e] & 0xf) << (4 * kNibblePos[e]);
  return w;
}

inline constexpr uint8_t unpack1(uint32_t w, int e) { return uint8_t((w >> (4 * kNibblePos[e])) & 0xf); }

}  // namespace awq
