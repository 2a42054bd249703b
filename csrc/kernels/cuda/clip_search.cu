// AWQ clip search on the GPU. For row n, group j (g input channels) and candidate ratio r_i:
//   err_i[n, j] = sum_t ( sum_{c < g} x[t, jg + c] * D_i[n, c] )^2,   D_i = Q_{r_i}(w) - w  (fp32)
// and the best ratio is the first argmin over i. Nothing of size [N, T, G, g] is materialized:
// for a fixed group j this is a small GEMM, X_j [T x g] @ D_j [g x (N * C)], whose [T x (N * C)]
// result is squared and summed over T on the fly.
//
// Design (SIMT fp32, chosen over mma.sync): the products are accumulated in fp32 from fp32 deltas,
// so the errors carry ~1e-6 relative error and the chosen ratios agree with the fp64 oracle except
// on genuine near-ties. Tensor cores would need the deltas rounded to fp16/bf16/tf32 (1e-3 .. 4e-3
// relative), which blurs exactly the differences the search ranks. The fp32 path already runs well
// over the 10x target against the chunked PyTorch formulation (see bench/results/quant_notes.md).
//
// Block = one group j x a tile of R = 128 / C rows, i.e. 128 "columns" (row r, candidate i),
// col = r * C + i (columns past R * C are zero). 256 threads.
//
//   1. min / max of each row's group (two threads per column, every other element), then each
//      column's quantization parameters for its ratio -> shared memory.
//   2. deltas D [kDC group elements x 128 columns] built once into shared memory (rebuilt per
//      token chunk only when g > kDC, i.e. whole-row groups).
//   3. for each chunk of 128 tokens: for each tile of 32 group elements: X tile [32 x 128 tokens]
//      (transposed to fp32 in shared memory, prefetched into registers one step ahead), then the
//      register-tiled outer products: thread (ty, tx) of a 16 x 16 grid owns tokens
//      {4ty..4ty+3, 64+4ty..64+4ty+3} x columns {4tx..4tx+3, 64+4tx..64+4tx+3}, 64 fp32 accumulators,
//      4 x 16-byte shared loads per 64 FMAs. After the chunk's last tile each accumulator (a full
//      dot product over the group) is squared into the thread's 8 column errors.
//   4. column errors summed over the 16 thread rows, argmin over candidates per row.
//
//   shared memory: D 128 x 128 fp32 (64 KB) + X 32 x 128 fp32 (16 KB) + parameters (4 KB) + X
//   staging 128 x (32 raw elements + 16 bytes) (10 KB fp16/bf16, 18 KB fp32): two blocks per SM,
//   128 registers per thread.
#include <algorithm>

#include "quant_device.cuh"

