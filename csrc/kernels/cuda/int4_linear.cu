// INT4 (W4A16) linear for decoding, y [M, N] = x [M, K] @ W^T (+ bias), and the int4_linear
// dispatcher: M <= 16 runs the GEMV kernels below, larger M goes to the GEMM (int4_gemm.cu).
//
// Decoding is a pure weight stream: at M = 16 a k-step reads 0.52 bytes of weight per 32 FLOP, far
// under what the tensor cores do, so the kernels are built to keep DRAM busy and spend as few issue
// slots per weight as possible. Two kernels share the arithmetic:
//   * dequantization (Int4Math below) is one LOP3 per pair of weights to build 1024 + q with the
//     fp16 magic exponent, one exact subtraction (or fma) for q - z and one multiply by the scale,
//     plus one shift per 8 weights; (q - z) * s is rounded once, exactly like the reference. With
//     group size 128 the M <= 8 configurations skip the multiply (kScaleAfter): the mma takes the
//     exact q - z and each 128-k partial sum is scaled in fp32;
//   * products and fp32 accumulation run on mma.sync m16n8k16, weights as the A operand (16 rows of
//     W) and x as B (8 columns = 8 rows of x; columns past M are never stored), with the fragment
//     mapping of the tiling drawn below.
//   int4_stream_kernel (the default): weights DRAM -> shared memory with cp.async in whole-row runs
//     (one warp copies 512 contiguous bytes of a row), a multistage pipeline per block, x staged per
//     stage through L1 (or, kXDirect, loaded straight into mma fragments), blocks walking K from
//     staggered offsets, split-K across the warps of a block (and, for M 9..16 on layers with few
//     rows, across the two blocks of a cluster, summed through distributed shared memory).
//   int4_gemv_kernel (the previous decode kernel, now the fallback where a streaming configuration's
//     shared memory does not fit the device, e.g. sm_86/89): weights DRAM -> registers, U k-blocks in flight per warp, x for the block's K-slice in
//     shared memory, split-K across the blocks of a thread-block cluster (sm_90) reduced through
//     distributed shared memory.
// Both: one launch, no workspace, no atomics, deterministic, graph-safe.
// Measured results and the sweeps behind the configurations: bench/results/linear_decode_h200.md.
//
// Tiling (one warp, one 16-row tile, one k-block of 128):
//
//            k:  0 ......... 31 | 32 ....... 63 | 64 ....... 95 | 96 ...... 127
//   row g      [ lane 4g+0     | lane 4g+1     | lane 4g+2     | lane 4g+3    ]  one uint4 each
//   row g + 8  [ lane 4g+0     | lane 4g+1     | lane 4g+2     | lane 4g+3    ]  one uint4 each
//
// Lane (g, t) = (lane / 4, lane % 4) thus holds k = 32t .. 32t+31 of rows g and g+8, exactly the
// rows of mma's A fragment. The mma's logical k is permuted onto the actual k so that no data moves
// between lanes: in mma step s (0..7), the fragment pairs {2t, 2t+1} and {2t+8, 2t+9} of lane t are
// the actual k = 32t + 4s + {0, 1} and 32t + 4s + {2, 3}, i.e. pairs 2(s%2) and 2(s%2)+1 of word
// s/2 (elements 4(s%2) .. 4(s%2)+3 of the word, layout.h). B uses the same
// permutation, so lane (g, t) needs x[g][32t + 4s .. 32t + 4s + 3]: the 16-byte unit
// x[g][32t + 8u .. 32t + 8u + 7] serves steps 2u and 2u+1. Since every group size here is a
// multiple of 32, a lane's 32 k share one scale and one zero point per row and k-block.
//
// int4_gemv_kernel's shared memory per block: x rows [Mc][K-slice] with each k-block's 16 units stored in the order
// (u, t) (unit u of lane t at 4u + t), so the 4 lanes of a row read 64 contiguous bytes per LDS.128;
// rows are padded by 64 bytes so the two rows of a quarter-warp hit disjoint banks. After the main
// loop the same memory holds the block's fp32 partial sums red[Mc][BN + 4] (+4: the 4 lanes of a
// quad write rows 2t, 2t+1 that would otherwise share banks).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <type_traits>

#include "awq/core.h"
#include "awq/static_switch.h"
#include "int4_gemm.h"

namespace awq {
namespace cuda {
namespace {

constexpr int kWarps = 4;                 // warps per block, each owning NT 16-row tiles
constexpr int kThreads = kWarps * 32;
constexpr int kKBlock = 128;              // k per warp step (4 lanes x 32)
constexpr int kMaxSplit = 8;              // portable cluster size

// ---- per-dtype pieces: the magic-number dequantization and the mma --------------------------
// (a & b) | c in one LOP3 (the compiler splits it in two when both masks are immediates)
__device__ __forceinline__ uint32_t and_or(uint32_t a, uint32_t b, uint32_t c) {
  uint32_t d;
  asm("lop3.b32 %0, %1, %2, %3, 0xea;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
  return d;
}

template <typename T> struct Int4Math;

// fp16: 0x6400 is 1024.0 with a zero low mantissa byte, so for a nibble q in bits 0..3 of a half,
// 0x6400 | q == 1024 + q, and for q in bits 4..7, 0x6400 | q << 4 == 1024 + 16 q. The first gives
// q - z with one exact subtraction of 1024 + z, the second with one exact fma:
// (1024 + 16 q) / 16 - (64 + z). Bits 4..7 need no shift, so a word (elements 0..7 in nibbles
// {0,2,4,6,1,3,5,7}) unpacks with a single shift by 8:
//   w      & 0x000F000F -> elements 0, 1      w      & 0x00F000F0 -> elements 2, 3 (x16)
//   w >> 8 & 0x000F000F -> elements 4, 5      w >> 8 & 0x00F000F0 -> elements 6, 7 (x16)
// Both integer results are exact, so (q - z) * s is rounded once, like the reference's
// dequantize-then-round.
template <> struct Int4Math<__half> {
  struct Zero {
    uint32_t lo;   // 1024 + z in both halves
    uint32_t hi;   // -(64 + z) in both halves
  };
  static __device__ __forceinline__ Zero zero(uint32_t z) {
    return {__byte_perm(z, 0x64u, 0x4040), __byte_perm(z << 4, 0xD4u, 0x4040)};
  }
  static __device__ __forceinline__ uint32_t sub(uint32_t a, uint32_t b) {
    uint32_t d;
    asm("sub.rn.f16x2 %0, %1, %2;" : "=r"(d) : "r"(a), "r"(b));
    return d;
  }
  static __device__ __forceinline__ uint32_t mul(uint32_t a, uint32_t b) {
    uint32_t d;
    asm("mul.rn.f16x2 %0, %1, %2;" : "=r"(d) : "r"(a), "r"(b));
    return d;
  }
  static __device__ __forceinline__ uint32_t fma(uint32_t a, uint32_t b, uint32_t c) {
    uint32_t d;
    asm("fma.rn.f16x2 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
    return d;
  }
  // d[p] = packed dequantized elements (2p, 2p+1) of word w; s2 = scale in both halves
  static __device__ __forceinline__ void dequant(uint32_t w, const Zero& z, uint32_t s2, uint32_t (&d)[4]) {
    const uint32_t lo = 0x000F000Fu, hi = 0x00F000F0u, magic = 0x64006400u, sixteenth = 0x2C002C00u;
    const uint32_t w8 = w >> 8;
    d[0] = mul(sub(and_or(w, lo, magic), z.lo), s2);
    d[1] = mul(fma(and_or(w, hi, magic), sixteenth, z.hi), s2);
    d[2] = mul(sub(and_or(w8, lo, magic), z.lo), s2);
    d[3] = mul(fma(and_or(w8, hi, magic), sixteenth, z.hi), s2);
  }
  // d[p] = q - z of elements (2p, 2p+1), exact small integers (the scale is applied after the mma)
  static __device__ __forceinline__ void dequant_q(uint32_t w, const Zero& z, uint32_t (&d)[4]) {
    const uint32_t lo = 0x000F000Fu, hi = 0x00F000F0u, magic = 0x64006400u, sixteenth = 0x2C002C00u;
    const uint32_t w8 = w >> 8;
    d[0] = sub(and_or(w, lo, magic), z.lo);
    d[1] = fma(and_or(w, hi, magic), sixteenth, z.hi);
    d[2] = sub(and_or(w8, lo, magic), z.lo);
    d[3] = fma(and_or(w8, hi, magic), sixteenth, z.hi);
  }
  static __device__ __forceinline__ void mma(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2,
                                             uint32_t a3, uint32_t b0, uint32_t b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
  }
  static __device__ __forceinline__ float to_float(uint16_t v) { return __half2float(__ushort_as_half(v)); }
  static __device__ __forceinline__ uint32_t pack2(float lo, float hi) {
    const __half2 h = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&h);
  }
  static __device__ __forceinline__ uint16_t pack1(float v) { return __half_as_ushort(__float2half_rn(v)); }
};

// bf16: 0x4300 is 128.0 with a zero low mantissa nibble: 0x4300 | q == 128 + q. Bits 4..7 would
// reach the exponent, so every pair is shifted down: (w >> 4j) & 0x000F000F = elements 2j, 2j+1.
template <> struct Int4Math<__nv_bfloat16> {
  struct Zero {
    uint32_t lo;   // 128 + z in both halves
  };
  static __device__ __forceinline__ Zero zero(uint32_t z) { return {__byte_perm(z, 0x43u, 0x4040)}; }
  // sm_80 has no bf16x2 sub/mul; fma with -1 / -0 is exact for the subtraction of small integers
  // and a single round-to-nearest for the product, the same result as sm_90's native forms.
  static __device__ __forceinline__ uint32_t sub(uint32_t a, uint32_t b) {
    uint32_t d;
    asm("fma.rn.bf16x2 %0, %1, %2, %3;" : "=r"(d) : "r"(b), "r"(0xBF80BF80u), "r"(a));
    return d;
  }
  static __device__ __forceinline__ uint32_t mul(uint32_t a, uint32_t b) {
    uint32_t d;
    asm("fma.rn.bf16x2 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(0x80008000u));
    return d;
  }
  static __device__ __forceinline__ void dequant(uint32_t w, const Zero& z, uint32_t s2, uint32_t (&d)[4]) {
    const uint32_t lo = 0x000F000Fu, magic = 0x43004300u;
    const uint32_t w4 = w >> 4;
    d[0] = mul(sub(and_or(w, lo, magic), z.lo), s2);
    d[1] = mul(sub(and_or(w4, lo, magic), z.lo), s2);
    d[2] = mul(sub(and_or(w >> 8, lo, magic), z.lo), s2);
    d[3] = mul(sub(and_or(w4 >> 8, lo, magic), z.lo), s2);
  }
  static __device__ __forceinline__ void dequant_q(uint32_t w, const Zero& z, uint32_t (&d)[4]) {
    const uint32_t lo = 0x000F000Fu, magic = 0x43004300u;
    const uint32_t w4 = w >> 4;
    d[0] = sub(and_or(w, lo, magic), z.lo);
    d[1] = sub(and_or(w4, lo, magic), z.lo);
    d[2] = sub(and_or(w >> 8, lo, magic), z.lo);
    d[3] = sub(and_or(w4 >> 8, lo, magic), z.lo);
  }
  static __device__ __forceinline__ void mma(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2,
                                             uint32_t a3, uint32_t b0, uint32_t b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
  }
  static __device__ __forceinline__ float to_float(uint16_t v) { return __uint_as_float(uint32_t(v) << 16); }
  static __device__ __forceinline__ uint32_t pack2(float lo, float hi) {
    const __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&h);
  }
  static __device__ __forceinline__ uint16_t pack1(float v) {
    const __nv_bfloat16 h = __float2bfloat16_rn(v);
    return *reinterpret_cast<const uint16_t*>(&h);
  }
};

// Streaming 16-byte weight load: read once, so keep it out of L1 (no L2 policy: see HOPPER notes
// of the project, createpolicy is unsafe with this toolchain).
__device__ __forceinline__ uint4 ldg_stream(const uint4* p) {
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
}

__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, bool valid) {
  const uint32_t s = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  const int src_bytes = valid ? 16 : 0;  // 0: zero-fill the 16 bytes, read nothing
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(s), "l"(gmem), "r"(src_bytes));
}

__device__ __forceinline__ void cp_async_wait_all() {
  asm volatile("cp.async.commit_group;\n\tcp.async.wait_group 0;" ::: "memory");
}

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
__device__ __forceinline__ void cluster_sync() {
  asm volatile("barrier.cluster.arrive.release.aligned;\n\tbarrier.cluster.wait.acquire.aligned;" ::: "memory");
}
// float2 at the same shared-memory offset as `local`, in the block of cluster rank `rank`.
__device__ __forceinline__ float2 ld_cluster_f2(const float* local, uint32_t rank) {
  const uint32_t a = static_cast<uint32_t>(__cvta_generic_to_shared(local));
  uint32_t ra;
  float2 v;
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;" : "=r"(ra) : "r"(a), "r"(rank));
  asm volatile("ld.shared::cluster.v2.f32 {%0,%1}, [%2];" : "=f"(v.x), "=f"(v.y) : "r"(ra) : "memory");
  return v;
}
__device__ __forceinline__ float ld_cluster_f32(const float* local, uint32_t rank) {
  const uint32_t a = static_cast<uint32_t>(__cvta_generic_to_shared(local));
  uint32_t ra;
  float v;
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;" : "=r"(ra) : "r"(a), "r"(rank));
  asm volatile("ld.shared::cluster.f32 %0, [%1];" : "=f"(v) : "r"(ra) : "memory");
  return v;
}
#endif

// Calls f(std::integral_constant<int, 0>{}) .. f(integral_constant<N-1>{}) in order: register
// arrays indexed by the constant stay in registers.
template <int N>
struct Unroll {
  template <typename F>
  __device__ __forceinline__ static void run(F&& f) {
    Unroll<N - 1>::run(f);
    f(std::integral_constant<int, N - 1>{});
  }
};
template <>
struct Unroll<0> {
  template <typename F>
  __device__ __forceinline__ static void run(F&&) {}
};

struct GemvArgs {
  const uint16_t* x;        // [M, x_stride] rows
  const uint4* qweight;     // [N, K/32] 16-byte units (8 codes per int32 word, 4 words per unit)
  const uint16_t* scales;   // [N, K/G]
  const uint8_t* zeros;     // [N, K/G]
  const uint16_t* bias;     // [N] or null
  uint16_t* y;              // [M, N]
  int m, n, k;
  int64_t x_stride;
  int kb_total;             // k-blocks holding any k < K (see kb_count)
  int kb_per_split;         // k-blocks per cluster rank, a multiple of S (the last rank may get fewer)
  int x_row_units;          // shared-memory row stride of x in 16-byte units (slice + 64 B pad)
  bool x_vec_ok;            // x rows 16-byte aligned: stage with cp.async, else element by element
  bool y_pair_ok;           // y 4-byte aligned and N even: store output pairs
};

// Template parameters:
//   T   __half or __nv_bfloat16 (x, scales, bias, y)
//   G   group size (32, 64, 128): compile-time so the group index is a shift
//   MT  8-row x tiles per block (1: M <= 8, 2: M <= 16); blockIdx.z walks further 8*MT-row chunks
//   NT  16-row weight tiles per warp: x fragments are reused NT times from registers
//   U   k-blocks in flight per warp (register pipeline depth), a multiple of S
//   S   run length: lane t reads S consecutive 16-byte units of each row, one per k-block of a
//       "super-block" of S k-blocks, and the S loads of a super-block are issued together, so a
//       quad requests 64 S contiguous bytes per row at once instead of 64 (meant to open fewer
//       DRAM pages per byte; measured on H200: S = 2 within 3 % of S = 1, larger S slower through
//       registers, so the library uses S = 1). Mapping of (k-block kb, lane t) to a row's 32-k unit:
//         unit(kb, t) = (kb / S) * 4 S + t S + kb % S
//       (S = 1: unit = 4 kb + t, the plain tiling of the file comment.) x in shared memory is
//       staged through the same map, so the mma still sees matching k on both sides.
// Grid: (split, ceil(N / BN), ceil(M / (8 MT))) with BN = 16 NT kWarps; with split > 1 the blocks
// of one (n, m) tile form a cluster along x and each covers kb_per_split k-blocks.
template <int S>
__device__ __forceinline__ int unit_of(int kb, int t) {
  return (kb / S) * 4 * S + t * S + kb % S;
}

template <typename T, int G, int MT, int NT, int U, int S>
__global__ void __launch_bounds__(kThreads) int4_gemv_kernel(const GemvArgs a) {
  using Math = Int4Math<T>;
  constexpr int BN = 16 * NT * kWarps;
  constexpr int kRedStride = BN + 4;
  extern __shared__ uint4 smem[];

  const int split = blockIdx.x;
  const int n_splits = gridDim.x;
  const int n_base = blockIdx.y * BN;
  const int m0 = blockIdx.z * 8 * MT;
  const int mc = min(8 * MT, a.m - m0);
  const int warp = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  const int g = lane / 4;
  const int t = lane % 4;

  const int kb_begin = split * a.kb_per_split;
  const int kb_end = min(kb_begin + a.kb_per_split, a.kb_total);
  const int k_units = a.k / 32;           // 16-byte (32-k) units per weight row
  const int groups = a.k / G;

  // Rows of this lane: tile nt covers rows n0 + 16 nt + {g, g + 8}. Rows past N are clamped onto
  // row N-1 (valid memory, results never stored) so the loop has no per-row predicates. Offsets
  // are 32-bit element indices (N K / 32 < 2^31 for any real layer), so each load address is one
  // IMAD.WIDE off a kernel parameter.
  uint32_t wofs[NT][2], sofs[NT][2];
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const uint32_t row = uint32_t(min(n_base + warp * 16 * NT + nt * 16 + g + 8 * h, a.n - 1));
      wofs[nt][h] = row * uint32_t(k_units);
      sofs[nt][h] = row * uint32_t(groups);
    }
  }

