// Tensor-core W4A16 GEMM for prefill and batched serving: y [M, N] = x [M, K] @ W^T (+ bias),
// W [N, K] stored as 4-bit codes in the kernel layout (layout.h), dequantized in registers.
//
// mma.sync (m16n8k16, sm_80+) runs on A100 and H100 from one source and takes B straight from
// registers (the dequantized weights never touch shared memory). On compute capability 9.0 the
// wgmma kernel of int4_gemm_sm90.cu serves every M it handles (17 .. 4096; weights as the register
// A operand, tokens as the wgmma n dimension); this one serves what it declines there and every
// M <= kMaxM on other GPUs. CUTLASS is not used because it is not installed and CI compiles every kernel on two cores.
//
// ---- Operands of one mma.m16n8k16 (row.col), lane = 4 g + t --------------------------------
//   A (16 x 16):  {a0} row g,   k 2t..2t+1     {a1} row g+8, k 2t..2t+1
//                 {a2} row g,   k 2t+8..2t+9   {a3} row g+8, k 2t+8..2t+9
//   B (16 x 8):   {b0} k 2t..2t+1, col g       {b1} k 2t+8..2t+9, col g
//   C (16 x 8):   c0,c1 row g, cols 2t..2t+1;  c2,c3 row g+8, same cols
//
// ---- The K permutation: one packed word feeds one thread ------------------------------------
// A dot product does not care in which order k is summed, as long as A and B agree. So the 16
// "k slots" of an mma are not mapped to consecutive k. For a 128-wide k-block, step s (0..7),
// lane t, pair p (b0: p = 0, b1: p = 1) and element e:
//
//     real k = 32 t + 4 s + 2 p + e
//
// Lane t therefore owns k in [32t, 32t + 32): the four qweight words 4t..4t+3 of the block, one
// 16-byte load. Word kk (k 32t + 8kk .. +7) serves steps s = 2kk and 2kk + 1; with the nibble
// order {0,2,4,6,1,3,5,7}, (word >> 4j) & 0x000F000F holds elements 2j and 2j+1, i.e. pair j =
// 2(s & 1) + p. OR-ing 0x6400 (fp16: 1024 + q) or 0x4300 (bf16: 128 + q) into each half makes a
// packed pair of exact floats; subtracting (magic | z) and multiplying by the group scale gives
// rnd_T((q - z) * s), bit for bit what reference.dequantize_int4 produces. Lane t's 32 k always lie
// in one group (group_size % 32 == 0), so each lane needs one (scale, zero) per column and block.
// On the A side the same lane needs x[row, 32t + 8kk .. +7] for steps 2kk and 2kk + 1: one 16-byte
// shared-memory load per row, halves {0,1}/{2,3} for the even step and {4,5}/{6,7} for the odd one.
//
// ---- Tiling ----------------------------------------------------------------------------------
//   block tile BM x BN x 128, WARPS_M x WARPS_N warps, warp tile WM x WN = MT m16-tiles x NT n8-tiles
//   STAGES-deep cp.async ring in shared memory:
//     A stage [BM][128] of T, row = 16 chunks of 16 bytes, chunk c stored at c ^ swz(row, c)
//     B stage [BN][16] int32 (64 bytes a row), no swizzle needed
//   A warp reads chunk 4t + kk of 8 rows; without the swizzle lanes t and t + 2 hit the same banks.
//   swz = ((c >> 3) & 1) | ((row & 1) << 1) makes the 8 lanes of each quarter-warp phase (rows r and
//   r + 1, t = 0..3) land on 8 distinct 16-byte bank groups.
//
//   Block order: GROUP_M consecutive m-blocks share a sweep over n, so at large M a wave touches
//   ~8 A tiles and ~16 W tiles, which stay in L2.
//   Split-K (few tiles, e.g. M <= 256 with N = 4096): grid.y = splits, each split writes fp32
//   partials to the workspace [splits, M, N] and a second kernel sums them, adds the bias and
//   rounds. Deterministic, needs no zero-initialised memory, costs one extra launch.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "awq/static_switch.h"
#include "int4_gemm.h"
#include "split_k.cuh"

