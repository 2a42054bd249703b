// Error of grouped pseudo-quantization under C candidate per-input-channel scalings (the batched,
// error-only form of pseudo_quantize used by AWQ's scale search), see PseudoQuantErrorParams:
//   err[c] = sum_{n, k} cw[k] * (rnd_T(Q(w * s_c) / s_c)[n, k] - w[n, k])^2
// Nothing of size [C, N, K] or [N, K] is written: each group of W is read from DRAM once, kept in
// registers, and every candidate of the launch is evaluated on it.
//
// Work split: one warp per (row n, group j) at a time, element i of the group in lane i % 32, slot
// t = i / 32 (coalesced 32-element loads; a lane holds kPer slots, so g <= 32 * kPer; kPer = 0:
// groups over 256 elements, re-read from L1 / L2 per pass instead of held). Per candidate:
//
//     v = w * s_c  ->  lane min / max  ->  5 xor-shuffles  ->  group_qparams (quant_math.h)
//       -> per element: PQ = pseudo_value (the generic pseudo_quantize kernel's arithmetic, or its
//          reused-divisor form as in the fast kernel; either way bit for bit the op's value),
//          d = PQ - w, e += cw * d^2 (fp32)
//       -> acc[warp][c][lane] += e   (shared memory; each lane owns its slots: no atomics, no barrier)
//
// Persistent grid of sm_count * kBlocksPerSm blocks (fewer when there is less work); warps stride
// over the N * G items with items ordered row-fastest, so neighbouring warps share a group column
// and its candidate scales (C * g * 4 bytes) stay in L1. At the end each block sums its 8 x 32 lane
// slots per candidate in a fixed order into workspace[block][c]; a second kernel sums those over
// blocks in a fixed order. Result: deterministic for a given device (grid), no atomics, no host sync,
// no allocation (the workspace comes from the binding's caching allocator), graph-capturable.
//
// Candidates per launch: at most kMaxCands (shared memory 8 warps x 32 lanes x cc x 4 bytes =
// 24 KB at cc = 24, so 4 blocks fit on an SM with room to spare); more candidates take more
// launches over the same W (W read once per candidate block). AWQ's grid has 20 candidates.
#include <algorithm>

#include "quant_device.cuh"