  // Register pipeline: slot u holds k-block kb_begin + u (mod U); slots are refilled S at a time.
  uint4 wq[U][NT][2];
  uint32_t sc[U][NT][2];
  uint32_t zc[U][NT][2];
  auto load = [&](auto slot_c, int kb) {
    constexpr int u = decltype(slot_c)::value;
    if (kb >= kb_end) return;
    // Only the last super-block of K can be partial (K is a multiple of 32). Lanes past K re-read
    // the row's last unit: finite weights that meet x zero-filled in shared memory, so no predicate.
    const uint32_t unit = min(uint32_t(unit_of<S>(kb, t)), uint32_t(k_units - 1));
    const uint32_t grp = unit * 32u / uint32_t(G);
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        wq[u][nt][h] = ldg_stream(a.qweight + (wofs[nt][h] + unit));
        sc[u][nt][h] = __ldg(a.scales + (sofs[nt][h] + grp));
        zc[u][nt][h] = __ldg(a.zeros + (sofs[nt][h] + grp));
      }
    }
  };
  // Issue the first U k-blocks before staging x, so DRAM latency overlaps the x copy.
  Unroll<U>::run([&](auto uc) { load(uc, kb_begin + decltype(uc)::value); });

  // ---- stage x[m0 .. m0+mc) of this K-slice into shared memory (layout: see file comment) ----
  {
    const int slice_units = a.kb_per_split * 16;
    const int total = mc * slice_units;
    for (int i = threadIdx.x; i < total; i += kThreads) {
      const int m = i / slice_units;
      const int su = i - m * slice_units;
      // destination slot (k-block kbl, word s2, lane tt) -> x[32 unit(kb, tt) + 8 s2 .. + 7]
      const int kbl = su / 16, s2 = (su % 16) / 4, tt = su % 4;
      uint4* dst = smem + m * a.x_row_units + su;
      const int kk = unit_of<S>(kb_begin + kbl, tt) * 32 + s2 * 8;
      const uint16_t* src = a.x + (m0 + m) * a.x_stride + kk;
      if (a.x_vec_ok) {
        cp_async16(dst, kk < a.k ? src : a.x, kk < a.k);
      } else {
        uint16_t e[8];
#pragma unroll
        for (int j = 0; j < 8; ++j) e[j] = kk + j < a.k ? src[j] : uint16_t(0);
        *dst = make_uint4(e[0] | uint32_t(e[1]) << 16, e[2] | uint32_t(e[3]) << 16,
                          e[4] | uint32_t(e[5]) << 16, e[6] | uint32_t(e[7]) << 16);
      }
    }
    cp_async_wait_all();
    __syncthreads();
  }

  // Two accumulator sets (even / odd mma step) halve the dependent-mma chain.
  float acc[NT][MT][2][4];
#pragma unroll
  for (int nt = 0; nt < NT; ++nt)
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int p = 0; p < 2; ++p)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[nt][mt][p][j] = 0.0f;

  // x fragments: lanes of rows past M read row mc-1 (a broadcast); their mma columns are never stored
  const uint4* xs_lane[MT];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) xs_lane[mt] = smem + min(8 * mt + g, mc - 1) * a.x_row_units + t;

  auto compute = [&](auto slot_c, int kb) {
    constexpr int u = decltype(slot_c)::value;
    const int kbl = kb - kb_begin;
    uint4 xf[MT][4];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int s2 = 0; s2 < 4; ++s2) xf[mt][s2] = xs_lane[mt][kbl * 16 + s2 * 4];
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
      const uint32_t s0 = __byte_perm(sc[u][nt][0], 0, 0x1010);
      const uint32_t s1 = __byte_perm(sc[u][nt][1], 0, 0x1010);
      const typename Math::Zero z0 = Math::zero(zc[u][nt][0]);
      const typename Math::Zero z1 = Math::zero(zc[u][nt][1]);
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const uint4& q0 = wq[u][nt][0];
        const uint4& q1 = wq[u][nt][1];
        uint32_t d0[4], d1[4];
        Math::dequant(i == 0 ? q0.x : i == 1 ? q0.y : i == 2 ? q0.z : q0.w, z0, s0, d0);
        Math::dequant(i == 0 ? q1.x : i == 1 ? q1.y : i == 2 ? q1.z : q1.w, z1, s1, d1);
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          const uint4 xv = i == 0 ? xf[mt][0] : i == 1 ? xf[mt][1] : i == 2 ? xf[mt][2] : xf[mt][3];
          Math::mma(acc[nt][mt][0], d0[0], d1[0], d0[1], d1[1], xv.x, xv.y);
          Math::mma(acc[nt][mt][1], d0[2], d1[2], d0[3], d1[3], xv.z, xv.w);
        }
      }
    }
  };

  for (int kb = kb_begin; kb < kb_end; kb += U) {
    Unroll<U>::run([&](auto uc) {
      constexpr int u = decltype(uc)::value;
      if (kb + u < kb_end) compute(uc, kb + u);
      if ((u + 1) % S == 0) {
        // a whole super-block consumed: refill its S slots together (one contiguous run per row)
        Unroll<S>::run([&](auto vc) {
          constexpr int v = u + 1 - S + decltype(vc)::value;
          load(std::integral_constant<int, v>{}, kb + v + U);
        });
      }
    });
  }

  // ---- partial sums -> shared memory red[m][BN + 4] (x is dead once every warp is here) ------
  __syncthreads();
  float* red = reinterpret_cast<float*>(smem);
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) {
    const int nl = warp * 16 * NT + nt * 16 + g;
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
      const int m = 8 * mt + 2 * t;
      const float* c0 = acc[nt][mt][0];
      const float* c1 = acc[nt][mt][1];
      // c[0], c[1]: (row g, cols 2t, 2t+1); c[2], c[3]: (row g + 8, same cols)
      if (m < mc) {
        red[m * kRedStride + nl] = c0[0] + c1[0];
        red[m * kRedStride + nl + 8] = c0[2] + c1[2];
      }
      if (m + 1 < mc) {
        red[(m + 1) * kRedStride + nl] = c0[1] + c1[1];
        red[(m + 1) * kRedStride + nl + 8] = c0[3] + c1[3];
      }
    }
  }

  // ---- reduce over the cluster's K-slices; rank r finishes rows [r BN/S, (r+1) BN/S) ---------
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  if (n_splits > 1) cluster_sync(); else __syncthreads();
#else
  __syncthreads();