namespace awq {
namespace cuda {
namespace detail {
namespace {

constexpr int kBK = 128;     // k per main-loop step: 32 k per lane = 4 packed words
constexpr int kGroupM = 8;   // m-blocks per raster group (L2 reuse at large M)
constexpr int kMaxSplits = 16;

template <typename T>
struct Half2Traits;
template <>
struct Half2Traits<__half> {
  static constexpr uint32_t kMagic = 0x64006400u;  // 1024.0 in each fp16 half
};
template <>
struct Half2Traits<__nv_bfloat16> {
  static constexpr uint32_t kMagic = 0x43004300u;  // 128.0 in each bf16 half
};

template <typename T>
__device__ __forceinline__ T from_float(float v);
template <>
__device__ __forceinline__ __half from_float<__half>(float v) { return __float2half_rn(v); }
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

template <typename T>
__device__ __forceinline__ float to_float(T v);
template <>
__device__ __forceinline__ float to_float<__half>(__half v) { return __half2float(v); }
template <>
__device__ __forceinline__ float to_float<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T>
__device__ __forceinline__ uint32_t pack2(float lo, float hi) {
  const T l = from_float<T>(lo), h = from_float<T>(hi);
  return uint32_t(reinterpret_cast<const uint16_t&>(l)) | (uint32_t(reinterpret_cast<const uint16_t&>(h)) << 16);
}

// (word & 0x000F000F) | magic: two codes as exact floats (magic + q) in one LOP3.
template <typename T>
__device__ __forceinline__ uint32_t codes_to_magic(uint32_t w) {
  uint32_t r;
  asm("lop3.b32 %0, %1, %2, %3, 0xea;" : "=r"(r) : "r"(w), "n"(0x000F000Fu), "n"(Half2Traits<T>::kMagic));
  return r;
}

// (magic + q - (magic + z)) * s: the subtraction is exact, the product rounds once, like the
// reference's fp32 (q - z) * s rounded to T.
template <typename T>
__device__ __forceinline__ uint32_t dequant_pair(uint32_t magic_q, uint32_t magic_z, uint32_t s2);
template <>
__device__ __forceinline__ uint32_t dequant_pair<__half>(uint32_t magic_q, uint32_t magic_z, uint32_t s2) {
  const __half2 d = __hmul2(__hsub2(reinterpret_cast<const __half2&>(magic_q), reinterpret_cast<const __half2&>(magic_z)),
                            reinterpret_cast<const __half2&>(s2));
  return reinterpret_cast<const uint32_t&>(d);
}
template <>
__device__ __forceinline__ uint32_t dequant_pair<__nv_bfloat16>(uint32_t magic_q, uint32_t magic_z, uint32_t s2) {
  const __nv_bfloat162 d = __hmul2(__hsub2(reinterpret_cast<const __nv_bfloat162&>(magic_q),
                                           reinterpret_cast<const __nv_bfloat162&>(magic_z)),
                                   reinterpret_cast<const __nv_bfloat162&>(s2));
  return reinterpret_cast<const uint32_t&>(d);
}

template <typename T>
__device__ __forceinline__ void mma_16816(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                          uint32_t b0, uint32_t b1);
template <>
__device__ __forceinline__ void mma_16816<__half>(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2,
                                                  uint32_t a3, uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}
template <>
__device__ __forceinline__ void mma_16816<__nv_bfloat16>(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2,
                                                         uint32_t a3, uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

// 16-byte global -> shared copy; src_bytes = 0 zero-fills (rows past M or N, k past K).
// No L2 cache hints: CUDA 13.0's ptxas miscompiles them on sm_90.
__device__ __forceinline__ void cp_async_16(uint32_t dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

__device__ __forceinline__ uint4 lds128(uint32_t addr) {
  uint4 v;
  asm volatile("ld.shared.v4.u32 {%0,%1,%2,%3}, [%4];\n" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "r"(addr));
  return v;
}

__device__ __forceinline__ uint32_t lds32(uint32_t addr) {
  uint32_t v;
  asm volatile("ld.shared.u32 %0, [%1];\n" : "=r"(v) : "r"(addr));
  return v;
}

__device__ __forceinline__ uint32_t a_chunk_swizzled(int row, int c) { return uint32_t(c ^ (((c >> 3) & 1) | ((row & 1) << 1))); }

struct GemmArgs {
  const void* x;
  const uint32_t* qweight;
  const void* scales;
  const uint8_t* zeros;
  const void* bias;     // nullable; applied here only when splits == 1
  void* y;
  float* partials;      // [splits, M, N] when splits > 1
  int m, n, k;
  int64_t x_stride;
  int group_size;
  int groups;           // K / group_size
  int m_blocks, n_blocks, k_blocks, splits;
};

// KSLICES > 1: that many warps share each warp tile, each taking 4 / KSLICES of the words kk of
// every lane's 32-k chunk, and their accumulators are summed through shared memory at the end.
// Meant to put more warps in flight for small-M tiles; measured slower on an H200 (the kernel is
// limited per SM, not per warp), so only the tuning build instantiates it.
template <typename T, int BM, int BN, int WARPS_M, int WARPS_N, int STAGES, int KSLICES = 1>
struct TileConfig {
  using Elem = T;
  static constexpr int kBM = BM, kBN = BN, kWarpsM = WARPS_M, kWarpsN = WARPS_N, kStages = STAGES;
  static constexpr int kKSlices = KSLICES;
  static constexpr int kThreads = WARPS_M * WARPS_N * KSLICES * 32;
  static constexpr int kWM = BM / WARPS_M, kWN = BN / WARPS_N;
  static constexpr int kMT = kWM / 16, kNT = kWN / 8;
  static constexpr int kAStageBytes = BM * kBK * 2;
  static constexpr int kBStageBytes = BN * kBK / 2;
  static constexpr int kSmemBytes = STAGES * (kAStageBytes + kBStageBytes);
  static_assert(kWM % 16 == 0 && kWN % 8 == 0 && kWM * kWarpsM == BM, "warp tile must be whole m16 x n8 tiles");
  static_assert((BM * kBK / 8) % kThreads == 0 && (BN * kBK / 32) % kThreads == 0, "loader shape");
  static_assert(KSLICES == 1 || KSLICES == 2 || KSLICES == 4, "k-slices split the 4 words of a lane");
  static_assert(KSLICES == 1 || (KSLICES - 1) * WARPS_M * WARPS_N * kMT * kNT * 4 * 32 * 4 <= kSmemBytes,
                "k-slice partial sums must fit in the pipeline's shared memory");
};

template <typename Cfg>
__global__ void __launch_bounds__(Cfg::kThreads) int4_gemm_kernel(const GemmArgs args) {
  using T = typename Cfg::Elem;
  constexpr int BM = Cfg::kBM, BN = Cfg::kBN, STAGES = Cfg::kStages, kThreads = Cfg::kThreads;
  constexpr int MT = Cfg::kMT, NT = Cfg::kNT, WM = Cfg::kWM, WN = Cfg::kWN;
  constexpr int kAIters = BM * kBK / 8 / kThreads;   // 16-byte A chunks per thread per stage
  constexpr int kBIters = BN * kBK / 32 / kThreads;  // 16-byte B chunks per thread per stage

  extern __shared__ __align__(16) uint8_t smem[];
  const uint32_t smem_a = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  const uint32_t smem_b = smem_a + STAGES * Cfg::kAStageBytes;

  // ---- which tile and which k range ----
  const int tile = blockIdx.x;
  const int per_group = kGroupM * args.n_blocks;
  const int first_m = (tile / per_group) * kGroupM;
  const int group_rows = min(args.m_blocks - first_m, kGroupM);
  const int in_group = tile % per_group;
  const int m0 = (first_m + in_group % group_rows) * BM;
  const int n0 = (in_group / group_rows) * BN;
  const int split = blockIdx.y;
  const int kb_begin = int(int64_t(split) * args.k_blocks / args.splits);
  const int kb_end = int(int64_t(split + 1) * args.k_blocks / args.splits);

  const int tid = threadIdx.x;
  const int lane = tid & 31, warp = tid >> 5;
  constexpr int kTileWarps = Cfg::kWarpsM * Cfg::kWarpsN, kKPerSlice = 4 / Cfg::kKSlices;
  const int ks = warp / kTileWarps;  // k-slice: words kk in [ks kKPerSlice, (ks + 1) kKPerSlice)
  const int wm = (warp % kTileWarps) / Cfg::kWarpsN, wn = warp % Cfg::kWarpsN;
  const int g = lane >> 2, t = lane & 3;

  // ---- loader state: a thread always copies the same chunk column c, of rows r0 + i R ----
  const T* x = static_cast<const T*>(args.x);
  constexpr int kARowStep = kThreads / 16, kBRowStep = kThreads / 4;
  const int a_c = tid & 15, a_r0 = tid >> 4;
  const T* a_src0 = x + int64_t(min(m0 + a_r0, args.m - 1)) * args.x_stride + a_c * 8;
  const int64_t a_step = int64_t(kARowStep) * args.x_stride;
  const int a_rows_left = args.m - m0 - a_r0;  // row i is valid iff i * kARowStep < a_rows_left
  // kARowStep is even, so every row of this thread has the parity of a_r0 and the same swizzle
  const uint32_t a_dst0 = (a_r0 * 16 + a_chunk_swizzled(a_r0, a_c)) * 16;
  const int b_c = tid & 3, b_r0 = tid >> 2;
  const int kwords = args.k / 8;
  const uint32_t* b_src0 = args.qweight + int64_t(min(n0 + b_r0, args.n - 1)) * kwords + b_c * 4;
  const int64_t b_step = int64_t(kBRowStep) * kwords;
  const int b_rows_left = args.n - n0 - b_r0;
  const uint32_t b_dst0 = (b_r0 * 4 + b_c) * 16;

  auto load_stage = [&](int kb, int stage) {
    const bool a_k_ok = kb * kBK + a_c * 8 < args.k;
    const uint32_t a_dst = smem_a + stage * Cfg::kAStageBytes + a_dst0;
#pragma unroll
    for (int i = 0; i < kAIters; ++i) {
      const bool ok = a_k_ok && i * kARowStep < a_rows_left;
      cp_async_16(a_dst + i * kARowStep * 256, ok ? a_src0 + i * a_step + kb * kBK : x, ok);
    }
    const bool b_k_ok = kb * kBK + b_c * 32 < args.k;
    const uint32_t b_dst = smem_b + stage * Cfg::kBStageBytes + b_dst0;
#pragma unroll
    for (int i = 0; i < kBIters; ++i) {
      const bool ok = b_k_ok && i * kBRowStep < b_rows_left;
      cp_async_16(b_dst + i * kBRowStep * 64, ok ? b_src0 + i * b_step + kb * (kBK / 8) : args.qweight, ok);
    }
  };

  // ---- per-lane group parameters: lane (g, t) of n8-tile j needs column n0 + wn WN + 8j + g ----
  // N % 8 == 0, so an n8-tile is entirely inside or entirely past N; tiles past N read nothing.
  const uint16_t* scales = static_cast<const uint16_t*>(args.scales);
  const int col0 = n0 + wn * WN + g;
  const int64_t q_base = int64_t(col0) * args.groups;
  const int64_t q_step = int64_t(8) * args.groups;
  const int tiles_in = min(NT, (args.n - (n0 + wn * WN) + 7) / 8);  // n8-tiles of this warp below N
  uint32_t raw_q[NT];  // next block's (scale bits | zero << 16), fetched one block ahead
  auto fetch_qparams = [&](int kb) {
    const int grp = min((kb * kBK + 32 * t) / args.group_size, args.groups - 1);
#pragma unroll
    for (int j = 0; j < NT; ++j) {
      raw_q[j] = 0;
      if (j < tiles_in) {
        const int64_t o = q_base + j * q_step + grp;
        raw_q[j] = uint32_t(__ldg(scales + o)) | (uint32_t(__ldg(args.zeros + o)) << 16);
      }
    }
  };
  uint32_t s2[NT], z2[NT];
  auto take_qparams = [&]() {
#pragma unroll
    for (int j = 0; j < NT; ++j) {
      s2[j] = __byte_perm(raw_q[j], 0, 0x1010);  // scale bits in both halves
      z2[j] = Half2Traits<T>::kMagic | (raw_q[j] >> 16) | (raw_q[j] & 0xffff0000u);
    }
  };

  float acc[MT][NT][4];
#pragma unroll
  for (int i = 0; i < MT; ++i)
#pragma unroll
    for (int j = 0; j < NT; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.f;

  // ---- fragment addresses within a stage ----
  // A: rows wm WM + 16 i + g (+8), chunk 4t + kk stored at 4t + (kk ^ x_lane) (see a_chunk_swizzled)
  const int a_row0 = wm * WM + g;
  const uint32_t a_x = uint32_t((t >> 1) | ((g & 1) << 1));
  const uint32_t a_frag0 = (a_row0 * 16 + 4 * t) * 16;
  // B: row wn WN + 8 j + g, chunk t
  const uint32_t b_frag0 = ((wn * WN + g) * 4 + t) * 16;

  // ---- pipeline prologue ----
#pragma unroll
  for (int s = 0; s < STAGES - 1; ++s) {
    if (kb_begin + s < kb_end) load_stage(kb_begin + s, s);
    cp_async_commit();
  }
  if (kb_begin < kb_end) {
    fetch_qparams(kb_begin);
    take_qparams();
  }

  for (int kb = kb_begin; kb < kb_end; ++kb) {
    const int it = kb - kb_begin;
    cp_async_wait<STAGES - 2>();
    __syncthreads();  // stage `it` landed for everyone; everyone is done with stage it - 1
    {
      const int next = kb + STAGES - 1;
      if (next < kb_end) load_stage(next, (it + STAGES - 1) % STAGES);
      cp_async_commit();
    }
    if (kb + 1 < kb_end) fetch_qparams(kb + 1);

    const int stage = it % STAGES;
    const uint32_t a_base = smem_a + stage * Cfg::kAStageBytes + a_frag0;
    const uint32_t b_base = smem_b + stage * Cfg::kBStageBytes + b_frag0;
    // NT <= 4: all four words of every n8-tile in one 16-byte load each. Wider warp tiles would
    // run out of registers that way (64 x 64 spills), so they load one word per kk instead.
    constexpr bool kWideB = NT <= 4;
    uint4 bw[kWideB ? NT : 1];
    if constexpr (kWideB) {
#pragma unroll
      for (int j = 0; j < NT; ++j) bw[j] = lds128(b_base + j * 8 * 64);
    }

#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
      if (Cfg::kKSlices > 1 && kk / kKPerSlice != ks) continue;  // warp-uniform
      uint4 alo[MT], ahi[MT];
      const uint32_t a_off = ((kk ^ a_x) * 16);
#pragma unroll
      for (int i = 0; i < MT; ++i) {
        alo[i] = lds128(a_base + i * 16 * 256 + a_off);
        ahi[i] = lds128(a_base + (i * 16 + 8) * 256 + a_off);
      }
#pragma unroll
      for (int j = 0; j < NT; ++j) {
        uint32_t w;
        if constexpr (kWideB) {
          w = kk == 0 ? bw[j].x : kk == 1 ? bw[j].y : kk == 2 ? bw[j].z : bw[j].w;
        } else {
          w = lds32(b_base + j * 8 * 64 + kk * 4);
        }
        // step 2kk uses pairs 0 and 1 of the word, step 2kk + 1 pairs 2 and 3
        const uint32_t b00 = dequant_pair<T>(codes_to_magic<T>(w), z2[j], s2[j]);
        const uint32_t b01 = dequant_pair<T>(codes_to_magic<T>(w >> 4), z2[j], s2[j]);
        const uint32_t b10 = dequant_pair<T>(codes_to_magic<T>(w >> 8), z2[j], s2[j]);
        const uint32_t b11 = dequant_pair<T>(codes_to_magic<T>(w >> 12), z2[j], s2[j]);
#pragma unroll
        for (int i = 0; i < MT; ++i) {
          mma_16816<T>(acc[i][j], alo[i].x, ahi[i].x, alo[i].y, ahi[i].y, b00, b01);
          mma_16816<T>(acc[i][j], alo[i].z, ahi[i].z, alo[i].w, ahi[i].w, b10, b11);
        }
      }
    }
    if (kb + 1 < kb_end) take_qparams();
  }
  cp_async_wait<0>();

  if constexpr (Cfg::kKSlices > 1) {
    // slices 1.. park their sums in the (now idle) pipeline buffers, slice 0 adds them up;
    // lane-minor order keeps every access conflict-free
    constexpr int kPerWarp = MT * NT * 4 * 32;
    float* red = reinterpret_cast<float*>(smem);
    const int wt = warp % kTileWarps;
    __syncthreads();  // every warp is done reading the last stage
    if (ks > 0) {
      float* dst = red + ((ks - 1) * kTileWarps + wt) * kPerWarp + lane;
#pragma unroll
      for (int i = 0; i < MT; ++i)
#pragma unroll
        for (int j = 0; j < NT; ++j)
#pragma unroll
          for (int e = 0; e < 4; ++e) dst[((i * NT + j) * 4 + e) * 32] = acc[i][j][e];
    }
    __syncthreads();
    if (ks > 0) return;
#pragma unroll
    for (int s = 1; s < Cfg::kKSlices; ++s) {
      const float* src = red + ((s - 1) * kTileWarps + wt) * kPerWarp + lane;
#pragma unroll
      for (int i = 0; i < MT; ++i)
#pragma unroll
        for (int j = 0; j < NT; ++j)
#pragma unroll
          for (int e = 0; e < 4; ++e) acc[i][j][e] += src[((i * NT + j) * 4 + e) * 32];
    }
  }

  // ---- epilogue: fragments straight to global (each quad writes 16 contiguous bytes) ----
  const int row_base = m0 + wm * WM + g;
  const int col_base = n0 + wn * WN + 2 * t;
  if (args.splits == 1) {
    T* y = static_cast<T*>(args.y);
    const T* bias = static_cast<const T*>(args.bias);
#pragma unroll
    for (int j = 0; j < NT; ++j) {
      const int col = col_base + j * 8;
      if (col >= args.n) continue;
      float b0 = 0.f, b1 = 0.f;
      if (bias != nullptr) {
        b0 = to_float<T>(bias[col]);
        b1 = to_float<T>(bias[col + 1]);
      }
#pragma unroll
      for (int i = 0; i < MT; ++i) {
        const int row = row_base + i * 16;
        if (row < args.m)
          *reinterpret_cast<uint32_t*>(y + int64_t(row) * args.n + col) = pack2<T>(acc[i][j][0] + b0, acc[i][j][1] + b1);
        if (row + 8 < args.m)
          *reinterpret_cast<uint32_t*>(y + int64_t(row + 8) * args.n + col) =
              pack2<T>(acc[i][j][2] + b0, acc[i][j][3] + b1);
      }
    }
  } else {
    float* part = args.partials + int64_t(split) * args.m * args.n;
#pragma unroll
    for (int j = 0; j < NT; ++j) {
      const int col = col_base + j * 8;
      if (col >= args.n) continue;
#pragma unroll
      for (int i = 0; i < MT; ++i) {
        const int row = row_base + i * 16;
        if (row < args.m)
          *reinterpret_cast<float2*>(part + int64_t(row) * args.n + col) = make_float2(acc[i][j][0], acc[i][j][1]);
        if (row + 8 < args.m)
          *reinterpret_cast<float2*>(part + int64_t(row + 8) * args.n + col) = make_float2(acc[i][j][2], acc[i][j][3]);
      }
    }
  }
}


// ---- instantiated tile configurations ----------------------------------------------------------
//   id      BM  BN  warps (MxNxK)  warp tile  stages  smem    used for
//   kM32    32  128   1 x 4 x 1    32 x 32      4     64 KB   M <= 32
//   kM64    64  128   1 x 4 x 1    64 x 32      4     96 KB   32 < M <= 64
//   kM128  128  128   2 x 4 x 1    64 x 32      4    160 KB   64 < M <= kMaxM
// (x K: warps sharing a warp tile by k-slices, see TileConfig.)
// Each for fp16 and bf16: 6 GEMM kernels + 2 reduce kernels. WARPS_M = 1 for small M so no two
// warps dequantize the same weights. AWQ_GEMM_TUNING (benchmark builds only) adds candidates.
enum TileId : int {
  kM32 = 0,
  kM64 = 1,
  kM128 = 2,
#ifdef AWQ_GEMM_TUNING
  kT64x256 = 3,   // 64 x 256, 1 x 8 warps, 4 stages
  kT128x256 = 4,  // 128 x 256, 2 x 4 warps (64 x 64), 3 stages
  kT128S3 = 5,    // 128 x 128, 2 x 4 warps, 3 stages
  kT256x128 = 6,  // 256 x 128, 4 x 2 warps (64 x 64), 3 stages
  kT32K2 = 7,     // kM32 with 2 k-slices (8 warps)
  kT64K2 = 8,     // kM64 with 2 k-slices (8 warps)
#endif
};

template <typename T>
using CfgM32 = TileConfig<T, 32, 128, 1, 4, 4>;
template <typename T>
using CfgM64 = TileConfig<T, 64, 128, 1, 4, 4>;
template <typename T>
using CfgM128 = TileConfig<T, 128, 128, 2, 4, 4>;

// Runs BODY with `Cfg` bound to the configuration of TILE (for element type T).
#ifdef AWQ_GEMM_TUNING
#define AWQ_TUNING_TILE_CASES(T, ...)                                                              \
  case kT64x256: { using Cfg = TileConfig<T, 64, 256, 1, 8, 4>; return __VA_ARGS__(); }            \
  case kT128x256: { using Cfg = TileConfig<T, 128, 256, 2, 4, 3>; return __VA_ARGS__(); }          \
  case kT128S3: { using Cfg = TileConfig<T, 128, 128, 2, 4, 3>; return __VA_ARGS__(); }            \
  case kT256x128: { using Cfg = TileConfig<T, 256, 128, 4, 2, 3>; return __VA_ARGS__(); }            \
  case kT32K2: { using Cfg = TileConfig<T, 32, 128, 1, 4, 4, 2>; return __VA_ARGS__(); }            \
  case kT64K2: { using Cfg = TileConfig<T, 64, 128, 1, 4, 4, 2>; return __VA_ARGS__(); }
#else
#define AWQ_TUNING_TILE_CASES(T, ...)
#endif

#define AWQ_TILE_SWITCH(TILE, T, ...)                                   \
  [&]() -> ::awq::Status {                                              \
    switch (TILE) {                                                     \
      case kM32: { using Cfg = CfgM32<T>; return __VA_ARGS__(); }       \
      case kM64: { using Cfg = CfgM64<T>; return __VA_ARGS__(); }       \
      case kM128: { using Cfg = CfgM128<T>; return __VA_ARGS__(); }     \
      AWQ_TUNING_TILE_CASES(T, __VA_ARGS__)                             \
      default: break;                                                   \
    }                                                                   \
    return ::awq::Status::kUnsupported;                                 \
  }()

struct TileShape {
  int bm, bn;
};

TileShape tile_shape(int tile) {
  switch (tile) {
    case kM32: return {32, 128};
    case kM64: return {64, 128};
#ifdef AWQ_GEMM_TUNING
    case kT32K2: return {32, 128};
    case kT64K2: return {64, 128};
#endif
#ifdef AWQ_GEMM_TUNING
    case kT64x256: return {64, 256};
    case kT128x256: return {128, 256};
    case kT256x128: return {256, 128};
#endif
    default: return {128, 128};
  }
}

int default_tile(int64_t m) { return m <= 32 ? kM32 : m <= 64 ? kM64 : kM128; }

// Above this M the automatic path declines (kUnsupported) and the binding's dequantize + cuBLAS
// fallback runs: measured on an H200 (bench/results/gemm_notes.md), this kernel beats that path
// up to M = 128 and loses from M = 256 on (it runs at ~240 TFLOP/s; cuBLAS's wgmma kernels ~600+).
constexpr int64_t kMaxM = 128;


struct Plan {
  int tile;
  int m_blocks, n_blocks, k_blocks, splits;
};

Plan make_plan(int64_t m, int64_t n, int64_t k, int sm_count, int tile, int splits) {
  Plan pl;
  pl.tile = tile >= 0 ? tile : default_tile(m);
  const TileShape ts = tile_shape(pl.tile);
  pl.m_blocks = int((m + ts.bm - 1) / ts.bm);
  pl.n_blocks = int((n + ts.bn - 1) / ts.bn);
  pl.k_blocks = int((k + kBK - 1) / kBK);
  pl.splits = splits > 0 ? std::min(splits, pl.k_blocks)
                         : choose_splits(int64_t(pl.m_blocks) * pl.n_blocks, pl.k_blocks, sm_count, kMaxSplits, 4);
  return pl;
}

int64_t partial_bytes(const Plan& pl, int64_t m, int64_t n) { return pl.splits > 1 ? pl.splits * m * n * 4 : 0; }

bool aligned(const void* p, uintptr_t a) { return (reinterpret_cast<uintptr_t>(p) & (a - 1)) == 0; }

template <typename Cfg>
Status launch(const Int4LinearParams& p, const Plan& pl, cudaStream_t stream) {
  using T = typename Cfg::Elem;
  int dev = 0, max_smem = 0;
  if (cudaGetDevice(&dev) != cudaSuccess ||
      cudaDeviceGetAttribute(&max_smem, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev) != cudaSuccess)
    return Status::kLaunchError;
  if (Cfg::kSmemBytes > max_smem) return Status::kUnsupported;  // e.g. sm_86/89: 99 KB per block
  auto kernel = int4_gemm_kernel<Cfg>;
  if (cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, Cfg::kSmemBytes) != cudaSuccess)
    return Status::kLaunchError;

  GemmArgs a;
  a.x = p.x;
  a.qweight = reinterpret_cast<const uint32_t*>(p.qweight);
  a.scales = p.scales;
  a.zeros = p.zeros;
  a.bias = p.bias;
  a.y = p.y;
  a.partials = static_cast<float*>(p.workspace);
  a.m = int(p.m);
  a.n = int(p.n);
  a.k = int(p.k);
  a.x_stride = p.x_stride;
  a.group_size = p.group_size;
  a.groups = int(p.k / p.group_size);
  a.m_blocks = pl.m_blocks;
  a.n_blocks = pl.n_blocks;
  a.k_blocks = pl.k_blocks;
  a.splits = pl.splits;
  const dim3 grid(unsigned(int64_t(pl.m_blocks) * pl.n_blocks), unsigned(pl.splits));
  kernel<<<grid, Cfg::kThreads, Cfg::kSmemBytes, stream>>>(a);
  if (cudaGetLastError() != cudaSuccess) return Status::kLaunchError;
  if (pl.splits > 1) {
    const Status rs = launch_splitk_reduce<T>(a.partials, pl.splits, p.m, p.n, p.bias, p.y, stream);
    if (rs != Status::kOk) return rs;
  }
  return Status::kOk;
}

int device_sm_count(int given) {
  if (given > 0) return given;
  int dev = 0, sms = 0;
  if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess)
    return 0;
  return sms;
}

// What this kernel handles; everything else goes to the binding's dequantize + cuBLAS fallback.
bool supported(const Int4LinearParams& p) {
  if (p.dtype != DType::kF16 && p.dtype != DType::kBF16) return false;
  if (p.m < 0 || p.n <= 0 || p.k <= 0 || p.n % 8 != 0 || p.k % 32 != 0) return false;
  if (p.group_size <= 0 || p.group_size % 32 != 0 || p.k % p.group_size != 0) return false;
  if (p.m > INT32_MAX || p.n > INT32_MAX || p.k > INT32_MAX) return false;
  if (p.x_stride < p.k || p.x_stride % 8 != 0) return false;  // 16-byte rows for cp.async
  if (!aligned(p.x, 16) || !aligned(p.qweight, 16) || !aligned(p.y, 4) || !aligned(p.scales, 2)) return false;
  return true;
}

}  // namespace

// Forced-configuration entry for the benchmark and tests (tile < 0 / splits <= 0: automatic).
Status int4_gemm_with_config(const Int4LinearParams& p, cudaStream_t stream, int tile, int splits) {
  if (!supported(p)) return Status::kUnsupported;
  if (p.m == 0) return Status::kOk;
  Plan pl = make_plan(p.m, p.n, p.k, device_sm_count(p.sm_count), tile, splits);
  if (pl.splits > 1 && (p.workspace == nullptr || p.workspace_bytes < partial_bytes(pl, p.m, p.n) ||
                        !aligned(p.workspace, 16)))
    pl.splits = 1;  // no room for partials: one split is always correct, only slower
  return AWQ_DTYPE_SWITCH(p.dtype, D, [&]() -> Status {
    if constexpr (D == DType::kF32) {
      return Status::kUnsupported;
    } else {
      using T = std::conditional_t<D == DType::kF16, __half, __nv_bfloat16>;
      return AWQ_TILE_SWITCH(pl.tile, T, [&]() -> Status { return launch<Cfg>(p, pl, stream); });
    }
  });
}

// kSm90MinM <= M <= kSm90MaxM on an H100/H200: the wgmma kernel (int4_gemm_sm90.cu); what it
// declines (other GPUs, N % 64, K % 64, misaligned pointers) comes here and, above kMaxM, goes to
// the binding's dequantize + cuBLAS fallback, as does every M > kSm90MaxM.
Status int4_gemm(const Int4LinearParams& p, cudaStream_t stream) {
  if (p.m >= kSm90MinM && p.m <= kSm90MaxM) {
    const Status s = int4_gemm_sm90(p, stream, -1, 0);
    if (s != Status::kUnsupported) return s;
  }
  if (p.m > kMaxM) return Status::kUnsupported;
  return int4_gemm_with_config(p, stream, -1, 0);
}

int64_t int4_gemm_workspace_bytes(int64_t m, int64_t n, int64_t k, int group_size, int sm_count) {
  if (m <= 0 || n <= 0 || k <= 0) return 0;
  // the larger of both paths' needs: the wgmma kernel may still decline (alignment) at run time
  const int64_t sm90 = int4_gemm_sm90_handles(m, n, k, group_size)
                           ? int4_gemm_sm90_workspace_bytes(m, n, k, group_size, sm_count)
                           : 0;
  if (m > kMaxM) return sm90;
  return std::max(sm90, partial_bytes(make_plan(m, n, k, device_sm_count(sm_count), -1, 0), m, n));
}

}  // namespace detail
}  // namespace cuda
}  // namespace awq