namespace awq {
namespace cuda {
namespace {

using quant::Elem;
using quant::RoundTo;

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kBlocksPerSm = 4;  // resident blocks the grid is sized for (launch bounds below)
constexpr int kMaxCands = 24;    // candidates per launch (shared memory, see above)

// Blocks of the persistent grid (shared by the launcher and the workspace size).
int64_t grid_blocks(const PseudoQuantErrorParams& p) {
  const int64_t items = p.n * (p.k / p.group_size);
  const int64_t sms = p.sm_count > 0 ? p.sm_count : 1;
  return std::max<int64_t>(1, std::min<int64_t>((items + kWarps - 1) / kWarps, sms * kBlocksPerSm));
}

// kPer: group slots per lane held in registers (1, 2, 4, 8 for g <= 32, 64, 128, 256), 0: none.
// Candidates [c0, c0 + cc) of p.n_candidates; partial: [gridDim.x, p.n_candidates].
template <typename T, int kPer>
__global__ void __launch_bounds__(kThreads, kBlocksPerSm)
    pq_error_kernel(const PseudoQuantErrorParams p, int64_t c0, int cc, float* partial) {
  extern __shared__ float acc_sh[];  // [kWarps][cc][32]
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  float* acc = acc_sh + int64_t(warp) * cc * 32 + lane;
  for (int c = 0; c < cc; ++c) acc[c * 32] = 0.0f;

  const int g = p.group_size;
  const int64_t items = p.n * (p.k / g);
  const T* w = static_cast<const T*>(p.w);
  const float* cwp = p.channel_weight;
  constexpr int kSlots = kPer > 0 ? kPer : 1;

  for (int64_t it = int64_t(blockIdx.x) * kWarps + warp; it < items; it += int64_t(gridDim.x) * kWarps) {
    const int64_t n = it % p.n, col0 = (it / p.n) * g;
    const T* src = w + n * p.k + col0;
    // the group's w (fp32) and channel weights, held for all candidates
    float wf[kSlots], cw[kSlots];
    if constexpr (kPer > 0) {
#pragma unroll
      for (int t = 0; t < kPer; ++t) {
        const int i = t * 32 + lane;
        wf[t] = i < g ? Elem<T>::to_f(src[i]) : 0.0f;
        cw[t] = i < g ? (cwp != nullptr ? cwp[col0 + i] : 1.0f) : 0.0f;
      }
    }
    for (int c = 0; c < cc; ++c) {
      const float* s = p.scales + (c0 + c) * p.k + col0;
      float mn = INFINITY, mx = -INFINITY;
      float sv[kSlots];     // this candidate's scales of the lane's slots (1 outside the group)
      bool s_safe = true;   // every scale inside quant::Divisor's range (see below)
      if constexpr (kPer > 0) {
#pragma unroll
        for (int t = 0; t < kPer; ++t) {
          const int i = t * 32 + lane;
          sv[t] = i < g ? s[i] : 1.0f;
          const float m = fabsf(sv[t]);
          s_safe = s_safe && m >= 0x1p-30f && m <= 0x1p30f;  // false for NaN
          if (i < g) {
            const float x = __fmul_rn(wf[t], sv[t]);
            mn = fminf(mn, x);
            mx = fmaxf(mx, x);
          }
        }
      } else {
        for (int i = lane; i < g; i += 32) {
          const float x = __fmul_rn(Elem<T>::to_f(src[i]), s[i]);
          mn = fminf(mn, x);
          mx = fmaxf(mx, x);
        }
      }
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) {
        mn = fminf(mn, __shfl_xor_sync(0xffffffffu, mn, o));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
      }
      const GroupQParams q = group_qparams(mn, mx, 1.0f, p.bits, p.zero_point, RoundTo<T>());
      // d^2 rounded once, then one FMA into e: the sum is fp32 and its order fixed
      auto add = [&](float pq, float wv, float cwi, float& e) {
        const float d = __fsub_rn(pq, wv);
        e = __fmaf_rn(cwi, __fmul_rn(d, d), e);
      };
      auto pq_ieee = [&](float wv, float si) {
        return Elem<T>::to_f(quant::pseudo_value<T>(__fmul_rn(wv, si), q, si, true));
      };
      float e = 0.0f;
      if constexpr (kPer > 0) {
        // Fast form of pq_ieee, bit-identical: both divisions (by the group's scale and by s) with
        // quant::Divisor, exact where its operands are in range (group scale in [2^-64, 2^64],
        // |w * s| <= 2^62, s in [2^-30, 2^30]: the fast pseudo_quantize kernel's conditions);
        // otherwise, warp-uniformly, IEEE `/`. Its one deviation, the sign of a zero quotient,
        // cannot change d^2.
        const float amax = fmaxf(fabsf(mn), fabsf(mx));
        const bool fast = __all_sync(0xffffffffu, s_safe) && q.scale >= 0x1p-64f && q.scale <= 0x1p64f &&
                          amax <= 0x1p62f;  // false for NaN
        if (fast) {
          const quant::Divisor ds(q.scale);
#pragma unroll
          for (int t = 0; t < kPer; ++t) {
            const int i = t * 32 + lane;
            if (i < g) {
              const float x = __fmul_rn(wf[t], sv[t]);
              const float code = clampf(__fadd_rn(rint_f(ds.div(clampf(x, q.lo, q.hi))), q.zero), q.qmin, q.qmax);
              const float r = quant::Divisor(sv[t]).div(dequant_code(code, q));
              add(Elem<T>::to_f(Elem<T>::from_f(r)), wf[t], cw[t], e);
            }
          }
        } else {
#pragma unroll
          for (int t = 0; t < kPer; ++t) {
            const int i = t * 32 + lane;
            if (i < g) add(pq_ieee(wf[t], sv[t]), wf[t], cw[t], e);
          }
        }
      } else {
        for (int i = lane; i < g; i += 32) {
          const float wv = Elem<T>::to_f(src[i]);
          add(pq_ieee(wv, s[i]), wv, cwp != nullptr ? cwp[col0 + i] : 1.0f, e);
        }
      }
      acc[c * 32] += e;
    }
  }