#endif
  const int rows_per_rank = BN / n_splits;   // n_splits is a power of two <= 8, BN >= 64
  const int pairs = rows_per_rank / 2;
  for (int i = threadIdx.x; i < mc * pairs; i += kThreads) {
    const int m = i / pairs;
    const int nl = split * rows_per_rank + 2 * (i - m * pairs);
    const int n = n_base + nl;
    float2 v = *reinterpret_cast<const float2*>(red + m * kRedStride + nl);
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    for (int r = 1; r < n_splits; ++r) {
      // each output is summed by one rank in a fixed order: deterministic; the rotation
      // spreads the ranks' remote reads over different blocks
      const float2 o = ld_cluster_f2(red + m * kRedStride + nl, uint32_t((split + r) % n_splits));
      v.x += o.x;
      v.y += o.y;
    }
#endif
    if (n >= a.n) continue;
    if (a.bias != nullptr) {
      v.x += Math::to_float(a.bias[n]);
      if (n + 1 < a.n) v.y += Math::to_float(a.bias[n + 1]);
    }
    uint16_t* out = a.y + size_t(m0 + m) * a.n + n;
    if (a.y_pair_ok) {
      *reinterpret_cast<uint32_t*>(out) = Math::pack2(v.x, v.y);   // N even: n + 1 < N too
    } else {
      out[0] = Math::pack1(v.x);
      if (n + 1 < a.n) out[1] = Math::pack1(v.y);
    }
  }
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  // no block may leave (and free its shared memory) while another rank still reads it
  if (n_splits > 1) cluster_sync();
#endif
}

// ---- host side ----------------------------------------------------------------------------------
// Whether a kernel's cluster reduction was compiled in: it exists only in sm_90 code, so a newer GPU
// that JIT-compiles the compute_80 PTX (ptxVersion 80) must not split K across a cluster, or the
// ranks' partial sums would never be added. Callers cache the answer per kernel.
bool has_cluster_code(const void* kernel) {
  cudaFuncAttributes at{};
  const bool ok = cudaFuncGetAttributes(&at, kernel) == cudaSuccess && at.ptxVersion >= 90;
  if (!ok) cudaGetLastError();   // a failed query leaves no error behind for the launch check
  return ok;
}

template <int MT_, int NT_, int U_, int S_>
struct GemvCfg {
  static constexpr int MT = MT_, NT = NT_, U = U_, S = S_, BN = 16 * NT_ * kWarps;
  static_assert(U_ % S_ == 0, "the pipeline refills whole super-blocks");
};

// Register-pipelined GEMV configurations built into the library, each for fp16 and bf16 and G in
// {32, 64, 128} (12 kernels):
//   name        MT NT U S  BN   regs  used for
//   CfgSmallM   1  2  2 1  128  127   M <= 8 where a streaming configuration does not fit the shared
//                                     memory (until the second sweep also M 5..8 on few rows, long K)
//   CfgLargeM   2  2  2 1  128  149   M 9..32 where a streaming configuration does not fit
// Chosen from a sweep of 11 candidates x split-K 1/2/4/8 on the six LLM shapes (H200, fp16 and
// bf16, bench/results/linear_decode_h200.md): best or within 8 % of the best candidate at every M.
// Run lengths S > 1 and deeper pipelines (U = 8) measured no better, so production uses S = 1.
using CfgSmallM = GemvCfg<1, 2, 2, 1>;
using CfgLargeM = GemvCfg<2, 2, 2, 1>;

struct DeviceInfo {
  int cc_major;
  int sm_count;
  int smem_optin;
};

DeviceInfo device_info(int sm_count_hint) {
  // Attributes are cached per device: cudaDeviceGetAttribute is cheap but not free, and this runs
  // once per decoded token per layer.
  static std::atomic<int> cache[64][3];
  int dev = 0;
  cudaGetDevice(&dev);
  DeviceInfo info{0, 0, 0};
  if (dev >= 0 && dev < 64 && cache[dev][0].load(std::memory_order_relaxed) != 0) {
    info = {cache[dev][0].load(std::memory_order_relaxed), cache[dev][1].load(std::memory_order_relaxed),
            cache[dev][2].load(std::memory_order_relaxed)};
  } else {
    cudaDeviceGetAttribute(&info.cc_major, cudaDevAttrComputeCapabilityMajor, dev);
    cudaDeviceGetAttribute(&info.sm_count, cudaDevAttrMultiProcessorCount, dev);
    cudaDeviceGetAttribute(&info.smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
    if (dev >= 0 && dev < 64) {
      cache[dev][1].store(info.sm_count);
      cache[dev][2].store(info.smem_optin);
      cache[dev][0].store(info.cc_major);
    }
  }
  if (sm_count_hint > 0) info.sm_count = sm_count_hint;
  return info;
}

// k-blocks that hold any k < K under unit_of<S>: full super-blocks, then those of the last one
// whose lane 0 is inside K (lanes 1..3 of a k-block are never inside when lane 0 is not).
int kb_count(int64_t k, int s) {
  const int64_t units = k / 32, full = units / (4 * s), rem = units % (4 * s);
  return int(full * s + (rem < s ? rem : s));
}

template <typename Cfg>
int64_t gemv_smem_bytes(int mc, int kb_per_split) {
  const int64_t x_bytes = int64_t(mc) * (int64_t(kb_per_split) * kKBlock * 2 + 64);
  const int64_t red_bytes = int64_t(mc) * (Cfg::BN + 4) * 4;
  return x_bytes > red_bytes ? x_bytes : red_bytes;
}

// Blocks of one configuration that fit on an SM at once by registers (the x slice's shared memory
// is left out: choose_split keeps slices short where it would bind). Queried once per kernel.
template <typename T, int G, typename Cfg>
int resident_blocks_per_sm() {
  static const int blocks = [] {
    int b = 0;
    if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(
            &b, int4_gemv_kernel<T, G, Cfg::MT, Cfg::NT, Cfg::U, Cfg::S>, kThreads, 0) != cudaSuccess) {
      cudaGetLastError();
      b = 0;
    }
    return b > 0 ? b : 1;
  }();
  return blocks;
}

// Split-K heuristic, fitted to a sweep of split 1/2/4/8 on the six LLM shapes (H200, fp16 and bf16;
// bench/results/linear_decode_h200.md), always keeping >= 2 super-blocks of k per rank:
//  * M <= 8: the largest power of two whose grid fits in one wave of resident blocks (every block
//    streams from the start, none waits for a second wave), then more while a rank would walk more
//    than kMaxKbPerRank k-blocks (long rows: shorter slices shrink each block's x copy and tail);
//  * M 9..16: 8. The x slice of 16 rows is large: unsplit blocks hold so much shared memory that
//    fewer fit per SM, and each pays a long x copy before its first k-block.
// Within 8 % of the best split at M <= 4 and 11 % at M <= 8 on every shape; at M = 16 within 5 %
// except 14336 x 4096 (22 %, where another tiling wins).
constexpr int kMaxKbPerRank = 16;

template <typename Cfg>
int choose_split(const DeviceInfo& dev, int64_t tiles, int kb_total, int resident, int mc) {
  int split = 1;
  if (dev.cc_major < 9) return split;
  auto can_double = [&] { return split < kMaxSplit && kb_total >= 2 * Cfg::S * 2 * split; };
  if (mc > 8) {
    while (can_double()) split *= 2;
    return split;
  }
  const int64_t wave = int64_t(resident) * dev.sm_count;
  while (can_double() && tiles * split * 2 <= wave) split *= 2;
  while (can_double() && kb_total > kMaxKbPerRank * split) split *= 2;
  return split;
}

template <typename T, int G, typename Cfg>
Status launch_gemv(const Int4LinearParams& p, cudaStream_t stream, int split_override, int* plan_split) {
  const DeviceInfo dev = device_info(p.sm_count);
  const int mchunk = 8 * Cfg::MT;
  const int64_t n_tiles = (p.n + Cfg::BN - 1) / Cfg::BN;
  const int64_t m_tiles = (p.m + mchunk - 1) / mchunk;
  if (n_tiles > 65535 || m_tiles > 65535) return Status::kUnsupported;
  const int kb_total = kb_count(p.k, Cfg::S);
  const int mc = int(p.m < mchunk ? p.m : mchunk);

  int split = split_override > 0 ? split_override
                                 : choose_split<Cfg>(dev, n_tiles * m_tiles, kb_total, resident_blocks_per_sm<T, G, Cfg>(), mc);
  auto kernel = int4_gemv_kernel<T, G, Cfg::MT, Cfg::NT, Cfg::U, Cfg::S>;
  static const bool cluster_code = has_cluster_code(reinterpret_cast<const void*>(kernel));
  if (dev.cc_major < 9 || !cluster_code) split = 1;
  // k-blocks per rank: whole super-blocks, so every rank's runs stay contiguous
  auto kb_per = [&](int s) { return ((kb_total + s - 1) / s + Cfg::S - 1) / Cfg::S * Cfg::S; };
  // x slice must fit in shared memory: split further (Hopper), else decline
  while (gemv_smem_bytes<Cfg>(mc, kb_per(split)) > dev.smem_optin && dev.cc_major >= 9 && cluster_code &&
         split < kMaxSplit) {
    split *= 2;
  }
  const int64_t smem = gemv_smem_bytes<Cfg>(mc, kb_per(split));
  if (smem > dev.smem_optin) return Status::kUnsupported;
  if (plan_split != nullptr) {  // dry run: report the split only
    *plan_split = split;
    return Status::kOk;
  }

  GemvArgs a;
  a.x = static_cast<const uint16_t*>(p.x);
  a.qweight = reinterpret_cast<const uint4*>(p.qweight);
  a.scales = static_cast<const uint16_t*>(p.scales);
  a.zeros = p.zeros;
  a.bias = static_cast<const uint16_t*>(p.bias);
  a.y = static_cast<uint16_t*>(p.y);
  a.m = int(p.m);
  a.n = int(p.n);
  a.k = int(p.k);
  a.x_stride = p.x_stride;
  a.kb_total = kb_total;
  a.kb_per_split = kb_per(split);
  a.x_row_units = a.kb_per_split * 16 + 4;
  a.x_vec_ok = reinterpret_cast<uintptr_t>(p.x) % 16 == 0 && p.x_stride % 8 == 0;
  a.y_pair_ok = reinterpret_cast<uintptr_t>(p.y) % 4 == 0 && p.n % 2 == 0;

  if (smem > 48 * 1024) {
    if (cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)) != cudaSuccess) {
      return Status::kLaunchError;
    }
  }
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3(unsigned(split), unsigned(n_tiles), unsigned(m_tiles));
  cfg.blockDim = dim3(kThreads, 1, 1);
  cfg.dynamicSmemBytes = size_t(smem);
  cfg.stream = stream;
  cudaLaunchAttribute attr[1];
  if (split > 1) {
    attr[0].id = cudaLaunchAttributeClusterDimension;
    attr[0].val.clusterDim.x = unsigned(split);
    attr[0].val.clusterDim.y = 1;
    attr[0].val.clusterDim.z = 1;
    cfg.attrs = attr;
    cfg.numAttrs = 1;
  }
  if (cudaLaunchKernelEx(&cfg, kernel, a) != cudaSuccess) return Status::kLaunchError;
  return Status::kOk;
}

template <typename T, typename Cfg>
Status dispatch_group(const Int4LinearParams& p, cudaStream_t stream, int split_override, int* plan_split) {
  return AWQ_GROUP_SWITCH(p.group_size, G, [&] { return launch_gemv<T, G, Cfg>(p, stream, split_override, plan_split); });
}

template <typename Cfg>
Status dispatch_dtype(const Int4LinearParams& p, cudaStream_t stream, int split_override, int* plan_split) {
  return AWQ_DTYPE_SWITCH(p.dtype, D, [&] {
    if constexpr (D == DType::kF16) {
      return dispatch_group<__half, Cfg>(p, stream, split_override, plan_split);
    } else if constexpr (D == DType::kBF16) {
      return dispatch_group<__nv_bfloat16, Cfg>(p, stream, split_override, plan_split);
    } else {
      return Status::kUnsupported;   // fp32 activations: the binding falls back
    }
  });
}

// Largest M routed to the GEMV kernels: M = 16 is where one 8-row x tile pair is full.
constexpr int64_t kGemvMaxM = 16;
// Up to this M, 16-row chunks of the GEMV stand in when the GEMM declines a problem (each chunk
// re-streams the weights, so beyond two chunks the binding's dequantize + cuBLAS is faster).
constexpr int64_t kGemvChunkedMaxM = 32;

bool gemv_shape_ok(const Int4LinearParams& p) {
  if (p.m <= 0 || p.n <= 0 || p.k <= 0) return false;
  if (p.k % 32 != 0 || p.k % p.group_size != 0) return false;
  if (p.n > (int64_t(1) << 30) || p.k > (int64_t(1) << 30) || p.m > (int64_t(1) << 30)) return false;
  if (reinterpret_cast<uintptr_t>(p.qweight) % 16 != 0) return false;
  return true;
}


