// Streaming activation statistics for AWQ calibration: abs_sum[k] += sum_t |x[t, k]| and
// abs_max[k] = max(abs_max[k], max_t |x[t, k]|), both fp32 [K], accumulated across calls.
//
// Called from a forward hook on every calibration batch, so the launcher only enqueues: no sync,
// no scratch memory. Two-level reduction:
//
//               <-------- kColVecs * V columns -------->
//   token slice  lane row 0: t0, t0+4, t0+8, ...          each thread: one V-wide column vector,
//   (blockIdx.x) lane row 1: t0+1, t0+5, ...              fp32 sum and max over its rows
//                lane row 2, lane row 3                   (4 loads in flight per thread)
//   -> shared memory: sum over the kRowLanes lane rows
//   -> one atomicAdd (sum) and one atomicMax (max) per column per block.
//
// The max uses atomicMax on the int bit pattern: for non-negative IEEE floats the bit pattern
// orders like the value (and a NaN, 0x7fc00000, sorts above +inf, so NaN propagates as in torch).
// abs_max must therefore start non-negative (zeros), as the binding allocates it.
//
// A warp reads 32 consecutive 16-byte vectors of one row (512 contiguous bytes): coalesced. The
// grid has enough token slices for one full wave of resident blocks; each slice adds K atomics
// per statistic.
#include <algorithm>

#include "quant_device.cuh"

namespace awq {
namespace cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kColVecs = 64;                    // column vectors per block
constexpr int kRowLanes = kThreads / kColVecs;  // token rows read concurrently by a block
constexpr int kUnroll = 4;                      // independent row loads per thread in flight

// V: elements per load (kVec<T> when x, the row stride and K allow 16-byte access, else 1).
template <typename T, int V>
__global__ void __launch_bounds__(kThreads) act_stats_kernel(const T* __restrict__ x, int64_t tokens, int64_t k,
                                                             int64_t stride, int64_t rows_per_slice,
                                                             float* __restrict__ abs_sum, float* __restrict__ abs_max) {
  constexpr int kCols = kColVecs * V;
  __shared__ float sh_sum[kRowLanes][kCols];
  __shared__ float sh_max[kRowLanes][kCols];

  const int cv = threadIdx.x % kColVecs;
  const int rl = threadIdx.x / kColVecs;
  const int64_t col_base = int64_t(blockIdx.y) * kCols;
  const int64_t col = col_base + int64_t(cv) * V;
  const int64_t t0 = int64_t(blockIdx.x) * rows_per_slice;
  const int64_t t1 = min(tokens, t0 + rows_per_slice);

  float s[V], m[V];
#pragma unroll
  for (int e = 0; e < V; ++e) s[e] = m[e] = 0.0f;

  auto accumulate = [&](const float (&f)[V]) {
#pragma unroll
    for (int e = 0; e < V; ++e) {
      const float a = fabsf(f[e]);
      s[e] += a;
      m[e] = fmaxf(m[e], a);
    }
  };
  auto load = [&](int64_t t, float (&f)[V]) {
    const T* p = x + t * stride + col;
    if constexpr (V == 1) {
      f[0] = quant::Elem<T>::to_f(*p);
    } else {
      quant::load_vec<T>(p, f);
    }
  };

  if (col < k) {  // K % V == 0 on the vector path, so a vector is all in or all out
    int64_t t = t0 + rl;
    for (; t + (kUnroll - 1) * kRowLanes < t1; t += kUnroll * kRowLanes) {
      float f[kUnroll][V];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) load(t + u * kRowLanes, f[u]);
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) accumulate(f[u]);
    }
    for (; t < t1; t += kRowLanes) {
      float f[V];
      load(t, f);
      accumulate(f);
    }
  }

#pragma unroll
  for (int e = 0; e < V; ++e) {
    sh_sum[rl][cv * V + e] = s[e];
    sh_max[rl][cv * V + e] = m[e];
  }
  __syncthreads();
  for (int c = threadIdx.x; c < kCols; c += kThreads) {
    if (col_base + c >= k) break;
    float ts = sh_sum[0][c], tm = sh_max[0][c];
#pragma unroll
    for (int r = 1; r < kRowLanes; ++r) {
      ts += sh_sum[r][c];
      tm = fmaxf(tm, sh_max[r][c]);
    }
    atomicAdd(abs_sum + col_base + c, ts);
    atomicMax(reinterpret_cast<int*>(abs_max) + col_base + c, __float_as_int(tm));
  }
}

// Blocks of act_stats_kernel<T, V> resident on one SM (a host-side occupancy calculation, cached).
template <typename T, int V>
int resident_blocks() {
  static int cached = 0;
  if (cached == 0) {
    int nb = 0;
    if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&nb, act_stats_kernel<T, V>, kThreads, 0) != cudaSuccess || nb < 1) {
      nb = 4;
    }
    cached = nb;
  }
  return cached;
}

template <typename T, int V>
Status launch_act_stats(const ActStatsParams& p, cudaStream_t stream) {
  constexpr int kCols = kColVecs * V;
  const int64_t col_tiles = (p.k + kCols - 1) / kCols;
  if (col_tiles > 65535) return Status::kUnsupported;
  // One full wave of resident blocks, each streaming a long token slice; every slice keeps at
  // least 16 rows so the per-slice atomics stay a small cost.
  const int64_t target_blocks = int64_t(quant::sm_count()) * resident_blocks<T, V>();
  int64_t slices = (target_blocks + col_tiles - 1) / col_tiles;
  slices = std::max<int64_t>(1, std::min<int64_t>(slices, (p.tokens + 15) / 16));
  const int64_t rows_per_slice = (p.tokens + slices - 1) / slices;
  slices = (p.tokens + rows_per_slice - 1) / rows_per_slice;
  const dim3 grid{unsigned(slices), unsigned(col_tiles), 1u};
  act_stats_kernel<T, V><<<grid, kThreads, 0, stream>>>(static_cast<const T*>(p.x), p.tokens, p.k, p.x_stride,
                                                         rows_per_slice, p.abs_sum, p.abs_max);
  return quant::launch_status();
}

}  // namespace

// Instantiated: fp16, bf16, fp32, each with 16-byte loads (x 16-byte aligned, K and x_stride
// multiples of the vector width) and with scalar loads (anything else).
Status act_stats(const ActStatsParams& p, void* stream) {
  if (p.tokens <= 0 || p.k <= 0) return Status::kOk;
  if (p.x_stride < p.k) return Status::kUnsupported;
  auto s = static_cast<cudaStream_t>(stream);
  return AWQ_DTYPE_SWITCH(p.dtype, D, [&] {
    using T = quant::dev_t<D>;
    constexpr int V = quant::kVec<T>;
    const bool vec_ok = quant::aligned16(p.x) && p.k % V == 0 && p.x_stride % V == 0;
    return vec_ok ? launch_act_stats<T, V>(p, s) : launch_act_stats<T, 1>(p, s);
  });
}

}  // namespace cuda
}  // namespace awq