  // block partial per candidate: warps, then lanes, in a fixed order
  __syncthreads();
  for (int c = threadIdx.x; c < cc; c += kThreads) {
    float sum = 0.0f;
    for (int wp = 0; wp < kWarps; ++wp) {
      const float* a = acc_sh + (int64_t(wp) * cc + c) * 32;
      float ws = 0.0f;
      for (int l = 0; l < 32; ++l) ws += a[l];
      sum += ws;
    }
    partial[int64_t(blockIdx.x) * p.n_candidates + c0 + c] = sum;
  }
}

// err[c] = sum over blocks b of partial[b][c]: one block per candidate, strided per-thread sums,
// then a shared-memory tree (fixed order).
__global__ void __launch_bounds__(kThreads)
    pq_error_reduce_kernel(const float* partial, int64_t blocks, int64_t cands, float* err) {
  __shared__ float sh[kThreads];
  const int64_t c = blockIdx.x;
  float s = 0.0f;
  for (int64_t b = threadIdx.x; b < blocks; b += kThreads) s += partial[b * cands + c];
  sh[threadIdx.x] = s;
  __syncthreads();
#pragma unroll
  for (int o = kThreads / 2; o > 0; o >>= 1) {
    if (threadIdx.x < o) sh[threadIdx.x] += sh[threadIdx.x + o];
    __syncthreads();
  }
  if (threadIdx.x == 0) err[c] = sh[0];
}

template <typename T, int kPer>
Status launch_chunk(const PseudoQuantErrorParams& p, int64_t blocks, int64_t c0, int cc, float* partial,
                    cudaStream_t s) {
  const size_t smem = size_t(kWarps) * 32 * size_t(cc) * sizeof(float);
  pq_error_kernel<T, kPer><<<unsigned(blocks), kThreads, smem, s>>>(p, c0, cc, partial);
  return quant::launch_status();
}

// Instantiated: every dtype x kPer in {1, 2, 4, 8, 0} (group sizes up to 32, 64, 128, 256, larger).
template <typename T>
Status launch_chunk_for_group(const PseudoQuantErrorParams& p, int64_t blocks, int64_t c0, int cc, float* partial,
                              cudaStream_t s) {
  const int g = p.group_size;
  if (g <= 32) return launch_chunk<T, 1>(p, blocks, c0, cc, partial, s);
  if (g <= 64) return launch_chunk<T, 2>(p, blocks, c0, cc, partial, s);
  if (g <= 128) return launch_chunk<T, 4>(p, blocks, c0, cc, partial, s);
  if (g <= 256) return launch_chunk<T, 8>(p, blocks, c0, cc, partial, s);
  return launch_chunk<T, 0>(p, blocks, c0, cc, partial, s);
}

}  // namespace

int64_t pseudo_quantize_error_workspace_bytes(const PseudoQuantErrorParams& p) {
  if (p.n <= 0 || p.k <= 0 || p.group_size <= 0 || p.k % p.group_size != 0) return 0;
  return grid_blocks(p) * std::max<int64_t>(p.n_candidates, 0) * int64_t(sizeof(float));
}

Status pseudo_quantize_error(const PseudoQuantErrorParams& p, void* stream) {
  if (p.group_size <= 0 || p.k <= 0 || p.k % p.group_size != 0 || p.bits < 2 || p.bits > 8 ||
      p.n_candidates < 1 || p.n_candidates > 0x7fffffff || p.n <= 0) {
    return Status::kUnsupported;
  }
  const int64_t blocks = grid_blocks(p);
  if (p.workspace == nullptr || p.workspace_bytes < pseudo_quantize_error_workspace_bytes(p)) {
    return Status::kUnsupported;
  }
  auto s = static_cast<cudaStream_t>(stream);
  float* partial = static_cast<float*>(p.workspace);
  for (int64_t c0 = 0; c0 < p.n_candidates; c0 += kMaxCands) {
    const int cc = int(std::min<int64_t>(kMaxCands, p.n_candidates - c0));
    const Status st = AWQ_DTYPE_SWITCH(
        p.dtype, D, [&] { return launch_chunk_for_group<quant::dev_t<D>>(p, blocks, c0, cc, partial, s); });
    if (st != Status::kOk) return st;
  }
  pq_error_reduce_kernel<<<unsigned(p.n_candidates), kThreads, 0, s>>>(partial, blocks, p.n_candidates, p.err);
  return quant::launch_status();
}

}  // namespace cuda
}  // namespace awq