// ==== streaming tensor-core GEMV (the decode path for M <= 16) ===================================
//
// Same fragment mapping and arithmetic as int4_gemv_kernel above, but weights travel DRAM -> shared
// memory -> registers, so that the DRAM side sees whole rows. qweight is int32 [N, K/8] packed along
// K, so BN consecutive rows x a K-slice of KSB values are BN contiguous runs of KSB/2 bytes. A block
// owns BN = 16 RW rows and walks all of K in stages of KSB = 128 KBW KW values:
//
//   stage s, slot s % STAGES of shared memory:
//     w   [BN rows][KSB/2 bytes + 64 pad]     cp.async, 16 B per thread, thread i -> unit i: one warp
//                                             copies 512 contiguous bytes of a row (KSB/2 >= 256:
//                                             at most 2 rows per instruction)
//     sz  [BN rows][KSB/G + 1] u32            scale (low half) | zero (high half), through registers
//     x   [mc rows][KSB * 2 bytes + 64 pad]   cp.async, 16-byte units of x permuted to (word i, lane t)
//                                             order inside each 128-k block (as in the GEMV above)
//
// STAGES - 1 stages (16 KB each for 8 warps) are in flight while one is computed. The design aimed at
// more bytes in flight than the register-pipelined GEMV (~32 KB per SM); measured, bytes in flight
// were not the limit: 2 stages with more resident blocks beat 3 or 4 with fewer, and ncu (28672 x
// 8192, M = 1) shows 34 % of DRAM bandwidth while each scheduler issues on ~63 % of cycles (about 5
// warps, one instruction per 7.7 cycles each): the kernel is bound by instruction issue and dependency
// stalls. The next gain is fewer instructions per weight (see the configuration table further down).
//
// Warp (rw, kw) of the RW x KW warps computes row tile rw (rows 16 rw + g and 16 rw + g + 8 in lane
// (g, t)) on k-blocks kw, kw + KW, ... of each stage; the KW partial sums of a row are added in shared
// memory at the end (fixed order: deterministic). KW > 1 keeps enough warps busy when N is small.
// Bank behaviour: the 8 lanes of an LDS.128 phase are rows g, g+1 x lanes t 0..3; each row segment is
// 64 contiguous bytes and the 64-byte row pads put the two rows on opposite halves of the 128-byte
// bank window, so every phase is conflict-free (x rows alike; rows past M are clamped to the last row,
// a broadcast).
//
// Programmatic dependent launch (sm_90): launched with programmatic stream serialization, a block may
// start while the previous kernel of the stream still runs. Before griddepcontrol.wait it only issues
// L2 prefetches of its first stages (a hint: L2 is the coherence point, so a prefetch of data the
// previous kernel is still writing cannot return stale values later); every real read (x, weights,
// scales, bias) and every write of y comes after the wait. Without the launch attribute the wait is a
// no-op.
constexpr int kStreamPad = 64;
// PDL modes of launch_stream (bits): kPdlOn launches with programmatic stream serialization;
// kPdlNoPrefetch skips the L2 prefetches before the wait; kPdlLate lets the dependent grid launch
// only after this block's main loop (griddepcontrol.launch_dependents there) instead of right after
// the wait. The library uses 0, kPdlOn and kPdlOn | kPdlLate (kPdlFew / kPdlMany below); kPdlNoPrefetch
// is for the benchmark's sweeps (int4_gemv_stream's pdl argument).
constexpr int kPdlOn = 1, kPdlNoPrefetch = 2, kPdlLate = 4;

// Variant flags of StreamCfg:
//   kXL1      x copies through L1 (cp.async.ca): every block of an SM reads the same x, so later blocks
//             hit L1 instead of all blocks of the GPU hitting the same few L2 lines at once
//   kStagger  block b walks its stages starting at stage b % n_stages (then wraps): the blocks in
//             flight read different offsets within their rows instead of the same column of every
//             row at once (rows are K/2 bytes apart, a power of two for most layers). Measured
//             neutral (+-1 %) on the H200: its address hashing already spreads such strides.
//   kScaleAfter  group size 128 only (others ignore it): a 128-k block is one group of every row, so the
//             mma runs on the exact integers q - z and the row's scale multiplies the k-block's fp32
//             partial sum instead of every weight (4 of 13 dequantization instructions per word gone;
//             products are (q - z) x, scaled once in fp32: no fp16 rounding of the dequantized weight)
//   kXDirect  x fragments straight from global memory (L1-cached 16-byte loads) into registers instead
//             of staging x through shared memory: at M = 16 the staged x of a stage is twice its
//             weights, so shared memory, not registers, capped the resident blocks (1 per SM)
//   kRowCopy  weight copies addressed from one per-stage base (see load_w): about 70 fewer
//             instructions per stage and thread on StreamN32 (497 -> ~427 in its main loop)
//   kLean     the main loop walks slots and k-stages with running counters; scale / zero fetches, staged
//             x copies and direct x loads (and, with kRowCopy, the weight copies' base) are addressed
//             from per-thread offsets computed once instead of per stage
constexpr int kXL1 = 1, kStagger = 2, kScaleAfter = 4, kXDirect = 8, kRowCopy = 16, kLean = 32;

template <int MT_, int RW_, int KW_, int KBW_, int STAGES_, int FLAGS_ = 0, int NT_ = 1, int CS_ = 1>
struct StreamCfg {
  // MT: 8-row x tiles (M <= 8 MT per block row; blockIdx.y walks further chunks of 8 MT rows)
  // RW, KW: warps along N and along K; KBW: 128-k blocks per warp and stage; NT: 16-row tiles per
  // warp (x fragments loaded once from shared memory serve NT tiles); CS: blocks per row tile, a
  // thread-block cluster (sm_90) that splits the tile's k-stages into CS contiguous runs and sums
  // the partial results through distributed shared memory (more blocks, and bytes in flight, for
  // layers with few rows)
  static constexpr int MT = MT_, RW = RW_, KW = KW_, KBW = KBW_, STAGES = STAGES_, FLAGS = FLAGS_, NT = NT_;
  static constexpr int CS = CS_;
  static constexpr int W = RW * KW, kThreads = 32 * W, BN = 16 * RW * NT, KSB = 128 * KBW * KW;
  static constexpr int kUnitsRow = KSB / 32;            // 16-byte weight units per row and stage
  static constexpr int kWRow = KSB / 2 + kStreamPad;    // bytes per weight row in shared memory
  static constexpr int kXRow = KSB * 2 + kStreamPad;    // bytes per x row in shared memory
  static constexpr int kWBytes = BN * kWRow;
  static_assert(KSB / 2 >= 256, "a warp-wide copy must stay within 2 rows");
  static_assert(BN * kUnitsRow % kThreads == 0, "every thread copies the same number of units");
  static_assert(STAGES >= 2, "double buffering at least");
  static_assert(CS >= 1 && CS <= kMaxSplit, "portable cluster size");
};

template <int G, typename C>
struct StreamSz {
  static constexpr int kGroups = C::KSB / G;                         // groups per row and stage
  static constexpr int kRow = kGroups + 1;                           // u32 per row (+1: banks)
  static constexpr int kBytes = (C::BN * kRow * 4 + 15) / 16 * 16;
  static constexpr int kPerThread = C::BN * kGroups / C::kThreads;   // = 64 KBW / G
  static_assert(C::BN * kGroups % C::kThreads == 0, "sz entries split evenly over threads (KBW >= G / 64)");
};

struct StreamArgs {
  const uint16_t* x;        // [M, x_stride]
  const uint4* qweight;     // [N, K/32] 16-byte units
  const uint16_t* scales;   // [N, K/G]
  const uint8_t* zeros;     // [N, K/G]
  const uint16_t* bias;     // [N] or null
  uint16_t* y;              // [M, N]
  int m, n, k;
  int64_t x_stride;
  int n_stages;             // ceil(K / KSB), all ranks of a cluster together
  int slot_bytes;           // bytes of one pipeline slot (w + sz + x of mc rows)
  bool x_vec_ok;            // x rows 16-byte aligned: cp.async, else element loads
  bool prefetch;            // launched with PDL: prefetch the first stages into L2 before the wait
  bool late_trigger;        // launched with PDL: let the dependent grid launch after the main loop, not at the start
};

template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
// 16 bytes global -> shared through L1 (kept there for the next block of the SM); 0: zero-fill
__device__ __forceinline__ void cp_async16_l1(void* smem, const void* gmem, bool valid) {
  const uint32_t s = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.ca.shared.global [%0], [%1], 16, %2;" ::"r"(s), "l"(gmem), "r"(valid ? 16 : 0));
}