namespace awq {
namespace cuda {
namespace {

using quant::Elem;
using quant::RoundTo;

constexpr int kThreads = 256;
constexpr int kTT = 128;    // tokens per chunk
constexpr int kCols = 128;  // (row, candidate) columns per block
constexpr int kCK = 32;     // group elements per X tile
constexpr int kDC = 128;    // group elements whose deltas are held in shared memory at once
constexpr int kXElems = kCK * kTT / kThreads;  // X elements each thread loads per tile (16)
static_assert(kDC % kCK == 0, "a delta chunk holds whole X tiles");
static_assert(kXElems == 16, "the X prefetch is written for 16 elements per thread");

constexpr size_t kSmemFloats = size_t(kDC) * kCols + size_t(kCK) * kTT + 4 * kCols + 4 * kCols;
// staging row of one token's kCK raw X elements, padded by 16 bytes (see store_x)
template <typename T>
constexpr int kStagePitch = kCK * int(sizeof(T)) + 16;
template <typename T>
constexpr size_t kSmemBytes = kSmemFloats * sizeof(float) + size_t(kTT) * kStagePitch<T>;

// kVecX: X rows are read with 16-byte cp.async (x 16-byte aligned, K multiple of the vector width,
// g multiple of 16, so a thread's 16 elements are one aligned run inside or outside the group).
// The scalar fallback runs one block per SM so that its 128+ registers do not spill.
template <typename T, bool kVecX>
__global__ void __launch_bounds__(kThreads, kVecX ? 2 : 1) clip_search_kernel(const ClipSearchParams p, int rows_per_block,
                                                                  int64_t groups) {
  extern __shared__ float4 smem4[];
  float* ds = reinterpret_cast<float*>(smem4);  // [kDC][kCols] deltas
  float* xs = ds + kDC * kCols;                  // [kCK][kTT] X tile, transposed; later the error partials
  float* red_mn = xs + kCK * kTT;                // [2][kCols] min halves
  float* red_mx = red_mn + 2 * kCols;            // [2][kCols] max halves
  float* q_scale = red_mx + 2 * kCols;           // [kCols] per-column quantization parameters
  float* q_zero = q_scale + kCols;
  float* q_lo = q_zero + kCols;
  float* q_hi = q_lo + kCols;  // followed by the X staging rows [kTT][kStagePitch<T> bytes]

  const int tid = threadIdx.x;
  const int g = p.group_size;
  const int cands = p.n_candidates;
  const int64_t j = blockIdx.x % groups;
  const int64_t n0 = int64_t(blockIdx.x / groups) * rows_per_block;
  const T* w = static_cast<const T*>(p.w);
  const T* x = static_cast<const T*>(p.x);

  // ---- 1. quantization parameters of this thread's column ----
  const int col = tid % kCols, half = tid / kCols;
  const int r = col / cands, cand = col % cands;
  const bool col_ok = r < rows_per_block && n0 + r < p.n;
  const T* wrow = w + (col_ok ? n0 + r : 0) * p.k + j * g;
  {
    float mn = INFINITY, mx = -INFINITY;
    if (col_ok) {
      for (int c = half; c < g; c += 2) {
        const float v = Elem<T>::to_f(wrow[c]);
        mn = fminf(mn, v);
        mx = fmaxf(mx, v);
      }
    }
    red_mn[half * kCols + col] = mn;
    red_mx[half * kCols + col] = mx;
  }
  __syncthreads();
  if (half == 0) {
    const float mn = fminf(red_mn[col], red_mn[kCols + col]);
    const float mx = fmaxf(red_mx[col], red_mx[kCols + col]);
    // the oracle's candidate: a Python float 1 - i / n_grid, stored as fp32
    const float ratio = float(1.0 - double(cand) / double(p.n_grid));
    const GroupQParams q = group_qparams(mn, mx, ratio, p.bits, p.zero_point, RoundTo<T>());
    q_scale[col] = q.scale;
    q_zero[col] = q.zero;
    q_lo[col] = q.lo;
    q_hi[col] = q.hi;
  }
  __syncthreads();

  // ---- 2. deltas of group elements [c0, c0 + kDC) ----
  auto build_deltas = [&](int c0) {
    GroupQParams q;
    q.scale = q_scale[col];
    q.zero = q_zero[col];
    q.lo = q_lo[col];
    q.hi = q_hi[col];
    if (p.zero_point) {
      q.qmin = 0.0f;
      q.qmax = float((1 << p.bits) - 1);
    } else {
      q.qmin = -float(1 << (p.bits - 1));
      q.qmax = float((1 << (p.bits - 1)) - 1);
    }
#pragma unroll 8
    for (int i = 0; i < kDC / 2; ++i) {
      const int c = 2 * i + half;
      const int gc = c0 + c;
      float d = 0.0f;
      if (col_ok && gc < g) {
        const float v = Elem<T>::to_f(wrow[gc]);
        // __fsub_rn: the product inside dequant_code is rounded first, as in the oracle, instead
        // of being contracted with this subtraction into one FMA
        d = __fsub_rn(dequant_code(quant_code(v, q), q), v);
      }
      ds[c * kCols + col] = d;
    }
  };

  // ---- X tiles: thread (token xt, half xh) loads group elements [c0 + 16 xh, c0 + 16 xh + 16) ----
  // Vector path: cp.async copies them (16 bytes at a time, zero-filled outside T and g) into a
  // staging row of the raw dtype one step ahead; store_x then converts the thread's own staged
  // elements to fp32 and writes them transposed. A thread only reads what it copied itself, so
  // cp.async.wait_group alone (no barrier) makes them visible. Staging rows are padded by 16 bytes
  // so the 16-byte reads of 8 consecutive tokens fall in distinct banks.
  // Scalar path: plain loads at store time, no prefetch.
  const int xt = tid % kTT, xh = tid / kTT;
  constexpr int kRaw = int(sizeof(T));  // 16-byte chunks per thread (16 elements)
  char* stage_row = reinterpret_cast<char*>(q_hi + kCols) + xt * kStagePitch<T> + xh * 16 * int(sizeof(T));
  auto x_src = [&](int tc, int c0, bool& ok) {
    const int64_t tok = int64_t(tc) * kTT + xt;
    const int cb = c0 + xh * 16;
    ok = tok < p.tokens && cb < g;
    return x + (ok ? tok * p.k + j * g + cb : 0);
  };
  auto prefetch = [&](int tc, int c0) {
    if constexpr (kVecX) {
      bool ok;
      const T* src = x_src(tc, c0, ok);
      const uint32_t dst = uint32_t(__cvta_generic_to_shared(stage_row));
#pragma unroll
      for (int i = 0; i < kRaw; ++i) {
        asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst + 16 * i),
                     "l"(reinterpret_cast<const char*>(src) + 16 * i), "r"(ok ? 16 : 0));
      }
      asm volatile("cp.async.commit_group;\n" ::);
    }
  };
  auto store_x = [&](int tc, int c0) {
    float* dst = xs + (xh * 16) * kTT + xt;
    if constexpr (kVecX) {
      constexpr int V = quant::kVec<T>;
      asm volatile("cp.async.wait_group 0;\n" ::: "memory");
#pragma unroll
      for (int i = 0; i < kRaw; ++i) {
        float f[V];
        quant::unpack<T>(*reinterpret_cast<const uint4*>(stage_row + 16 * i), f);
#pragma unroll
        for (int e = 0; e < V; ++e) dst[(i * V + e) * kTT] = f[e];
      }
    } else {
      const int64_t tok = int64_t(tc) * kTT + xt;
      const int cb = c0 + xh * 16;
      const T* src = x + tok * p.k + j * g + cb;
#pragma unroll
      for (int e = 0; e < kXElems; ++e) {
        dst[e * kTT] = (tok < p.tokens && cb + e < g) ? Elem<T>::to_f(src[e]) : 0.0f;
      }
    }
  };

