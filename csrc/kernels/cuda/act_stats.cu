// Streaming activation statistics for AWQ calibration: abs_sum[k] += sum_t |x[t, k]| and
// abs_max[k] = max(abs_max[k], max_t |x[t, k]|), both fp32 [K], accumulated across calls.
//
// Called from a forward hook on every calibration batch, so the launcher only enqueues: no sync,
// no scratch memory. One wave of tall blocks, each reducing a token slice of one channel strip:
//
//              <--- strip: 32 lanes x V columns (one 16-byte vector per lane) --->
//   warp 0     rows t0,      t0 + W,      ...   (W = kWarps; kUnroll rows in flight per thread)
//   warp 1     rows t0 + 1,  t0 + W + 1,  ...
//   ...                                          each lane: fp32 sum and max of its V columns in
//   warp W-1                                     registers over every row it reads
//   -> shared memory [warp][strip column]: sum over the W warps
//   -> one atomic add (sum) and one atomic max (max) per column per block, consecutive threads on
//      consecutive columns, the sums as 16-byte vector reductions on sm_90.
//
// Why tall and narrow: the block's partial results leave through global atomics, one pair per
// column per block, and they all arrive at the end of the wave: they are the kernel's tail. H200,
// [8192, 4096] fp16 (bench/results/quant_notes.md, session 9): with a warp's atomics spread over 8
// cache lines (a lane's columns V apart) the kernel ran at 82-86 % of copy bandwidth, and 16-warp-wide
// strips (132 blocks per column instead of 8) at 28 %; with coalesced atomics, the sums four columns
// per 16-byte reduction, 87-89 % and 77 %. The count is blocks x strip width:
// for the same resident threads, 512-thread blocks on 256-column strips (fp16) issue a quarter of
// the atomics of 256-thread blocks on 512-column strips (1024-thread blocks, used now, half again). A
// warp still reads 512 contiguous bytes of a row per load instruction, and the strip stays in
// registers (no shared-memory transposes).
//
// The max is taken on the bit patterns of |x| (in each thread, across warps, and by atomicMax): for
// non-negative IEEE floats the bit pattern orders like the value, and a NaN (sign cleared, exponent
// all ones, non-zero mantissa) sorts above +inf, so a NaN in x makes its channel's max NaN, as torch's
// amax does (fmaxf would drop it). abs_max must therefore start non-negative (zeros), as the binding
// allocates it.
#include <algorithm>

#include "quant_device.cuh"

namespace awq {
namespace cuda {
namespace {

// Threads per block (overridable, like kUnroll below, for tuning builds of bench_quant only).
#ifndef AWQ_ACT_THREADS
#define AWQ_ACT_THREADS 1024
#endif
constexpr int kThreads = AWQ_ACT_THREADS;
constexpr int kWarps = kThreads / 32;
// Independent 16-byte row loads in flight per thread: 1024 threads x 4 x 16 B = 64 KB per block,
// several times the bytes per SM that keep HBM busy (bandwidth x latency / SMs ~ 30 KB).
// Measured on the H200 (bench/results/quant_notes.md, 2026-11-21 09:58 UTC, [8192, 4096]): 1024 x 4
// 83.7 / 83.3 % of copy (fp16 / bf16) vs 512 x 8 77-82 %; a software-pipelined loop (next rows
// requested before the current ones are reduced) gained nothing (82-83 % with 1024 threads).
#ifndef AWQ_ACT_UNROLL
#define AWQ_ACT_UNROLL 4
#endif
constexpr int kUnroll = AWQ_ACT_UNROLL;

// 16-byte vector reductions (atomicAdd on float4) exist from sm_90; earlier targets (and the
// compute_80 PTX) reduce one column per thread, so that a warp's atomics still cover one line.
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
constexpr bool kVecRed = true;
#else
constexpr bool kVecRed = false;
#endif

// V: elements per load (kVec<T> when x, the row stride and K allow 16-byte access, else 1).
template <typename T, int V>
__global__ void __launch_bounds__(kThreads, 1024 / kThreads) act_stats_kernel(const T* __restrict__ x, int64_t tokens, int64_t k,
                                                                int64_t stride, int64_t rows_per_slice,
                                                                float* __restrict__ abs_sum, float* __restrict__ abs_max,
                                                                bool vec_red, int64_t* __restrict__ count) {
  constexpr int kCols = 32 * V;
  __shared__ __align__(16) float sh[kWarps][kCols];

  const int lane = threadIdx.x % 32;
  const int warp = threadIdx.x / 32;
  const int64_t col_base = int64_t(blockIdx.y) * kCols;
  const int64_t col = col_base + int64_t(lane) * V;
  const int64_t t0 = int64_t(blockIdx.x) * rows_per_slice;
  const int64_t t1 = min(tokens, t0 + rows_per_slice);
  const bool active = col < k;  // K % V == 0 on the vector path, so a vector is all in or all out
  // the token count, by one thread of the launch (launches on a stream are ordered: no atomic)
  if (count != nullptr && blockIdx.x == 0 && blockIdx.y == 0 && threadIdx.x == 0) *count += tokens;

  float s[V];
  uint32_t m[V];  // bit patterns of the max |x| (see the top of the file)
#pragma unroll
  for (int e = 0; e < V; ++e) {
    s[e] = 0.0f;
    m[e] = 0u;
  }

  if (active) {
    const T* p = x + col;
    // rows past the slice read as zeros, which change neither statistic
    auto load = [&](int64_t t, uint4 (&raw)[kUnroll], float (&one)[kUnroll]) {
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int64_t row = t + int64_t(u) * kWarps;
        if constexpr (V == 1) {
          one[u] = row < t1 ? quant::Elem<T>::to_f(p[row * stride]) : 0.0f;
        } else {
          raw[u] = row < t1 ? *reinterpret_cast<const uint4*>(p + row * stride) : make_uint4(0, 0, 0, 0);
        }
      }
    };
    auto consume = [&](const uint4 (&raw)[kUnroll], const float (&one)[kUnroll]) {
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        float f[V];
        if constexpr (V == 1) {
          f[0] = one[u];
        } else {
          quant::unpack<T>(raw[u], f);
        }
#pragma unroll
        for (int e = 0; e < V; ++e) {
          const float a = fabsf(f[e]);
          s[e] += a;
          m[e] = max(m[e], __float_as_uint(a));
        }
      }
    };
    constexpr int64_t kStep = int64_t(kWarps) * kUnroll;
    uint4 raw[kUnroll];
    float one[kUnroll];
    // all loads of kUnroll rows first (raw bits: 4 registers per 16-byte vector), then the reduction
    for (int64_t t = t0 + warp; t < t1; t += kStep) {
      load(t, raw, one);
      consume(raw, one);
    }
  }