template <typename T, int G, typename C>
__global__ void __launch_bounds__(C::kThreads) int4_stream_kernel(const StreamArgs a) {
  using Math = Int4Math<T>;
  using Sz = StreamSz<G, C>;
  constexpr int NT = C::kThreads, KSB = C::KSB, BN = C::BN, MT = C::MT;
  extern __shared__ uint4 smem[];
  unsigned char* const sbase = reinterpret_cast<unsigned char*>(smem);

  const int tid = threadIdx.x;
  const int warp = tid / 32, lane = tid % 32, g = lane / 4, t = lane % 4;
  const int rw = warp / C::KW, kw = warp % C::KW;
  // CS > 1: the CS blocks of a cluster (consecutive blockIdx.x, cluster rank = blockIdx.x % CS)
  // share a row tile; rank r walks k-stages [r S / CS, (r + 1) S / CS) of the S = n_stages
  const int tile_n = int(blockIdx.x / unsigned(C::CS));
  const int rank = int(blockIdx.x % unsigned(C::CS));
  const int s_lo = int(int64_t(a.n_stages) * rank / C::CS);
  const int ns = int(int64_t(a.n_stages) * (rank + 1) / C::CS) - s_lo;   // this block's stages (may be 0)
  const int n_base = tile_n * BN;
  const int m0 = blockIdx.y * 8 * MT;
  const int mc = min(8 * MT, a.m - m0);
  const int k_units = a.k / 32;
  const int groups = a.k / G;
  // stage s of this block's walk covers k-stage phys(s) of K (see kStagger)
  const int rot = (C::FLAGS & kStagger) && ns > 0 ? int(unsigned(tile_n) % unsigned(ns)) : 0;
  auto phys = [&](int s) { return s_lo + (s + rot < ns ? s + rot : s + rot - ns); };

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  if (a.prefetch) {
    // 128-byte lines: BN rows x KSB/256 lines per stage = 8 KBW W <= NT
    for (int s = 0; s < C::STAGES - 1 && s < ns; ++s) {
      const int r = tid / (KSB / 256), l = tid % (KSB / 256);
      const int n = n_base + r, u = phys(s) * C::kUnitsRow + l * 8;
      if (r < BN && n < a.n && u < k_units) {
        asm volatile("prefetch.global.L2 [%0];" ::"l"(a.qweight + (size_t(n) * k_units + u)));
      }
    }
  }
  asm volatile("griddepcontrol.wait;" ::: "memory");
  if (!a.late_trigger) asm volatile("griddepcontrol.launch_dependents;");
#endif

  auto slot = [&](int s) { return sbase + (s % C::STAGES) * a.slot_bytes; };

  // Weight copies. kRowCopy: NT is a multiple of kUnitsRow in every configuration, so thread tid
  // copies 16-byte unit wc = tid % kUnitsRow of rows wr + j kRowStep (j < kPasses) in every stage: a
  // stage's source addresses are one per-stage base plus multiples of a row stride and its shared
  // addresses compile-time offsets, and blocks whose rows and stage lie inside W (all but the last
  // block row and a K tail) skip the bounds checks. Otherwise row, unit, bounds and a 64-bit address
  // are recomputed per unit (about 25 instructions per 16-byte copy). Same copies, same order.
  static_assert(NT % C::kUnitsRow == 0, "a thread copies the same unit of every row it copies");
  constexpr int kRowStep = NT / C::kUnitsRow, kPasses = BN * C::kUnitsRow / NT;
  constexpr bool kLN = (C::FLAGS & kLean) != 0;
  // kLean: a thread's weight unit, its first row's source and its shared-memory offset, once
  const int lw_r = tid / C::kUnitsRow, lw_c = tid % C::kUnitsRow;
  const uint4* const lw_src = a.qweight + (size_t(n_base + lw_r) * k_units + lw_c);
  const int lw_dst = lw_r * C::kWRow + lw_c * 16;
  const bool rows_in = n_base + BN <= a.n;
  auto load_w = [&](unsigned char* sl, int kst) {
    if constexpr (kLN && (C::FLAGS & kRowCopy) != 0) {
      const uint4* src = lw_src + kst * C::kUnitsRow;
      const size_t step = size_t(kRowStep) * k_units;
      unsigned char* dst = sl + lw_dst;
      if (rows_in && (kst + 1) * C::kUnitsRow <= k_units) {
#pragma unroll
        for (int j = 0; j < kPasses; ++j) cp_async16(dst + j * kRowStep * C::kWRow, src + j * step, true);
      } else {
        const bool k_ok = kst * C::kUnitsRow + lw_c < k_units;
#pragma unroll
        for (int j = 0; j < kPasses; ++j) {
          const bool ok = k_ok && n_base + lw_r + j * kRowStep < a.n;   // zero-fill past N and K
          cp_async16(dst + j * kRowStep * C::kWRow, ok ? src + j * step : a.qweight, ok);
        }
      }
    } else if constexpr ((C::FLAGS & kRowCopy) != 0) {
      // recomputed per stage from the thread index (a few instructions) rather than kept live
      // across the loop: StreamN32 must stay within 64 registers (4 resident blocks)
      const unsigned ut = threadIdx.x;
      const int wr = int(ut / C::kUnitsRow), wc = int(ut % C::kUnitsRow);
      unsigned char* dst = sl + wr * C::kWRow + wc * 16;
      const int u = kst * C::kUnitsRow + wc;
      const uint4* src = a.qweight + (size_t(n_base + wr) * k_units + u);
      const size_t step = size_t(kRowStep) * k_units;
      if (n_base + BN <= a.n && (kst + 1) * C::kUnitsRow <= k_units) {
#pragma unroll
        for (int j = 0; j < kPasses; ++j) cp_async16(dst + j * kRowStep * C::kWRow, src + j * step, true);
      } else {
#pragma unroll
        for (int j = 0; j < kPasses; ++j) {
          const bool ok = u < k_units && n_base + wr + j * kRowStep < a.n;   // zero-fill past N and K
          cp_async16(dst + j * kRowStep * C::kWRow, ok ? src + j * step : a.qweight, ok);
        }
      }
    } else {
      unsigned char* dst = sl;
      const int u0 = kst * C::kUnitsRow;
#pragma unroll
      for (int j = 0; j < kPasses; ++j) {
        const int i = tid + j * NT;
        const int r = i / C::kUnitsRow, c = i % C::kUnitsRow;
        const int n = n_base + r, u = u0 + c;
        const bool ok = n < a.n && u < k_units;   // zero-fill past N and K
        cp_async16(dst + r * C::kWRow + c * 16, ok ? a.qweight + (size_t(n) * k_units + u) : a.qweight, ok);
      }
    }
  };

  constexpr int kU = KSB / 8;   // 16-byte x units per row and stage
  // kLean (NT a multiple of kU): thread tid stages unit lx_u of rows lx_m + p NT / kU in every stage
  constexpr bool kLX = kLN && NT % kU == 0;
  constexpr int kXRowStep = kLX ? NT / kU : 1, kXPasses = (8 * MT + kXRowStep - 1) / kXRowStep;
  const int lx_m = tid / kU, lx_u = tid % kU;
  const int lx_dst = C::kWBytes + Sz::kBytes + lx_m * C::kXRow +
                     ((lx_u / 16) * 16 + (lx_u % 16 % 4) * 4 + lx_u % 16 / 4) * 16;
  const uint16_t* const lx_src = a.x + size_t(m0 + lx_m) * a.x_stride + 8 * lx_u;
  auto load_x = [&](unsigned char* sl, int kst) {
    unsigned char* dst = sl + C::kWBytes + Sz::kBytes;
    const int k0 = kst * KSB;
    if constexpr (kLX) {
      if (a.x_vec_ok) {
        const bool k_in = k0 + 8 * lx_u < a.k;
#pragma unroll
        for (int p = 0; p < kXPasses; ++p) {
          if (lx_m + p * kXRowStep < mc) {
            const uint16_t* src = lx_src + size_t(p * kXRowStep) * a.x_stride + k0;
            unsigned char* d = sl + lx_dst + p * kXRowStep * C::kXRow;
            if (C::FLAGS & kXL1) {
              cp_async16_l1(d, k_in ? src : a.x, k_in);
            } else {
              cp_async16(d, k_in ? src : a.x, k_in);
            }
          }
        }
        return;
      }
    }
    for (int i = tid; i < mc * kU; i += NT) {
      const int m = i / kU, u = i % kU;
      const int kk = k0 + 8 * u;
      // unit w16 of k-block b is word w16 % 4 of lane w16 / 4: stored at 4 (w16 % 4) + w16 / 4
      const int b = u / 16, w16 = u % 16;
      unsigned char* d = dst + m * C::kXRow + (b * 16 + (w16 % 4) * 4 + w16 / 4) * 16;
      const uint16_t* src = a.x + size_t(m0 + m) * a.x_stride + kk;
      if (a.x_vec_ok) {
        if (C::FLAGS & kXL1) {
          cp_async16_l1(d, kk < a.k ? src : a.x, kk < a.k);
        } else {
          cp_async16(d, kk < a.k ? src : a.x, kk < a.k);
        }
      } else {
        uint16_t e[8];
#pragma unroll
        for (int j = 0; j < 8; ++j) e[j] = kk + j < a.k ? src[j] : uint16_t(0);
        *reinterpret_cast<uint4*>(d) = make_uint4(e[0] | uint32_t(e[1]) << 16, e[2] | uint32_t(e[3]) << 16,
                                                  e[4] | uint32_t(e[5]) << 16, e[6] | uint32_t(e[7]) << 16);
      }
    }
  };

  // Scales and zeros go through registers, as deep in flight as the cp.async data: stage s's entries
  // are fetched when stage s is issued (STAGES - 1 stages ahead) into ring entry s % (STAGES - 1) and
  // stored to shared memory right before stage s is consumed (its slot is free by then: its previous
  // stage was consumed before the copies of stage s were issued). The ring index must be a
  // compile-time constant (registers), so the main loop is unrolled by STAGES - 1.
  // Entries past N or K are 0 (scale 0: the zero-filled weights dequantize to 0).
  constexpr int R = C::STAGES - 1;
  uint32_t szr[R][Sz::kPerThread];
  // kLean: entry j of a thread is row sz_r + j NT / kGroups, group sz_g of the stage (NT is a multiple
  // of kGroups), its source offset sz_o + j (NT / kGroups) groups + kst kGroups
  static_assert(NT % Sz::kGroups == 0, "a thread's sz entries share one group column");
  constexpr int kSzRowStep = NT / Sz::kGroups;
  const int sz_r = tid / Sz::kGroups, sz_g = tid % Sz::kGroups;
  const size_t sz_o = size_t(n_base + sz_r) * groups + sz_g;
  auto fetch_sz = [&](auto ring_c, int kst) {
    constexpr int e = decltype(ring_c)::value;
    if constexpr (kLN) {
      const bool k_ok = kst * Sz::kGroups + sz_g < groups;
#pragma unroll
      for (int j = 0; j < Sz::kPerThread; ++j) {
        uint32_t v = 0;
        if (k_ok && n_base + sz_r + j * kSzRowStep < a.n) {
          const size_t o = sz_o + size_t(j * kSzRowStep) * groups + kst * Sz::kGroups;
          v = uint32_t(__ldg(a.scales + o)) | uint32_t(__ldg(a.zeros + o)) << 16;
        }
        szr[e][j] = v;
      }
    } else {
#pragma unroll
      for (int j = 0; j < Sz::kPerThread; ++j) {
        const int i = tid + j * NT;
        const int r = i / Sz::kGroups, gi = i % Sz::kGroups;
        const int n = n_base + r, grp = kst * Sz::kGroups + gi;
        uint32_t v = 0;
        if (n < a.n && grp < groups) {
          const size_t o = size_t(n) * groups + grp;
          v = uint32_t(__ldg(a.scales + o)) | uint32_t(__ldg(a.zeros + o)) << 16;
        }
        szr[e][j] = v;
      }
    }
  };
  auto store_sz = [&](auto ring_c, unsigned char* sl) {
    constexpr int e = decltype(ring_c)::value;
    uint32_t* d = reinterpret_cast<uint32_t*>(sl + C::kWBytes);
#pragma unroll
    for (int j = 0; j < Sz::kPerThread; ++j) {
      if constexpr (kLN) {
        d[(sz_r + j * kSzRowStep) * Sz::kRow + sz_g] = szr[e][j];
      } else {
        const int i = tid + j * NT;
        d[(i / Sz::kGroups) * Sz::kRow + i % Sz::kGroups] = szr[e][j];
      }
    }
  };

  // Four accumulator sets (two per word, alternating words) keep 4 independent mma chains per x tile
  // (kScaleAfter: one set, fed per k-block with the scaled sum of two fresh chains).
  constexpr bool kSA = (C::FLAGS & kScaleAfter) != 0 && G == 128;
  float acc[C::NT][MT][4][4];
#pragma unroll
  for (int nt = 0; nt < C::NT; ++nt)
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int p = 0; p < 4; ++p)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[nt][mt][p][j] = 0.0f;

  constexpr bool kXD = (C::FLAGS & kXDirect) != 0;
  // kLean + kXDirect: the thread's x row pointers at its warp's first k-block, once
  const uint16_t* lxd[MT];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) lxd[mt] = a.x + size_t(m0 + min(8 * mt + g, mc - 1)) * a.x_stride + kw * 128 + 32 * t;
  auto compute = [&](const unsigned char* base, int kst) {
    const int lxd_lim = a.k - kst * KSB - kw * 128 - 32 * t;   // kLean + kXDirect: offsets below are in K
    const unsigned char* xrow[MT];
    const uint16_t* xg[MT];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
      xrow[mt] = base + C::kWBytes + Sz::kBytes + min(8 * mt + g, mc - 1) * C::kXRow + t * 16;
      xg[mt] = a.x + size_t(m0 + min(8 * mt + g, mc - 1)) * a.x_stride + kst * KSB + 32 * t;
    }
#pragma unroll
    for (int j = 0; j < C::KBW; ++j) {
      const int b = kw + C::KW * j;   // 128-k block within the stage
      uint4 xf[MT][4];
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          if constexpr (kXD && kLN) {
            const int off = C::KW * 128 * j + 8 * i;
            xf[mt][i] = off < lxd_lim ? __ldg(reinterpret_cast<const uint4*>(lxd[mt] + kst * KSB + off)) : make_uint4(0, 0, 0, 0);
          } else if constexpr (kXD) {
            const bool in = kst * KSB + b * 128 + 32 * t + 8 * i < a.k;
            xf[mt][i] = in ? __ldg(reinterpret_cast<const uint4*>(xg[mt] + b * 128 + 8 * i)) : make_uint4(0, 0, 0, 0);
          } else {
            xf[mt][i] = *reinterpret_cast<const uint4*>(xrow[mt] + (b * 16 + 4 * i) * 16);
          }
        }