  // ---- 3. main loop ----
  const int tx = tid % 16, ty = tid / 16;
  const int n_tc = int((p.tokens + kTT - 1) / kTT);
  const int n_cc = (g + kCK - 1) / kCK;
  const bool rebuild = g > kDC;
  const float4* xs4 = reinterpret_cast<const float4*>(xs);
  const float4* ds4 = reinterpret_cast<const float4*>(ds);
  float err[8];
#pragma unroll
  for (int i = 0; i < 8; ++i) err[i] = 0.0f;

  if (n_tc > 0) prefetch(0, 0);
  for (int tc = 0; tc < n_tc; ++tc) {
    float acc[8][8];
#pragma unroll
    for (int a = 0; a < 8; ++a)
#pragma unroll
      for (int b = 0; b < 8; ++b) acc[a][b] = 0.0f;

    for (int cc = 0; cc < n_cc; ++cc) {
      const int c0 = cc * kCK;
      // the previous step ended with a barrier, so ds and xs are free to overwrite
      if (c0 % kDC == 0 && (rebuild || tc == 0)) build_deltas(c0);
      store_x(tc, c0);
      __syncthreads();
      if (cc + 1 < n_cc) {
        prefetch(tc, c0 + kCK);
      } else if (tc + 1 < n_tc) {
        prefetch(tc + 1, 0);
      }
      const int drow = c0 % kDC;
#pragma unroll
      for (int c = 0; c < kCK; ++c) {
        const float4 a0 = xs4[c * (kTT / 4) + ty];
        const float4 a1 = xs4[c * (kTT / 4) + 16 + ty];
        const float4 b0 = ds4[(drow + c) * (kCols / 4) + tx];
        const float4 b1 = ds4[(drow + c) * (kCols / 4) + 16 + tx];
        const float av[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
        const float bv[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll
        for (int a = 0; a < 8; ++a)
#pragma unroll
          for (int b = 0; b < 8; ++b) acc[a][b] = fmaf(av[a], bv[b], acc[a][b]);
      }
      __syncthreads();
    }
#pragma unroll
    for (int a = 0; a < 8; ++a)
#pragma unroll
      for (int b = 0; b < 8; ++b) err[b] = fmaf(acc[a][b], acc[a][b], err[b]);
  }

  // ---- 4. reduce over the 16 thread rows, argmin per row ----
  float* part = xs;  // [16][kCols]; the loop ended with a barrier
#pragma unroll
  for (int b = 0; b < 8; ++b) part[ty * kCols + (b < 4 ? 4 * tx + b : 64 + 4 * tx + (b - 4))] = err[b];
  __syncthreads();
  float* col_err = ds;  // [kCols]
  if (tid < kCols) {
    float e = 0.0f;
#pragma unroll
    for (int y = 0; y < 16; ++y) e += part[y * kCols + tid];
    col_err[tid] = e;
  }
  __syncthreads();
  if (tid < rows_per_block && n0 + tid < p.n) {
    float best = INFINITY;
    int best_i = 0;
    for (int i = 0; i < cands; ++i) {
      const float e = col_err[tid * cands + i];
      if (e < best) {  // strict: the first candidate wins ties, like the oracle
        best = e;
        best_i = i;
      }
    }
    const int64_t o = (n0 + tid) * groups + j;
    p.best_ratio[o] = float(1.0 - double(best_i) / double(p.n_grid));
    if (p.best_err != nullptr) p.best_err[o] = best;
  }
}

template <typename T, bool kVecX>
Status launch_clip(const ClipSearchParams& p, cudaStream_t s) {
  const int rows = kCols / p.n_candidates;
  const int64_t groups = p.k / p.group_size;
  const int64_t blocks = (p.n + rows - 1) / rows * groups;
  if (blocks > 0x7fffffff) return Status::kUnsupported;
  auto kernel = clip_search_kernel<T, kVecX>;
  // a per-device function attribute (not an allocation, no sync): raise the dynamic shared limit
  if (cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(kSmemBytes<T>)) != cudaSuccess) {
    return Status::kLaunchError;
  }
  kernel<<<unsigned(blocks), kThreads, kSmemBytes<T>, s>>>(p, rows, groups);
  return quant::launch_status();
}

}  // namespace

// Instantiated: fp16, bf16, fp32 x {16-byte X loads, scalar X loads}. Any group size dividing K
// (whole-row groups rebuild the deltas per 128-token chunk), bits 2..8, 1..128 candidates.
Status clip_search(const ClipSearchParams& p, void* stream) {
  if (p.n <= 0 || p.k <= 0) return Status::kOk;
  if (p.group_size <= 0 || p.k % p.group_size != 0 || p.bits < 2 || p.bits > 8 || p.n_grid < 1 ||
      p.n_candidates < 1 || p.n_candidates > kCols || p.tokens < 0 || p.best_ratio == nullptr) {
    return Status::kUnsupported;
  }
  auto s = static_cast<cudaStream_t>(stream);
  return AWQ_DTYPE_SWITCH(p.dtype, D, [&] {
    using T = quant::dev_t<D>;
    const bool vec_ok = quant::aligned16(p.x) && p.k % quant::kVec<T> == 0 && p.group_size % 16 == 0;
    return vec_ok ? launch_clip<T, true>(p, s) : launch_clip<T, false>(p, s);
  });
}

}  // namespace cuda
}  // namespace awq