  // sh[warp][strip column]: each lane stores its V partial results as 16-byte vectors; reducer i then
  // owns columns 4i .. 4i + 3 for the sums where one 16-byte vector reduction is available (sm_90,
  // abs_sum 16-byte aligned), else column i, and column i for the maxima, so a warp's atomics cover
  // consecutive columns.
  auto put = [&](const float (&v)[V]) {
    float* d = &sh[warp][lane * V];
    if constexpr (V % 4 == 0) {
#pragma unroll
      for (int h = 0; h < V; h += 4) *reinterpret_cast<float4*>(d + h) = make_float4(v[h], v[h + 1], v[h + 2], v[h + 3]);
    } else {
#pragma unroll
      for (int e = 0; e < V; ++e) d[e] = v[e];
    }
  };
  put(s);
  __syncthreads();
  if (V % 4 == 0 && kVecRed && vec_red) {
    // K % V == 0 on this path: four columns from a multiple of 4 lie all inside K or all outside
    const int i = threadIdx.x;
    const int64_t c = col_base + 4 * int64_t(i);
    if (i < kCols / 4 && c < k) {
      float4 t = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
#pragma unroll
      for (int w = 0; w < kWarps; ++w) {
        const float4 v = *reinterpret_cast<const float4*>(&sh[w][4 * i]);
        t.x += v.x;
        t.y += v.y;
        t.z += v.z;
        t.w += v.w;
      }
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
      atomicAdd(reinterpret_cast<float4*>(abs_sum + c), t);
#endif
    }
  } else {
    const int i = threadIdx.x;
    const int64_t c = col_base + i;
    if (i < kCols && c < k) {
      float t = 0.0f;
#pragma unroll
      for (int w = 0; w < kWarps; ++w) t += sh[w][i];
      atomicAdd(abs_sum + c, t);
    }
  }
  __syncthreads();
  float mf[V];
#pragma unroll
  for (int e = 0; e < V; ++e) mf[e] = __uint_as_float(m[e]);
  put(mf);
  __syncthreads();
  const int i = threadIdx.x;
  const int64_t c = col_base + i;
  if (i < kCols && c < k) {
    // the max over the warps on the bit patterns (non-negative: they order like the values)
    int mx = 0;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) mx = max(mx, __float_as_int(sh[w][i]));
    atomicMax(reinterpret_cast<int*>(abs_max) + c, mx);
  }
}
static_assert(32 * 8 <= kThreads, "the reduction uses one thread per strip column");

// Blocks of act_stats_kernel<T, V> resident on one SM (a host-side occupancy calculation, cached).
template <typename T, int V>
int resident_blocks() {
  static int cached = 0;
  if (cached == 0) {
    int nb = 0;
    if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&nb, act_stats_kernel<T, V>, kThreads, 0) != cudaSuccess || nb < 1) {
      nb = 1;
    }
    cached = nb;
  }
  return cached;
}

template <typename T, int V>
Status launch_act_stats(const ActStatsParams& p, cudaStream_t stream) {
  constexpr int kCols = 32 * V;
  const int64_t col_tiles = (p.k + kCols - 1) / kCols;
  if (col_tiles > 65535) return Status::kUnsupported;
  // One wave of resident blocks, rounded down to whole token slices per strip (never more than the
  // wave: a second, partial wave would double the tail). Every slice keeps at least one row per
  // warp and unrolled load.
  const int64_t wave = int64_t(quant::sm_count()) * resident_blocks<T, V>();
  int64_t slices = std::max<int64_t>(1, wave / col_tiles);
  slices = std::min<int64_t>(slices, std::max<int64_t>(1, p.tokens / (kWarps * kUnroll)));
  const int64_t rows_per_slice = (p.tokens + slices - 1) / slices;
  slices = (p.tokens + rows_per_slice - 1) / rows_per_slice;
  const dim3 grid{unsigned(slices), unsigned(col_tiles), 1u};
  act_stats_kernel<T, V><<<grid, kThreads, 0, stream>>>(static_cast<const T*>(p.x), p.tokens, p.k, p.x_stride,
                                                         rows_per_slice, p.abs_sum, p.abs_max,
                                                         quant::aligned16(p.abs_sum), p.count);
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