#pragma unroll
      for (int nt = 0; nt < C::NT; ++nt) {
        const int row = 16 * (rw * C::NT + nt) + g;
        const unsigned char* w0 = base + row * C::kWRow + t * 16;
        const uint32_t* sz0 = reinterpret_cast<const uint32_t*>(base + C::kWBytes) + row * Sz::kRow;
        const uint4 q0 = *reinterpret_cast<const uint4*>(w0 + b * 64);
        const uint4 q1 = *reinterpret_cast<const uint4*>(w0 + 8 * C::kWRow + b * 64);
        const int gi = (b * 128 + t * 32) / G;
        const uint32_t e0 = sz0[gi], e1 = sz0[8 * Sz::kRow + gi];
        const typename Math::Zero z0 = Math::zero(e0 >> 16), z1 = Math::zero(e1 >> 16);
        if constexpr (kSA) {
          float c[MT][2][4];
#pragma unroll
          for (int mt = 0; mt < MT; ++mt)
#pragma unroll
            for (int p = 0; p < 2; ++p)
#pragma unroll
              for (int e = 0; e < 4; ++e) c[mt][p][e] = 0.0f;
#pragma unroll
          for (int i = 0; i < 4; ++i) {
            uint32_t d0[4], d1[4];
            Math::dequant_q(i == 0 ? q0.x : i == 1 ? q0.y : i == 2 ? q0.z : q0.w, z0, d0);
            Math::dequant_q(i == 0 ? q1.x : i == 1 ? q1.y : i == 2 ? q1.z : q1.w, z1, d1);
#pragma unroll
            for (int mt = 0; mt < MT; ++mt) {
              const uint4 xv = xf[mt][i];
              Math::mma(c[mt][0], d0[0], d1[0], d0[1], d1[1], xv.x, xv.y);
              Math::mma(c[mt][1], d0[2], d1[2], d0[3], d1[3], xv.z, xv.w);
            }
          }
          // c[.][.][0..1]: row g, c[.][.][2..3]: row g + 8
          const float sf0 = Math::to_float(uint16_t(e0)), sf1 = Math::to_float(uint16_t(e1));
#pragma unroll
          for (int mt = 0; mt < MT; ++mt) {
            acc[nt][mt][0][0] += sf0 * (c[mt][0][0] + c[mt][1][0]);
            acc[nt][mt][0][1] += sf0 * (c[mt][0][1] + c[mt][1][1]);
            acc[nt][mt][0][2] += sf1 * (c[mt][0][2] + c[mt][1][2]);
            acc[nt][mt][0][3] += sf1 * (c[mt][0][3] + c[mt][1][3]);
          }
        } else {
          const uint32_t s0 = __byte_perm(e0, 0, 0x1010), s1 = __byte_perm(e1, 0, 0x1010);
#pragma unroll
          for (int i = 0; i < 4; ++i) {
            uint32_t d0[4], d1[4];
            Math::dequant(i == 0 ? q0.x : i == 1 ? q0.y : i == 2 ? q0.z : q0.w, z0, s0, d0);
            Math::dequant(i == 0 ? q1.x : i == 1 ? q1.y : i == 2 ? q1.z : q1.w, z1, s1, d1);
#pragma unroll
            for (int mt = 0; mt < MT; ++mt) {
              const uint4 xv = xf[mt][i];
              Math::mma(acc[nt][mt][2 * (i % 2)], d0[0], d1[0], d0[1], d1[1], xv.x, xv.y);
              Math::mma(acc[nt][mt][2 * (i % 2) + 1], d0[2], d1[2], d0[3], d1[3], xv.z, xv.w);
            }
          }
        }
      }
    }
  };

  // ---- multistage pipeline: one commit group per stage (empty groups keep the count uniform) ----
  // Stage s of the walk sits in slot s % STAGES and covers k-stage phys(s); kLean keeps both as
  // running values for the next stage to issue (ld_*) and to consume (cp_*).
  unsigned char* const send = sbase + C::STAGES * a.slot_bytes;
  int ld_k = ns > 0 ? phys(0) : 0, cp_k = ld_k;
  unsigned char *ld_sl = sbase, *cp_sl = sbase;
  auto advance = [&](int& k, unsigned char*& sl) {
    k = k + 1 == s_lo + ns ? s_lo : k + 1;
    sl = sl + a.slot_bytes == send ? sbase : sl + a.slot_bytes;
  };
  auto issue = [&](auto ec, int s) {
    unsigned char* sl = kLN ? ld_sl : slot(s);
    const int kst = kLN ? ld_k : phys(s);
    if constexpr (kLN) advance(ld_k, ld_sl);
    load_w(sl, kst);
    if constexpr (!kXD) load_x(sl, kst);
    fetch_sz(ec, kst);
  };
  Unroll<R>::run([&](auto ec) {
    constexpr int s = decltype(ec)::value;
    if (s < ns) issue(ec, s);
    cp_async_commit();
  });
  for (int s0 = 0; s0 < ns; s0 += R) {
    Unroll<R>::run([&](auto ec) {
      const int s = s0 + decltype(ec)::value;   // s % R == ring entry
      if (s >= ns) return;
      unsigned char* sl = kLN ? cp_sl : slot(s);
      const int kst = kLN ? cp_k : phys(s);
      if constexpr (kLN) advance(cp_k, cp_sl);
      store_sz(ec, sl);
      cp_async_wait<C::STAGES - 2>();
      __syncthreads();   // stage s visible to all; the slot of stage s - 1 is free for stage s + R
      if (s + R < ns) issue(ec, s + R);
      cp_async_commit();
      compute(sl, kst);
    });
  }

  // ---- reduce the KW k-warps of each row tile: red[warp][NT tiles][8 MT cols][16 rows + 1] ------
  cp_async_wait<0>();
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  // kPdlLate: the block's trigger is its first thread's, so the dependents may launch once the first warp of
  // every block has left the main loop
  if (a.late_trigger) asm volatile("griddepcontrol.launch_dependents;");
#endif
  __syncthreads();
  float* red = reinterpret_cast<float*>(smem);
  constexpr int kCols = 8 * MT;
#pragma unroll
  for (int nt = 0; nt < C::NT; ++nt) {
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
      // c[0], c[1]: (row g, cols 2t, 2t+1); c[2], c[3]: (row g + 8, same cols)
      float* r0 = red + ((warp * C::NT + nt) * kCols + 8 * mt + 2 * t) * 17;
      float c[4];
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        c[j] = (acc[nt][mt][0][j] + acc[nt][mt][1][j]) + (acc[nt][mt][2][j] + acc[nt][mt][3][j]);
      }
      r0[g] = c[0];
      r0[g + 8] = c[2];
      r0[17 + g] = c[1];
      r0[17 + g + 8] = c[3];
    }
  }
  __syncthreads();
  const int n_out = C::RW * C::NT * mc * 16;
  // CS > 1: the block's sums over its k-warps, part[i], after red (stream_smem_bytes counts both)
  float* part = red + C::W * C::NT * kCols * 17;
  for (int i = tid; i < n_out; i += NT) {
    const int r = i % 16, m = (i / 16) % mc, tile = i / (16 * mc);   // tile = rw NT + nt
    const int n = n_base + 16 * tile + r;
    if constexpr (C::CS == 1) {
      if (n >= a.n) continue;
    }
    float v = 0.0f;
#pragma unroll
    for (int q = 0; q < C::KW; ++q) {
      v += red[((((tile / C::NT) * C::KW + q) * C::NT + tile % C::NT) * kCols + m) * 17 + r];
    }
    if constexpr (C::CS > 1) {
      part[i] = v;
    } else {
      if (a.bias != nullptr) v += Math::to_float(a.bias[n]);
      a.y[size_t(m0 + m) * a.n + n] = Math::pack1(v);
    }
  }
  if constexpr (C::CS > 1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    // rank r finishes outputs i = r, r + CS, ...: the ranks' partial sums in rank order (deterministic)
    cluster_sync();
    for (int i = rank + C::CS * tid; i < n_out; i += C::CS * NT) {
      const int r = i % 16, m = (i / 16) % mc, tile = i / (16 * mc);
      const int n = n_base + 16 * tile + r;
      if (n >= a.n) continue;
      float v = 0.0f;
#pragma unroll
      for (int q = 0; q < C::CS; ++q) v += ld_cluster_f32(part + i, uint32_t(q));
      if (a.bias != nullptr) v += Math::to_float(a.bias[n]);
      a.y[size_t(m0 + m) * a.n + n] = Math::pack1(v);
    }
    cluster_sync();   // no block may leave (and free its shared memory) while another rank reads it
#endif
  }
}

template <typename C>
int stream_slot_bytes(int group_size, int mc) {
  const int groups = C::KSB / group_size;
  const int sz = (C::BN * (groups + 1) * 4 + 15) / 16 * 16;
  return C::kWBytes + sz + ((C::FLAGS & kXDirect) ? 0 : mc * C::kXRow);
}

template <typename C>
int64_t stream_smem_bytes(int group_size, int mc) {
  const int64_t pipe = int64_t(C::STAGES) * stream_slot_bytes<C>(group_size, mc);
  // the k-warp reduction red[W][NT][8 MT][17] fp32, then (CS > 1) the block's partial sums
  const int64_t red = int64_t(C::W) * C::NT * 8 * C::MT * 17 * 4 + (C::CS > 1 ? int64_t(C::BN) * mc * 4 : 0);
  return pipe > red ? pipe : red;
}

// Raises the dynamic shared memory limit of configuration C's kernel once per device, to the largest size
// any shape of C needs (or to smem where that is more than the device allows); false if CUDA refused.
template <typename T, int G, typename C>
bool raise_stream_smem(const DeviceInfo& dev, int64_t smem) {
  if (smem <= 48 * 1024) return true;
  static std::atomic<int> raised[64];
  int dev_id = 0;
  cudaGetDevice(&dev_id);
  const int max_smem = int(stream_smem_bytes<C>(G, 8 * C::MT));
  if (dev_id < 0 || dev_id >= 64 || raised[dev_id].load(std::memory_order_relaxed) == 0) {
    const int want = max_smem <= dev.smem_optin ? max_smem : int(smem);
    if (cudaFuncSetAttribute(int4_stream_kernel<T, G, C>, cudaFuncAttributeMaxDynamicSharedMemorySize, want) != cudaSuccess) {
      return false;
    }
    if (dev_id >= 0 && dev_id < 64 && want == max_smem) raised[dev_id].store(1, std::memory_order_relaxed);
  }
  return true;
}

// Resident blocks per SM of configuration C's kernel with mc rows of x (occupancy API; 0 where it fails
// or the blocks do not fit), cached per device and mc: a host query, fine during graph capture.
template <typename T, int G, typename C>
int stream_blocks_per_sm(const DeviceInfo& dev, int mc) {
  static std::atomic<int> cache[64][8 * C::MT + 1];
  int dev_id = 0;
  cudaGetDevice(&dev_id);
  const bool cacheable = dev_id >= 0 && dev_id < 64 && mc >= 1 && mc <= 8 * C::MT;
  if (cacheable) {
    const int v = cache[dev_id][mc].load(std::memory_order_relaxed);
    if (v != 0) return v;
  }
  const int64_t smem = stream_smem_bytes<C>(G, mc);
  if (smem > dev.smem_optin) return 0;
  if (!raise_stream_smem<T, G, C>(dev, smem)) {
    (void)cudaGetLastError();  // the attribute call's error only: the caller falls back to its default choice
    return 0;
  }
  int n = 0;
  if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, int4_stream_kernel<T, G, C>, C::kThreads, size_t(smem)) !=
      cudaSuccess) {
    (void)cudaGetLastError();  // this query's error only: the caller falls back to its default choice
    return 0;
  }
  if (cacheable && n > 0) cache[dev_id][mc].store(n, std::memory_order_relaxed);
  return n;
}

template <typename T, int G, typename C>
Status launch_stream(const Int4LinearParams& p, cudaStream_t stream, int pdl) {
  const DeviceInfo dev = device_info(p.sm_count);
  const int mchunk = 8 * C::MT;
  const int64_t n_tiles = (p.n + C::BN - 1) / C::BN;
  const int64_t m_tiles = (p.m + mchunk - 1) / mchunk;
  if (n_tiles * C::CS > (int64_t(1) << 30) || m_tiles > 65535) return Status::kUnsupported;
  auto kernel = int4_stream_kernel<T, G, C>;
  // the kernel runs its sm_90 code (cluster reduction, griddepcontrol.wait), not JIT-compiled compute_80 PTX
  static const bool sm90_code = has_cluster_code(reinterpret_cast<const void*>(kernel));
  if (C::CS > 1 && (!sm90_code || dev.cc_major < 9)) return Status::kUnsupported;
  const int mc = int(p.m < mchunk ? p.m : mchunk);
  const int64_t smem = stream_smem_bytes<C>(G, mc);
  if (smem > dev.smem_optin) return Status::kUnsupported;

  StreamArgs a;
  a.x = static_cast<const uint16_t*>(p.x);
  a.qweight = reinterpret_cast<const uint4*>(p.qweight);
  a.scales = static_cast<const uint16_t*>(p.scales);
  a.zeros = p.zeros;
  a.bias = static_cast<const uint16_t*>(p.bias);
  a.y = static_cast<uint16_t*>(p.y);
  a.m = int(p.m);
  a.n = int(p.n);
  a.k = int(p.k);
  a.x_stride = p.x_stride;
  a.n_stages = int((p.k + C::KSB - 1) / C::KSB);
  a.slot_bytes = stream_slot_bytes<C>(G, mc);
  a.x_vec_ok = reinterpret_cast<uintptr_t>(p.x) % 16 == 0 && p.x_stride % 8 == 0;
  if ((C::FLAGS & kXDirect) && !a.x_vec_ok) return Status::kUnsupported;   // 16-byte x loads only
  // PDL only with the sm_90 code: the compute_80 PTX (a newer GPU, or a build without sm_90) has no wait
  const bool use_pdl = (pdl & kPdlOn) != 0 && dev.cc_major >= 9 && sm90_code;
  a.prefetch = use_pdl && (pdl & kPdlNoPrefetch) == 0;
  a.late_trigger = use_pdl && (pdl & kPdlLate) != 0;

  if (!raise_stream_smem<T, G, C>(dev, smem)) return Status::kLaunchError;
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3(unsigned(n_tiles * C::CS), unsigned(m_tiles), 1);
  cfg.blockDim = dim3(C::kThreads, 1, 1);
  cfg.dynamicSmemBytes = size_t(smem);
  cfg.stream = stream;
  cudaLaunchAttribute attr[2];
  cfg.attrs = attr;
  if (use_pdl) {
    attr[cfg.numAttrs].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[cfg.numAttrs].val.programmaticStreamSerializationAllowed = 1;
    ++cfg.numAttrs;
  }
  if (C::CS > 1) {
    attr[cfg.numAttrs].id = cudaLaunchAttributeClusterDimension;
    attr[cfg.numAttrs].val.clusterDim.x = unsigned(C::CS);
    attr[cfg.numAttrs].val.clusterDim.y = 1;
    attr[cfg.numAttrs].val.clusterDim.z = 1;
    ++cfg.numAttrs;
  }
  if (cudaLaunchKernelEx(&cfg, kernel, a) != cudaSuccess) return Status::kLaunchError;
  return Status::kOk;
}

template <typename C>
Status dispatch_stream(const Int4LinearParams& p, cudaStream_t stream, int pdl) {
  return AWQ_DTYPE_SWITCH(p.dtype, D, [&] {
    if constexpr (D == DType::kF16) {
      return AWQ_GROUP_SWITCH(p.group_size, G, [&] { return launch_stream<__half, G, C>(p, stream, pdl); });
    } else if constexpr (D == DType::kBF16) {
      return AWQ_GROUP_SWITCH(p.group_size, G, [&] { return launch_stream<__nv_bfloat16, G, C>(p, stream, pdl); });
    } else {
      return Status::kUnsupported;
    }
  });
}

// Streaming configurations, StreamCfg<MT, RW, KW, KBW, STAGES, FLAGS, NT = 1, CS = 1>: BN = 16 RW NT
// rows per block, RW x KW warps, KSB = 128 KBW KW k per stage, CS blocks per row tile (a cluster).
// Built into the library (fp16 and bf16, G 32/64/128: 48 kernels), chosen from sweeps on the six LLM
// shapes (H200, fp16 and bf16, M 1..16, bench/results/linear_decode_h200.md); ids are those of the sweeps:
//   id  name              MT RW KW KBW ST CS flags                BN  KSB   used for
//   76  StreamKXLean       1  1  8  2  3  1  stagger|SA|XD|lean   16  2048  M <= 8, few rows, fp16 (x 16-byte aligned)
//   44  StreamKX           1  1  8  2  3  1  stagger|SA|XD        16  2048  M <= 8, few rows, bf16 (x 16-byte aligned)
//   48  StreamN32RC        1  2  4  2  2  1  L1|stagger|SA|RC     32  1024  M = 1 otherwise, fp16
//   71  StreamN32Lean      1  2  4  2  2  1  L1|stagger|SA|RC|lean 32 1024  M <= 8 otherwise
//  111  StreamN64Lean      1  4  2  2  3  1  L1|stagger|SA|RC|lean 64  512  M <= 8 where 48 / 71 fill their last wave badly
//   74  StreamN64M16Pair   2  4  2  2  2  2  L1|stagger|RC|lean   64   512  M 9..16 (and 16-row chunks of M <= 32), few rows
//   73  StreamN64M16Lean   2  4  2  2  2  1  L1|stagger|RC|lean   64   512  M 9..16, many rows
//   49  StreamN32M16       2  2  4  2  3  1  L1|stagger|RC        32  1024  M 9..16, few rows, where 74 cannot run
// kLean and the cluster pair (H200, 14:38-14:55 UTC, five calls, all candidates in the same call; A/B
// of the few-row kernels three times in one call, bench/results/linear_decode_h200.md): kLean cut
// fp16 M 2..8 and bf16 M 1..8 on many rows by 3-10 % (28672 x 8192 M = 8: 55.9 -> 51.1 us) and M = 16
// on many rows by 8-10 % (28672 x 8192: 74.0 -> 66.8 us); fp16 M = 1 stays on StreamN32RC (lean
// +0.5..2 %). Pairs of blocks splitting K (CS = 2) win at M = 16 on few rows (4096 x 14336: 27.8 ->
// 22.3 us) but lose where the grid is already several waves (14336 x 4096: 20.5 -> 22.8 us); on the
// 16-row K-split tile they lose 45-100 % (52, 53, 60: a cluster grid of 512-1024 blocks runs in
// more waves than the same blocks without clusters). Few rows at M <= 8: lean without RC (76) beats
// StreamKX in fp16 by 8-11 % on 4096 x 11008 and 4096 x 14336 (5 % slower on 4096 x 4096 M = 8), and
// loses 2-5 % in bf16, so each dtype keeps its faster kernel. Also measured and dropped: x fragments
// loaded before the wait for the stage's weights (equal or up to 8 % slower), deeper StreamKX
// pipelines (4, 5 stages: 3-9 % slower), a 16-row K-split tile at M = 16 (56: 7-35 % slower), lean
// with RC on the 16-row K-split tile (70: 5-10 % slower).
// kRowCopy (RC; H200, 13:52-13:58 UTC, old and new code timed alternately in the same calls,
// bench/results/linear_decode_h200.md): StreamN32, fp16, M = 1..4: -5..-8 % time on the three
// many-row shapes (28672 x 8192 M = 1: 42.2 -> 38.7 us); bf16 +2..+6 %, and fp16 M = 8 mixed
// (14336 x 4096: 18.7 -> 20.3 us, first call), so those keep the old copies. The M = 16 tiles:
// 0..-4.5 % on the six shapes in both dtypes (ids 15 / 16 are the versions without RC). StreamKX
// (few rows): +8..+15 % at M <= 8 (first call), so it keeps the old copies.
// First sweep (17 candidates, 08:22 UTC), geo-means of the time ratio over 6 shapes x M: x through L1
// cut the time by 8-26 % at M <= 8 and 21 % at M = 16 (x is 6-25 % of the weight bytes at M = 1 and
// grows with M; from L2, every block of the GPU reads the same few lines at once); two stages beat
// three or four where it buys more resident blocks (5-7 %); 8 warps per block beat 4; the staggered K
// order changed nothing measurable (kept: it costs nothing).
// Second and third sweeps (09:52-10:10 UTC, g128): kScaleAfter (SA) is 3-10 % faster at M <= 8
// (28672 x 8192 M = 1: 45.6 -> 42.1 us) and equal or slower at M = 16, where the two extra adds per
// mma pair and x tile outweigh the 4 saved multiplies. kXDirect (XD) on the 16-row, K-split tile wins
// 8-17 % on few rows (4096 x 11008 M = 1: 13.9 -> 12.5 us, M = 8: 17.1 -> 14.2 us) and loses 20-30 %
// on many rows or at M = 16. Also measured and dropped: the zero point out of the loop as well (mma
// on 1024 + q, the zero folded in through an all-ones mma giving sum(x): 5-20 % slower than SA alone),
// deeper pipelines (3, 5, 6 stages), 2 tiles per warp, 16-warp blocks.
using StreamKX = StreamCfg<1, 1, 8, 2, 3, kStagger | kScaleAfter | kXDirect>;
using StreamKXLean = StreamCfg<1, 1, 8, 2, 3, kStagger | kScaleAfter | kXDirect | kLean>;
using StreamN32RC = StreamCfg<1, 2, 4, 2, 2, kXL1 | kStagger | kScaleAfter | kRowCopy>;
using StreamN32Lean = StreamCfg<1, 2, 4, 2, 2, kXL1 | kStagger | kScaleAfter | kLean | kRowCopy>;
using StreamN64Lean = StreamCfg<1, 4, 2, 2, 3, kXL1 | kStagger | kScaleAfter | kLean | kRowCopy>;
using StreamN32M16 = StreamCfg<2, 2, 4, 2, 3, kXL1 | kStagger | kRowCopy>;
using StreamN64M16Lean = StreamCfg<2, 4, 2, 2, 2, kXL1 | kStagger | kLean | kRowCopy>;
using StreamN64M16Pair = StreamCfg<2, 4, 2, 2, 2, kXL1 | kStagger | kLean | kRowCopy, 1, 2>;

#define AWQ_STREAM_LIBRARY(X) \
  X(76, StreamKXLean)         \
  X(44, StreamKX)             \
  X(48, StreamN32RC)          \
  X(71, StreamN32Lean)        \
  X(111, StreamN64Lean)       \
  X(74, StreamN64M16Pair)     \
  X(73, StreamN64M16Lean)     \
  X(49, StreamN32M16)

#ifdef AWQ_GEMV_TUNING
// other candidates (benchmark builds only; the first sweep's losers 1..8, 11..14, 17 and the losers
// 52..70, 72, 75, 77..79 of 14:38-14:55 UTC are recorded in bench/results/linear_decode_h200.md): the
// library choices before kLean (18, 50), the previous library choices without SA,
// SA versions of the M = 16 ones, 2 tiles per warp, deeper pipelines, 8-warp-wide M = 16 tiles
#define AWQ_STREAM_TUNING(X)                                           \
  X(18, StreamCfg<1, 2, 4, 2, 2, kXL1 | kStagger | kScaleAfter>)       \
  X(50, StreamCfg<2, 4, 2, 2, 2, kXL1 | kStagger | kRowCopy>)          \
  X(9, StreamCfg<1, 1, 8, 2, 3, kXL1 | kStagger>)                      \
  X(10, StreamCfg<1, 2, 4, 2, 2, kXL1 | kStagger>)                     \
  X(19, StreamCfg<1, 1, 8, 2, 3, kXL1 | kStagger | kScaleAfter>)       \
  X(25, StreamCfg<1, 2, 8, 2, 2, kXL1 | kStagger | kScaleAfter>)       \
  X(20, StreamCfg<2, 2, 4, 2, 3, kXL1 | kStagger | kScaleAfter>)       \
  X(21, StreamCfg<2, 4, 2, 2, 2, kXL1 | kStagger | kScaleAfter>)       \
  X(24, StreamCfg<1, 1, 4, 2, 2, kXL1 | kStagger | kScaleAfter, 2>)    \
  X(32, StreamCfg<1, 2, 4, 2, 3, kXL1 | kStagger | kScaleAfter>)       \
  X(33, StreamCfg<1, 2, 4, 2, 5, kXL1 | kStagger | kScaleAfter>)       \
  X(34, StreamCfg<1, 1, 8, 2, 5, kXL1 | kStagger | kScaleAfter>)       \
  X(35, StreamCfg<1, 1, 4, 2, 6, kXL1 | kStagger | kScaleAfter>)       \
  X(36, StreamCfg<1, 2, 8, 2, 3, kXL1 | kStagger | kScaleAfter>)       \
  X(37, StreamCfg<2, 4, 2, 2, 3, kXL1 | kStagger | kScaleAfter>)       \
  X(38, StreamCfg<2, 8, 1, 4, 2, kXL1 | kStagger | kScaleAfter>)       \
  X(39, StreamCfg<2, 4, 1, 4, 3, kXL1 | kStagger | kScaleAfter>)       \
  X(40, StreamCfg<2, 2, 4, 2, 3, kStagger | kXDirect>)                 \
  X(41, StreamCfg<2, 4, 2, 2, 2, kStagger | kXDirect>)                 \
  X(42, StreamCfg<2, 2, 4, 2, 2, kStagger | kXDirect>)                 \
  X(43, StreamCfg<1, 2, 4, 2, 2, kStagger | kScaleAfter | kXDirect>)   \
  X(45, StreamCfg<2, 4, 2, 2, 3, kStagger | kXDirect>)                 \
  X(46, StreamCfg<2, 2, 4, 2, 4, kStagger | kXDirect>)                 \
  X(47, StreamCfg<1, 2, 4, 2, 3, kStagger | kScaleAfter | kXDirect>)   \
  X(15, StreamCfg<2, 2, 4, 2, 3, kXL1 | kStagger>)                     \
  X(16, StreamCfg<2, 4, 2, 2, 2, kXL1 | kStagger>)                     \
  X(51, StreamCfg<1, 1, 8, 2, 3, kStagger | kScaleAfter | kXDirect | kRowCopy>) \
  X(110, StreamCfg<1, 4, 2, 2, 2, kXL1 | kStagger | kScaleAfter | kLean | kRowCopy>) \
  X(112, StreamCfg<1, 2, 4, 2, 3, kXL1 | kStagger | kScaleAfter | kLean | kRowCopy>)
#else
#define AWQ_STREAM_TUNING(X)
#endif

// Programmatic dependent launch (see int4_stream_kernel), PDL modes by configuration (kPdl* bits).
// Few rows (76 / 44 at M <= 8, 74 / 49 at M 9..16): kPdlOn (kPdlFew), where every measurement gained:
// H200, 2026-11-21 23:20-23:50 UTC (bench/results/linear_decode_h200.md, session 10), fp16 M = 1
// 4096 x 4096 6.26 -> 5.86 us, 4096 x 11008 11.97 -> 11.14, 4096 x 14336 14.17 -> 13.40, 5-9 % at M = 4
// and 8 and in bf16 (session 8: 5-7 %); M = 12 / 16 2-8 %.
// Many rows (48 / 71 at M <= 8, 73 at M 9..16): kPdlOn | kPdlLate (kPdlMany). With the dependent grid
// launched right after the wait, 11008 x 4096 lost 8-14 % at M = 1 and 4 (fp16 M = 1 with 48 11.11 ->
// 11.97 us) while 14336 x 4096 and 28672 x 8192 gained 1-6 %; launched after each block's main loop
// instead, every many-row case measured gained: H200, 2026-11-22 (linear_decode_h200.md, session 11):
// 48 / 71 at M 1 / 4 / 8 on the three many-row shapes in both dtypes 1-5 % (36 cases, time ratios
// 0.949-0.996; fp16 M = 1 with 48 11.11 -> 10.54 us on 11008 x 4096, 13.48 -> 12.94 on 14336 x 4096,
// 38.59 -> 38.19 on 28672 x 8192), 73 at M 12 / 16 1-5 %, 0.3-0.8 % more than the early trigger (12
// cases). The late trigger costs the few-row configurations up to 18 % (74 on 4096 x 14336), so they
// keep the early one. M 17..32 (two block rows of 16, unmeasured with PDL): off.
constexpr int kPdlFew = kPdlOn;
constexpr int kPdlMany = kPdlOn | kPdlLate;
constexpr int kStreamPdl = 0;  // a forced configuration's default (int4_gemv_stream with pdl < 0), M > 16
constexpr bool kPdlDefault = true;

// (AWQ_DISABLE_PDL turns the default off: detail::pdl_allowed, int4_gemm.h)

// "Few rows": fewer than kMinBlocksPerSm blocks of 32 rows per SM (N < 8448 on 132 SMs).
constexpr int kMinBlocksPerSm = 2;

Status dispatch_candidate(int id, const Int4LinearParams& p, cudaStream_t stream, int pdl) {
  switch (id) {
#define AWQ_STREAM_CASE(ID, ...) \
  case ID: return dispatch_stream<__VA_ARGS__>(p, stream, pdl);
    AWQ_STREAM_LIBRARY(AWQ_STREAM_CASE)
    AWQ_STREAM_TUNING(AWQ_STREAM_CASE)
#undef AWQ_STREAM_CASE
    default: return Status::kUnsupported;
  }
}

// Fraction of the resident block slots that a grid's waves keep busy: blocks / (waves x slots).
double wave_fill(int64_t blocks, int64_t slots) {
  if (blocks <= 0 || slots <= 0) return 0.0;
  return double(blocks) / double((blocks + slots - 1) / slots * slots);
}

// Resident blocks per SM of configuration C for this problem's dtype, group size and rows of x (0 if unknown).
template <typename C>
int blocks_per_sm(const Int4LinearParams& p, const DeviceInfo& dev) {
  int n = 0;
  const int mc = int(p.m < 8 * C::MT ? p.m : 8 * C::MT);
  (void)AWQ_DTYPE_SWITCH(p.dtype, D, [&] {
    if constexpr (D == DType::kF16) {
      return AWQ_GROUP_SWITCH(p.group_size, G, [&] {
        n = stream_blocks_per_sm<__half, G, C>(dev, mc);
        return Status::kOk;
      });
    } else if constexpr (D == DType::kBF16) {
      return AWQ_GROUP_SWITCH(p.group_size, G, [&] {
        n = stream_blocks_per_sm<__nv_bfloat16, G, C>(dev, mc);
        return Status::kOk;
      });
    } else {
      return Status::kUnsupported;
    }
  });
  return n;
}

// M <= 8 on many rows: the 64-row tile (111) instead of the 32-row one (N32, i.e. 48 or 71) where the
// 32-row grid keeps less than kWideFill of its waves' block slots busy and the 64-row grid keeps more.
// H200, 2026-11-22 (bench/results/linear_decode_h200.md, session 11), g128, us, PDL as the library runs
// it: 14336 x 4096 at M = 5..8 (448 blocks of 32 rows in 1.13 waves of 396 slots, 3 per SM) fp16 M = 8
// 71 16.84 -> 111 14.10, M = 5 14.98 -> 13.13, bf16 M = 8 17.24 -> 14.79; where the 32-row grid fills its
// waves better the 64-row tile is slower: 11008 x 4096 (344 blocks, 0.87 of a wave) M = 8 12.77 ->
// 13.88, 28672 x 8192 (2.26 waves, 75 % filled) M = 4 43.81 -> 45.98. Not captured by the rule: 14336 x
// 4096 at M = 4 (71 at 4 blocks per SM, 85 % filled; 111 is 7 % faster) and M = 1..3 (111 2-7 % slower).
// Resident blocks come from the occupancy API, so the choice follows the kernels' register counts
// (near 64 for 48 / 71: another compiler or group size may move them across the 4-blocks-per-SM line).
// Group sizes 64 and 32 (same session, call 7): at g64 48 / 71 hold fewer blocks per SM and the rule
// takes 111 for 14336 x 4096 at every M (fp16 M = 1 48 17.29 -> 111 14.73 us, M = 8 71 18.14 -> 16.21),
// at g32 for M = 3..7 (fp16 M = 4 20.15 -> 17.53). Over g32 / 64 / 128, M 1..8, the three many-row
// shapes and both dtypes it never took the slower tile; it misses g32 M = 8 (11008 and 14336 x 4096,
// 7-13 %) and g64 bf16 M = 1..3 on 14336 x 4096 (3-4 %).
constexpr double kWideFill = 0.65;
template <typename N32>
bool wide_tile_pays(const Int4LinearParams& p, const DeviceInfo& dev) {
  const int64_t slots32 = int64_t(blocks_per_sm<N32>(p, dev)) * dev.sm_count;
  const int64_t slots64 = int64_t(blocks_per_sm<StreamN64Lean>(p, dev)) * dev.sm_count;
  if (slots32 <= 0 || slots64 <= 0) return false;
  const double fill32 = wave_fill((p.n + N32::BN - 1) / N32::BN, slots32);
  const double fill64 = wave_fill((p.n + StreamN64Lean::BN - 1) / StreamN64Lean::BN, slots64);
  return fill32 < kWideFill && fill64 > fill32;
}

// The library's choice for M <= 16 (and 16-row chunks of M <= 32); see the table above.
// pdl_flag: < 0 the library default (kPdlFew / kPdlMany where kPdlDefault and pdl_allowed(), kStreamPdl
// for M > 16), 0 off, 1 on (kPdlFew / kPdlMany, kPdlOn for M > 16).
Status stream_auto(const Int4LinearParams& p, cudaStream_t stream, int pdl_flag) {
  const DeviceInfo dev = device_info(p.sm_count);
  const bool pdl_on = pdl_flag < 0 ? kPdlDefault && detail::pdl_allowed() : pdl_flag != 0;
  const int pdl_few = pdl_on ? kPdlFew : 0, pdl_many = pdl_on ? kPdlMany : 0;
  const int pdl_off = pdl_flag < 0 ? kStreamPdl : pdl_flag != 0 ? kPdlOn : 0;
  const bool few_rows = (p.n + 31) / 32 < int64_t(kMinBlocksPerSm) * dev.sm_count;
  const bool f16 = p.dtype == DType::kF16;
  if (p.m <= 8) {
    // the 16-row K-split tiles read x with 16-byte loads; otherwise (x rows not 16-byte aligned) x is staged
    const bool x_vec = reinterpret_cast<uintptr_t>(p.x) % 16 == 0 && p.x_stride % 8 == 0;
    if (few_rows && x_vec) {
      return f16 ? dispatch_stream<StreamKXLean>(p, stream, pdl_few) : dispatch_stream<StreamKX>(p, stream, pdl_few);
    }
    const bool rc = p.m == 1 && f16;
    if (rc ? wide_tile_pays<StreamN32RC>(p, dev) : wide_tile_pays<StreamN32Lean>(p, dev)) {
      const Status st = dispatch_stream<StreamN64Lean>(p, stream, pdl_many);
      if (st != Status::kUnsupported) return st;
    }
    return rc ? dispatch_stream<StreamN32RC>(p, stream, pdl_many) : dispatch_stream<StreamN32Lean>(p, stream, pdl_many);
  }
  if (!few_rows) return dispatch_stream<StreamN64M16Lean>(p, stream, p.m <= 16 ? pdl_many : pdl_off);
  const int pdl = p.m <= 16 ? pdl_few : pdl_off;
  // the pair needs clusters (sm_90 code); elsewhere the previous few-row choice
  const Status st = dispatch_stream<StreamN64M16Pair>(p, stream, pdl);
  return st != Status::kUnsupported ? st : dispatch_stream<StreamN32M16>(p, stream, pdl);
}

}  // namespace

namespace detail {
// Register-pipelined GEMV entry (the previous decode kernel; the dispatcher uses it only
// where a streaming configuration does not fit the device's shared memory), for
// the benchmark's comparisons. cfg: 0 = its choice by M. split: 0 = heuristic, else a power of two <= 8 (> 1
// needs sm_90). plan_split non-null: launch nothing, store the split that would be used.
Status int4_gemv(const Int4LinearParams& p, cudaStream_t stream, int cfg, int split, int* plan_split) {
  if (!gemv_shape_ok(p)) return Status::kUnsupported;
  if (split != 0 && (split < 1 || split > kMaxSplit || (split & (split - 1)) != 0)) return Status::kUnsupported;
  if (cfg != 0) return Status::kUnsupported;
  return p.m <= 8 ? dispatch_dtype<CfgSmallM>(p, stream, split, plan_split)
                  : dispatch_dtype<CfgLargeM>(p, stream, split, plan_split);
}

// Streaming GEMV with a forced configuration (benchmark sweeps, tests).
// cfg: 0 = the library's choice; 44, 48, 49, 71, 73, 74, 76, 111 = the library's configurations; the other ids of
// AWQ_STREAM_TUNING are sweep candidates, built only with -DAWQ_GEMV_TUNING (kUnsupported otherwise). Any M works with any
// configuration (rows past 8 MT run as further block rows). pdl: < 0 the library default (for a forced
// configuration: off, kStreamPdl, whatever the automatic choice would do with it), 0 off, 1 on; with a
// forced configuration also the kPdl* mode bits (kPdlOn | kPdlNoPrefetch, kPdlOn | kPdlLate).
Status int4_gemv_stream(const Int4LinearParams& p, cudaStream_t stream, int cfg, int pdl) {
  if (!gemv_shape_ok(p)) return Status::kUnsupported;
  if (cfg != 0) return dispatch_candidate(cfg, p, stream, pdl < 0 ? kStreamPdl : pdl);
  const Status st = stream_auto(p, stream, pdl);
  if (st != Status::kUnsupported) return st;
  // the streaming configuration does not fit this device's shared memory (e.g. 99 KB on sm_86/89 vs
  // 156 KB for StreamN32M16 at M = 16): the register-pipelined GEMV needs only its x slice
  return p.m <= 8 ? dispatch_dtype<CfgSmallM>(p, stream, 0, nullptr) : dispatch_dtype<CfgLargeM>(p, stream, 0, nullptr);
}
}  // namespace detail

Status int4_linear(const Int4LinearParams& p, void* stream) {
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  if (p.m <= kGemvMaxM) return detail::int4_gemv_stream(p, s, 0, -1);
  const Status st = detail::int4_gemm(p, s);
  if (st != Status::kUnsupported || p.m > kGemvChunkedMaxM) return st;
  return detail::int4_gemv_stream(p, s, 0, -1);
}

int64_t int4_linear_workspace_bytes(int64_t m, int64_t n, int64_t k, int group_size, int sm_count) {
  // The GEMV kernels need no scratch (split-K stays inside a block or a cluster); only the GEMM may.
  if (m <= kGemvMaxM) return 0;
  return detail::int4_gemm_workspace_bytes(m, n, k, group_size, sm_count);
}

}  // namespace cuda
}  // namespace awq
