// Hopper (sm_90a) W4A16 GEMM on wgmma: y [M, N] = x [M, K] @ W^T (+ bias), W [N, K] as 4-bit codes
// in the kernel layout (layout.h). Used for kSm90MinM <= M <= kSm90MaxM (int4_gemm.h, 17 .. 4096) on
// compute capability 9.0; int4_gemm.cu dispatches here first and keeps its mma.sync kernel for
// what this one declines and for other GPUs.
//
// ---- "Swap AB": the weights are the register operand ---------------------------------------
// wgmma takes A (64 x 16) from registers and B (16 x n) from shared memory. We compute
//     y^T [N, M] = W [N, K] x^T [K, M]
// so A = a 64-row tile of W, dequantized from the packed codes straight into A-fragment registers
// (the weights never touch shared memory as fp16), and B = x's token tile, copied to shared memory
// as it lies in global memory (K-major) with the 128-byte swizzle. Tokens are the wgmma n
// dimension (n = BT = 64, 128 or 256), so one dequantized fragment feeds BT tokens instead of the
// 16 of an mma.sync tile: dequantization drops from the bottleneck to a few % of issue slots.
//
// ---- A fragment of wgmma m64nNk16 (per warp w of the warpgroup, lane = 4 g + t) ------------
// Same as mma.m16n8k16's A fragment, shifted by 16 w rows:
//   reg 0: row 16w + g,     k 2t, 2t+1        reg 1: row 16w + g + 8, k 2t, 2t+1
//   reg 2: row 16w + g,     k 2t+8, 2t+9      reg 3: row 16w + g + 8, k 2t+8, 2t+9
// For k16 step s of a 64-k block, k 2t..2t+1 lies in packed word 2s of the row (elements 2t, 2t+1)
// and k 2t+8..2t+9 in word 2s+1 (elements 2t, 2t+1). With the nibble order of layout.h, elements
// 2t and 2t+1 of a word are (word >> 4t) & 0x000F000F (low half = lower k, as the fragment wants):
// lane t always takes pair t of each word, one shift, one LOP3 (| magic), HSUB2, HMUL2 per register;
// (magic + q) - (magic + z) is exact and the product rounds once, i.e. rnd_T((q - z) s), bit for
// bit the reference's dequantized weight.
//
// ---- Accumulator (D, m64nBT f32) -------------------------------------------------------------
//   d[4j + e]     = D[16w + g,     8j + 2t + e]  (W row, token)
//   d[4j + 2 + e] = D[16w + g + 8, 8j + 2t + e]
// Epilogue: where y is 16-byte aligned (always through the op) and the tile is stored whole (no fp32
// partials), stmatrix.trans writes the rounded tile to the free stage memory as [token][feature] rows
// and the block copies them to y in 16-byte chunks (store_staged). Otherwise (store_tile) a value is
// swapped with lane ^ 4 (row g ^ 1) so each lane holds two adjacent output features of one token and
// writes 4 bytes: y[token, n], y[token, n + 1]. Both round acc + bias once to T.
//
// ---- Block tile and pipeline -----------------------------------------------------------------
//   block = WGS warpgroups (128 threads each); warpgroup i owns W rows n0 + 64 MI i .. + 64 MI - 1
//   as MI subtiles of 64 rows, each its own wgmma (and accumulators) on the x tile of BT tokens
//   that all warpgroups share. k advances by 64 (kBK) per stage:
//     x stage [BT][64] T   = BT rows of 128 bytes, 16-byte chunk c of row r at c ^ (r % 8)
//                            (wgmma's 128B swizzle, written so by the TMA; 1024-aligned stages)
//     W stage [64 WGS MI][8] int32 = 32 bytes a row, no swizzle (a phase of 8 lanes reads 2 rows)
//   STAGES-deep ring, prefetch distance kQD (below). Per stage thread 0 issues two bulk tensor
//   copies (TMA), x and W, completing on the stage's mbarrier. TMA writes and wgmma reads are both
//   async-proxy accesses, so no proxy fence is needed (the first version filled x with cp.async
//   and needed fence.proxy.async, which compiles to MEMBAR.ALL.CTA; moving x to TMA took M = 1024
//   from 0.54x to 0.65x cuBLAS). W is read back with ld.shared after the mbarrier wait. Both maps
//   promote L2 fills to 256 bytes: W rows are read 32 bytes per stage, 4 KB apart.
//   Two orders of dequantization and wgmma (the configuration's BATCH flag):
//   - step by step: each k16 step's wgmmas (MI of them) form one commit group and, before a
//     step's A registers are rewritten, wgmma.wait_group 3 retires the group of the previous block
//     that read them. At the top of block kb every wgmma of block kb - 2 is done in every
//     warpgroup (after the barrier): its stage may be refilled, kQD = STAGES - 2.
//   - batched: all four steps of a block are dequantized into one of two fragment buffers, then
//     issued as one commit group; wgmma.wait_group 1 before the buffer is rewritten retires block
//     kb - 2. At the top of block kb, block kb - 3 is done everywhere: kQD = STAGES - 3 (even,
//     so the buffer of a block is a compile-time choice in the unrolled loop). The tensor pipe
//     gets four wgmmas back to back and the dequantization of the next block overlaps them; with
//     128- and 256-token tiles this was 2-11 % faster (M = 128: 0.93x -> 1.00x cuBLAS), with
//     64-token tiles slower (the second buffer leaves room for only one block per SM there).
//   Per-row (scale, zero) pairs come from global memory kQD blocks ahead into registers
//   (one set per block in flight; in the G128 form one per aligned pair of blocks, fetched and
//   expanded once for both); a 64-k block spans at most two groups (group_size % 32 == 0),
//   so each lane keeps two pairs for each of its rows g and g + 8 and picks one per k16 step.
//   No rows of x past M are loaded: the TMA's zero fill of such rows made a tile 1.1-1.7x slower
//   (H200, gemm_notes.md Session 8). With M > BT the last token tile is computed as the BT tokens
//   ending at M and stores only its own; with M < BT the one tile's copy is a box of its M rows
//   (x_tail) and the stage rows below keep stale data, which feeds only outputs of tokens past M.
//   Rows of W past N (N % 64 == 0 but not a multiple of the block's rows) arrive as zeros (their
//   scales are read from row N - 1). Outputs past M or N are not stored.
//   Split-K as in int4_gemm.cu: grid.y = splits, fp32 partials [splits, M, N], a reduce kernel.
//   Stream-K (configurations 1, 4, 6, 7 with SK, chosen by make_plan where whole tiles leave much of
//   the last wave idle): one CTA per resident slot. With two or more full waves of tiles, CTA c first
//   runs whole tiles c, c + P, ... of every full wave but the last (sk_dp_tiles; G64 / G128 forms).
//   Then it walks units [U c / P, (c + 1) U / P) of the U = remaining tiles x k-blocks, tile-major.
//   Its first range may end a tile that an earlier CTA started: those
//   sums go to the CTA's fp32 slot in the workspace and a flag is raised (st.release); its last range
//   may start a tile that later CTAs finish: it waits for their flags (ld.acquire), adds their slots
//   in CTA order (deterministic) and stores the tile. Waits point only to higher CTAs, whose first
//   range waits for nothing, and all P CTAs are resident at once. The flags are zeroed by a one-block
//   kernel launched before it (zero_flags_kernel; graph-capturable); the slots need no clearing.
//
// No producer warp, no setmaxnreg, no clusters: thread 0 issues the copies, every warp dequantizes
// and issues wgmma. Where the time goes (H200, ncu, bench/results/gemm_notes.md): the kernel is
// bound by instruction issue and latency, not by memory. At M = 64 (configuration 1, 28672 x 8192)
// a k-block used to cost ~220 instructions per warp for 64 of dequantization: group indices by
// division, four (scale, zero) loads per row with 64-bit address arithmetic, per-step selects
// between two groups. The G64 form (group_size % 64 == 0: one group per block) with a
// multiply-high group index cuts that to ~165 and M = 64 went from 0.87x to 1.12x cuBLAS; DRAM
// still runs at ~1 TB/s, with stalls spread over dependency waits, the per-block barrier and the
// tile wait. Ablations of configuration 1 (gemm_notes.md, Session 7) show the issue bound directly:
// without the 48 LOP3 / HSUB2 / HMUL2 of a block's dequantization (timing only) 28672 x 8192 at one
// split runs 37 % faster, while a second accumulator set (independent wgmma chains) changes nothing.
// So every instruction per block counts: stage and phase as running counters (no division by
// STAGES) and the G128 form's parameters once per block pair took a block from ~142 to ~127
// instructions per warp (4-11 % faster at M = 64, SASS count and H200 timings).
// At M >= 256 (configuration 6) the SM is ~76 % busy; a deeper prefetch (6 stages),
// 4-warpgroup blocks (a third less x traffic per MAC), 128-token tiles, W words read a block
// ahead and a pipeline without the block barrier (per-stage "empty" mbarriers) were all slower or
// equal, so neither L2 bandwidth, load latency nor the barrier is the limit; the batched order
// (above) gained 2-11 %. A producer warpgroup that dequantizes into shared memory for consumers
// issuing wgmma with both operands there (gemm_notes.md, session 13) ran 13-25 % slower: its 16 KB of
// stores and the A reads per block cost more shared-memory bandwidth than the register operand's
// dequantization costs issue slots (without the stores it beat this kernel by 7 %). With the tensor pipe
// ~92 % busy (ncu, M = 1024) and the board at its power cap under sustained load, where this kernel is
// level with cuBLAS at M = 1024 (bench/results/gemm_soak_h200.md), what is left at large M is energy per
// multiply-add.
#include <cuda.h>  // CUtensorMap and its enums only: the encoder is fetched through the runtime, no -lcuda
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <type_traits>

#include "awq/static_switch.h"
#include "int4_gemm.h"
#include "mbarrier.cuh"
#include "split_k.cuh"

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define AWQ_SM90_DEVICE 1
#endif

namespace awq {
namespace cuda {
namespace detail {
namespace {

constexpr int kBK = 64;       // k per stage: one 128-byte swizzle row of x, 8 packed words of W
constexpr int kGroupT = 8;    // token tiles per raster group (L2 reuse of x and W at large M)
constexpr int kMaxSplits = 16;
// Split-K's reduce kernel as a programmatic dependent launch of the GEMM (see launch_splitk_reduce;
// off with AWQ_DISABLE_PDL, see pdl_allowed). H200, 2026-11-22 (gemm_notes.md, session 12): 0.1-0.4 us
// less per split-K call (4096 x 4096 M = 64 12.5-12.6 -> 12.2 us). -DAWQ_SPLITK_PDL=0 for A/B builds.
#ifndef AWQ_SPLITK_PDL
#define AWQ_SPLITK_PDL 1
#endif

struct Sm90Args {
  const void* x;
  const uint32_t* qweight;
  const uint16_t* scales;
  const uint8_t* zeros;
  const void* bias;     // nullable; applied here only when splits == 1
  void* y;
  float* partials;      // [splits, M, N] when splits > 1
  int y_vec;            // y 16-byte aligned: tiles leave through shared memory in 16-byte rows (store_staged)
  int m, n, k;
  int64_t x_stride;
  int group_size, groups;
  uint32_t group_magic;  // ceil(2^32 / group_size): group of k = __umulhi(k, group_magic) for k * group_size < 2^32
  int t_tiles, n_tiles, k_blocks, splits;
  // stream-K (configurations with SK): gridDim.x CTAs share the tiles x k-blocks evenly (below)
  unsigned* sk_flags;   // [gridDim.x], zero at launch: CTA c's partial tile is in sk_slots
  float* sk_slots;      // [gridDim.x][kRows * BT]: one partial tile per CTA
  int sk_dp_tiles;      // stream-K: tiles 0 .. sk_dp_tiles - 1 (a multiple of gridDim.x) run whole first
  int tail_rows;        // M < BT: the one token tile's x comes through x_tail, a box of its M rows; else 0
  int shift_last;       // M > BT, M % BT != 0: the last token tile is computed as the BT tokens ending at M
};

// BT: tokens per block (wgmma n); WGS: warpgroups; MI: 64-row W subtiles per warpgroup (each a
// wgmma of its own on the shared x tile: more W rows per x byte read); STAGES: ring depth.
// GF, the group form: 1 (G64) for group_size % 64 == 0: every 64-k block lies in one group (one
// scale and zero per row and block); 2 (G128) for group_size % 128 == 0: an aligned pair of blocks
// (2j, 2j + 1) shares one group, so the parameters are fetched and expanded once per pair; 0 (the
// generic form) for group sizes 32, 96, ... whose blocks may span two groups.
// BATCH: a block's four k16 steps are dequantized first and issued as one commit group of wgmmas
// (two fragment buffers, prefetch distance STAGES - 3); otherwise dequantization and wgmma
// alternate step by step, one commit group each (one buffer, prefetch distance STAGES - 2).
// SK: stream-K scheduling (one CTA per resident slot walking an even share of all tiles' k-blocks).
template <typename T, int BT, int WGS, int MI, int STAGES, bool BATCH, int GF, bool SK = false>
struct WgCfg {
  using Elem = T;
  static constexpr int kBT = BT, kMi = MI, kStages = STAGES;
  static constexpr bool kBatch = BATCH, kG64 = GF >= 1, kSK = SK;
  static constexpr int kQD = STAGES - (BATCH ? 3 : 2);  // prefetch distance of x, W, group parameters
  // k-blocks per fetch of the group parameters: 2 in the G128 form (an aligned pair of blocks shares
  // one group) where the prefetch distance is even, else 1
  static constexpr int kGPB = (GF == 2 && kQD % 2 == 0) ? 2 : 1;
  static constexpr int kQP = kG64 ? 2 : 4;  // (scale, zero) pairs per lane, W subtile and block
  static constexpr int kThreads = WGS * 128;
  // 64-token tiles of one 64-row subtile per warpgroup keep two blocks per SM: binds configuration 1
  // (<= 128 registers at 256 threads; configuration 0's 128 threads may use 255 anyway)
  static constexpr int kMinBlocks = (BT == 64 && MI == 1) ? 2 : 1;
  static constexpr int kRows = WGS * MI * 64;
  static constexpr int kXStage = BT * kBK * 2;   // bytes
  static constexpr int kWStage = kRows * kBK / 2;
  static constexpr int kSmemBytes = STAGES * (kXStage + kWStage + 8) + 1024;  // + mbarriers, alignment slack
  static_assert(BT == 64 || BT == 128 || BT == 256, "wgmma n of this kernel");
  static_assert(kQD >= 1 && (!BATCH || kQD % 2 == 0), "prefetch distance >= 1, even when batched (buffer parity)");
};

#ifdef AWQ_SM90_DEVICE

template <typename T>
struct Magic;
template <>
struct Magic<__half> {
  static constexpr uint32_t kValue = 0x64006400u;  // 1024.0 in each fp16 half
};
template <>
struct Magic<__nv_bfloat16> {
  static constexpr uint32_t kValue = 0x43004300u;  // 128.0 in each bf16 half
};

template <typename T>
__device__ __forceinline__ uint32_t pack2(float lo, float hi);
template <>
__device__ __forceinline__ uint32_t pack2<__half>(float lo, float hi) {
  const __half2 h = __floats2half2_rn(lo, hi);
  return reinterpret_cast<const uint32_t&>(h);
}
template <>
__device__ __forceinline__ uint32_t pack2<__nv_bfloat16>(float lo, float hi) {
  const __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
  return reinterpret_cast<const uint32_t&>(h);
}

template <typename T>
__device__ __forceinline__ float load_float(const void* p, int i) {
  const uint16_t u = static_cast<const uint16_t*>(p)[i];
  if constexpr (std::is_same_v<T, __half>) return __half2float(__ushort_as_half(u));
  else return __bfloat162float(__ushort_as_bfloat16(u));
}

// Pair t of word w, dequantized: ((w >> 4t) & 0x000F000F | magic - (magic | z)) * s, per half.
template <typename T>
__device__ __forceinline__ uint32_t dequant_pair(uint32_t w_shifted, uint32_t magic_z, uint32_t s2) {
  uint32_t q;
  asm("lop3.b32 %0, %1, %2, %3, 0xea;" : "=r"(q) : "r"(w_shifted), "n"(0x000F000Fu), "n"(Magic<T>::kValue));
  if constexpr (std::is_same_v<T, __half>) {
    const __half2 d = __hmul2(__hsub2(reinterpret_cast<const __half2&>(q), reinterpret_cast<const __half2&>(magic_z)),
                              reinterpret_cast<const __half2&>(s2));
    return reinterpret_cast<const uint32_t&>(d);
  } else {
    const __nv_bfloat162 d = __hmul2(__hsub2(reinterpret_cast<const __nv_bfloat162&>(q),
                                             reinterpret_cast<const __nv_bfloat162&>(magic_z)),
                                     reinterpret_cast<const __nv_bfloat162&>(s2));
    return reinterpret_cast<const uint32_t&>(d);
  }
}


// mbarrier (mbarrier.cuh) + bulk tensor copy (TMA): x tiles arrive through the async proxy, the proxy
// wgmma reads them with, so no proxy fence is needed between the copy and the wgmma.
// One box of a 2-D tensor map at (inner c0, outer c1); elements past the tensor arrive as zeros (x's
// copies never reach past M: see the tile notes at the top).
__device__ __forceinline__ void tma_load_2d(uint32_t dst, const CUtensorMap* map, int c0, int c1, uint32_t bar) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\n" ::"r"(dst),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(bar)
      : "memory");
}

__device__ __forceinline__ uint4 lds128(uint32_t addr) {
  uint4 v;
  asm volatile("ld.shared.v4.u32 {%0,%1,%2,%3}, [%4];\n" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "r"(addr));
  return v;
}

// Four 8 x 8 b16 matrices from the mma accumulator layout, each stored transposed: lane l names the
// shared-memory row (16 bytes) of row l % 8 of matrix l / 8.
__device__ __forceinline__ void stmatrix_x4_trans(uint32_t addr, uint32_t r0, uint32_t r1, uint32_t r2, uint32_t r3) {
  asm volatile("stmatrix.sync.aligned.m8n8.x4.trans.shared.b16 [%0], {%1, %2, %3, %4};\n" ::"r"(addr), "r"(r0), "r"(r1),
               "r"(r2), "r"(r3)
               : "memory");
}

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wgmma_wait() { asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory"); }

// Shared-memory matrix descriptor of a K-major tile with the 128-byte swizzle: start address >> 4
// (bits 0-13), leading byte offset (unused for this layout, 1), stride byte offset 1024 >> 4
// (8 rows of 128 bytes between core-matrix groups, bits 32-45), layout 1 = 128B swizzle (bits 62-63).
// The k16 step s of a 64-k stage starts 32 s bytes into the row: +2 s on the encoded address (the
// hardware applies the XOR swizzle to the full address, hence 1024-aligned stage bases).
__device__ __forceinline__ uint64_t sw128_desc(uint32_t smem_addr) {
  return uint64_t((smem_addr >> 4) & 0x3fff) | (uint64_t(1) << 16) | (uint64_t(1024 >> 4) << 32) |
         (uint64_t(1) << 62);
}

// wgmma.mma_async m64nNk16, A from registers, B K-major from shared memory, D += A B (fp32).
#define AWQ_F4(i) "+f"(d[i]), "+f"(d[i + 1]), "+f"(d[i + 2]), "+f"(d[i + 3])
#define AWQ_F16(i) AWQ_F4(i), AWQ_F4(i + 4), AWQ_F4(i + 8), AWQ_F4(i + 12)
#define AWQ_F64(i) AWQ_F16(i), AWQ_F16(i + 16)
#define AWQ_F128(i) AWQ_F64(i), AWQ_F64(i + 32)
#define AWQ_F256(i) AWQ_F128(i), AWQ_F128(i + 64)
#define AWQ_WG_D64 "{" \
  "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, " \
  "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31 " "}"
#define AWQ_WG_REST64 ", {%32, %33, %34, %35}, %36, p, 1, 1, 0;\n"
#define AWQ_WG_PRED64 "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
#define AWQ_WG_D128 "{" \
  "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, " \
  "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, " \
  "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, " \
  "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63 " "}"
#define AWQ_WG_REST128 ", {%64, %65, %66, %67}, %68, p, 1, 1, 0;\n"
#define AWQ_WG_PRED128 "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
#define AWQ_WG_D256 "{" \
  "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, " \
  "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, " \
  "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, " \
  "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, " \
  "%64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, " \
  "%80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, " \
  "%96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, " \
  "%112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127 " "}"
#define AWQ_WG_REST256 ", {%128, %129, %130, %131}, %132, p, 1, 1, 0;\n"
#define AWQ_WG_PRED256 "{\n.reg .pred p;\nsetp.ne.b32 p, %133, 0;\n"

template <int N, typename T>
struct Wgmma;
#define AWQ_WGMMA_DEF(N, TY, CT)                                                                     \
  template <>                                                                                        \
  struct Wgmma<N, CT> {                                                                              \
    static __device__ __forceinline__ void run(float (&d)[N / 2], const uint32_t (&a)[4], uint64_t desc) { \
      asm volatile(AWQ_WG_PRED##N "wgmma.mma_async.sync.aligned.m64n" #N "k16.f32." TY "." TY " "   \
                   AWQ_WG_D##N AWQ_WG_REST##N "}\n"                                                  \
                   : AWQ_F##N(0)                                                                     \
                   : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc), "r"(1));                 \
    }                                                                                                \
  };
AWQ_WGMMA_DEF(64, "f16", __half)
AWQ_WGMMA_DEF(128, "f16", __half)
AWQ_WGMMA_DEF(256, "f16", __half)
AWQ_WGMMA_DEF(64, "bf16", __nv_bfloat16)
AWQ_WGMMA_DEF(128, "bf16", __nv_bfloat16)
AWQ_WGMMA_DEF(256, "bf16", __nv_bfloat16)
#undef AWQ_WGMMA_DEF

#endif  // AWQ_SM90_DEVICE

template <typename Cfg>
__global__ void __launch_bounds__(Cfg::kThreads, Cfg::kMinBlocks) int4_gemm_wgmma_kernel(const __grid_constant__ CUtensorMap x_map,
                                                                        const __grid_constant__ CUtensorMap x_tail,
                                                                        const __grid_constant__ CUtensorMap w_map,
                                                                        const Sm90Args a) {
#ifdef AWQ_SM90_DEVICE
  using T = typename Cfg::Elem;
  constexpr int BT = Cfg::kBT, STAGES = Cfg::kStages, kRows = Cfg::kRows, MI = Cfg::kMi;
  constexpr int kQD = Cfg::kQD;  // prefetch distance of everything: x, W, group parameters
  constexpr int kBufs = Cfg::kBatch ? 2 : 1;

  extern __shared__ uint8_t smem_raw[];
  const uint32_t smem0 = (static_cast<uint32_t>(__cvta_generic_to_shared(smem_raw)) + 1023u) & ~1023u;
  const uint32_t sx = smem0;                          // STAGES x [BT][128 B], swizzled
  const uint32_t sw = smem0 + STAGES * Cfg::kXStage;  // STAGES x [kRows][32 B]
  const uint32_t bars = sw + STAGES * Cfg::kWStage;   // STAGES mbarriers: stage landed

  // ---- which tile: kGroupT consecutive token tiles share a sweep over the W tiles ----
  // m0: the first token row a tile loads and computes, its first token except for a last token tile
  // that runs past M (M > BT): that one covers the BT tokens ending at M, so its x copy has no rows
  // past M to zero-fill, and stores only its own tokens, from first_token(m0) on.
  auto tile_origin = [&](int bid, int& m0, int& n0) {
    const int per_group = kGroupT * a.n_tiles;
    const int first_t = (bid / per_group) * kGroupT;
    const int group_tiles = min(a.t_tiles - first_t, kGroupT);
    const int in_group = bid % per_group;
    m0 = (first_t + in_group % group_tiles) * BT;
    if (a.shift_last && m0 + BT > a.m) m0 = a.m - BT;
    n0 = (in_group / group_tiles) * kRows;
  };
  // (with shift_last, M % BT != 0, so m0 + BT == M only for the shifted tile)
  auto first_token = [&](int m0) { return a.shift_last && m0 + BT == a.m ? (a.m / BT) * BT : m0; };

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int wg = warp >> 2, wq = warp & 3;
  // split-K: the reduce kernel is launched as our programmatic dependent; let it be scheduled now
  // (it waits for this grid's completion before reading the partials)
  if (AWQ_SPLITK_PDL && a.splits > 1) asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
  const int g = lane >> 2, t = lane & 3;

  // ---- loads: per stage one TMA of x and one of W (thread 0), completing on the stage's mbarrier ----
  if (tid == 0) {
#pragma unroll
    for (int s = 0; s < STAGES; ++s) mbar_init(bars + 8 * s, 1);
    mbar_init_fence();
  }
  __syncthreads();

  // One tile's k-blocks [kb_begin, kb_end) into acc. it_base counts the k-blocks this CTA ran before
  // (stream-K runs several ranges): the i-th block of the range uses stage (it_base + i) % STAGES and
  // that stage's mbarrier phase of the same count, kept as running counters (no division per block).
  float acc[MI][BT / 2];
  auto run_range = [&](const int m0, const int n0, const int kb_begin, const int kb_end, const int it_base) {
  // M < BT: the one token tile loads only its a.tail_rows = M rows (x_tail's box); the rows below keep
  // whatever the stage held, which feeds only the token columns past M, never stored. (Larger M shift
  // their last tile instead: tile_origin.) Zero-filled rows past M were measured 1.1-1.7x slower.
  const bool tail = a.tail_rows != 0;
  auto load_stage = [&](int kb, int stage) {
    if (tid == 0) {
      const uint32_t bar = bars + 8 * stage;
      mbar_expect_tx(bar, (tail ? a.tail_rows * kBK * 2 : Cfg::kXStage) + Cfg::kWStage);
      tma_load_2d(sx + stage * Cfg::kXStage, tail ? &x_tail : &x_map, kb * kBK, m0, bar);
      tma_load_2d(sw + stage * Cfg::kWStage, &w_map, kb * (kBK / 8), n0, bar);
    }
  };

  // ---- per-lane group parameters of rows lrow(mi) = 64 (MI wg + mi) + 16 wq + g and lrow + 8 ----
  // Rows past N read row N - 1's parameters (their outputs are not stored). Element offsets fit in
  // 32 bits (N * groups < 2^31, checked on the host).
  constexpr int QP = Cfg::kQP;
  uint32_t q_row0[MI], q_row1[MI];
#pragma unroll
  for (int mi = 0; mi < MI; ++mi) {
    const int lrow = 64 * (MI * wg + mi) + 16 * wq + g;
    q_row0[mi] = uint32_t(min(n0 + lrow, a.n - 1)) * uint32_t(a.groups);
    q_row1[mi] = uint32_t(min(n0 + lrow + 8, a.n - 1)) * uint32_t(a.groups);
  }
  // rs[u], rz[u]: scale bits and zero of {row0, row1} (x {first group, second group} unless G64) x
  // mi of a block; kQD sets in flight (block kb uses set (kb - kb_begin) % kQD), so the loads have
  // as long to land as the tiles do. The loaded values stay untouched until their block (any
  // arithmetic on them at fetch time stalls the warp on the load), and they are loaded
  // unconditionally (clamped block index) in a main loop without conditions, so the compiler needs
  // no copies of them. Group indices come from one multiply-high (group_magic), not a division.
  constexpr int GPB = Cfg::kGPB, kSets = kQD / GPB;
  static_assert(kQD % GPB == 0, "whole parameter sets in flight");
  uint32_t rs[kSets][MI][QP], rz[kSets][MI][QP];
  auto fetch_qparams = [&](int kb, uint32_t(&sr)[MI][QP], uint32_t(&zr)[MI][QP]) {
    const uint32_t k0 = uint32_t(kb) * kBK;
    const uint32_t ga = __umulhi(k0, a.group_magic);
#pragma unroll
    for (int mi = 0; mi < MI; ++mi) {
      sr[mi][0] = __ldg(a.scales + (q_row0[mi] + ga));
      sr[mi][1] = __ldg(a.scales + (q_row1[mi] + ga));
      zr[mi][0] = __ldg(a.zeros + (q_row0[mi] + ga));
      zr[mi][1] = __ldg(a.zeros + (q_row1[mi] + ga));
      if constexpr (!Cfg::kG64) {
        const uint32_t gb = __umulhi(k0 + (kBK - 16), a.group_magic);
        sr[mi][2] = __ldg(a.scales + (q_row0[mi] + gb));
        sr[mi][3] = __ldg(a.scales + (q_row1[mi] + gb));
        zr[mi][2] = __ldg(a.zeros + (q_row0[mi] + gb));
        zr[mi][3] = __ldg(a.zeros + (q_row1[mi] + gb));
      }
    }
  };

#pragma unroll
  for (int mi = 0; mi < MI; ++mi)
#pragma unroll
    for (int i = 0; i < BT / 2; ++i) acc[mi][i] = 0.f;
  uint32_t afr[kBufs][MI][4][4];

  // ---- pipeline prologue: blocks kb_begin .. kb_begin + kQD - 1 ----
#pragma unroll
  for (int s = 0; s < kQD; ++s)
    if (kb_begin + s < kb_end) load_stage(kb_begin + s, (it_base + s) % STAGES);
  // G128: a range that starts on an odd block runs that block alone first (below), so the parameter
  // sets belong to the aligned pairs from kb_first on
  const int kb_first = GPB == 2 ? kb_begin + (kb_begin & 1) : kb_begin;
#pragma unroll
  for (int u = 0; u < kSets; ++u) fetch_qparams(min(kb_first + GPB * u, kb_end - 1), rs[u], rz[u]);

  const uint32_t shift = 4u * uint32_t(t);
  int st_cur = it_base % STAGES, st_ld = (it_base + kQD) % STAGES;  // stages of blocks kb and kb + kQD
  uint32_t ph_cur = uint32_t(it_base / STAGES) & 1u;                // phase of block kb's stage
  // The current block's group parameters, expanded: scale bits and magic + zero in both halves.
  uint32_t s2[MI][QP], z2[MI][QP];
  auto expand = [&](const uint32_t(&sr)[MI][QP], const uint32_t(&zr)[MI][QP]) {
#pragma unroll
    for (int mi = 0; mi < MI; ++mi)
#pragma unroll
      for (int i = 0; i < QP; ++i) {
        s2[mi][i] = sr[mi][i] * 0x10001u;
        z2[mi][i] = Magic<T>::kValue | (zr[mi][i] * 0x10001u);
      }
  };
  // expand a set, then refill it with the parameters of the block kQD further on (its loads have as
  // long to land as the tiles do)
  auto take = [&](int kb, uint32_t(&sr)[MI][QP], uint32_t(&zr)[MI][QP]) {
    expand(sr, zr);
    fetch_qparams(min(kb + kQD, kb_end - 1), sr, zr);
  };
  // A block in two parts: block_wait (its tiles landed, every warpgroup past block kb - 2, the refill of
  // block kb + kQD) and block_math. The G64 / G128 forms take their parameter set before block_wait;
  // the generic form between the two (as before the G128 form existed: taken ahead of the wait, its
  // registers spill under the two-block bound).
  int stage = 0;  // the stage of the block in flight, set by block_wait
  auto block_wait = [&](int kb) {
    stage = st_cur;
    mbar_wait(bars + 8 * stage, ph_cur);  // x and W of block kb landed
    __syncthreads();  // every wgmma of block kb - 2 retired in every warpgroup (see header)
    if (kb + kQD < kb_end) load_stage(kb + kQD, st_ld);
    if (++st_cur == STAGES) {
      st_cur = 0;
      ph_cur ^= 1u;
    }
    if (++st_ld == STAGES) st_ld = 0;
  };
  auto block_math = [&](int kb, uint32_t(&af)[MI][4][4]) {
    // k16 steps s >= first_b belong to the block's second group (G64: there is none)
    int first_b = 4;
    if constexpr (!Cfg::kG64) {
      const uint32_t k0 = uint32_t(kb) * kBK;
      first_b = int(((__umulhi(k0, a.group_magic) + 1) * uint32_t(a.group_size) - k0 + 15) >> 4);
    }

    uint4 lo0[MI], hi0[MI], lo1[MI], hi1[MI];
#pragma unroll
    for (int mi = 0; mi < MI; ++mi) {
      const uint32_t wbase = sw + stage * Cfg::kWStage + (64 * (MI * wg + mi) + 16 * wq + g) * 32;
      lo0[mi] = lds128(wbase);
      hi0[mi] = lds128(wbase + 16);
      lo1[mi] = lds128(wbase + 8 * 32);
      hi1[mi] = lds128(wbase + 8 * 32 + 16);
    }
    const uint64_t desc0 = sw128_desc(sx + stage * Cfg::kXStage);
    auto dequant_step = [&](int s) {
      const bool second = !Cfg::kG64 && s >= first_b;
#pragma unroll
      for (int mi = 0; mi < MI; ++mi) {
        const uint32_t sa = second ? s2[mi][QP - 2] : s2[mi][0], za = second ? z2[mi][QP - 2] : z2[mi][0];
        const uint32_t sb = second ? s2[mi][QP - 1] : s2[mi][1], zb = second ? z2[mi][QP - 1] : z2[mi][1];
        const uint4 l0 = lo0[mi], h0 = hi0[mi], l1 = lo1[mi], h1 = hi1[mi];
        const uint32_t w00 = s == 0 ? l0.x : s == 1 ? l0.z : s == 2 ? h0.x : h0.z;  // row g, word 2s
        const uint32_t w01 = s == 0 ? l0.y : s == 1 ? l0.w : s == 2 ? h0.y : h0.w;  // row g, word 2s+1
        const uint32_t w10 = s == 0 ? l1.x : s == 1 ? l1.z : s == 2 ? h1.x : h1.z;  // row g+8
        const uint32_t w11 = s == 0 ? l1.y : s == 1 ? l1.w : s == 2 ? h1.y : h1.w;
        af[mi][s][0] = dequant_pair<T>(w00 >> shift, za, sa);
        af[mi][s][1] = dequant_pair<T>(w10 >> shift, zb, sb);
        af[mi][s][2] = dequant_pair<T>(w01 >> shift, za, sa);
        af[mi][s][3] = dequant_pair<T>(w11 >> shift, zb, sb);
      }
    };
    if constexpr (Cfg::kBatch) {
      wgmma_wait<1>();  // block kb - 2's wgmmas, which read this buffer, have retired
#pragma unroll
      for (int s = 0; s < 4; ++s) dequant_step(s);
      wgmma_fence();
#pragma unroll
      for (int s = 0; s < 4; ++s)
#pragma unroll
        for (int mi = 0; mi < MI; ++mi) Wgmma<BT, T>::run(acc[mi], af[mi][s], desc0 + 2 * s);
      wgmma_commit();
    } else {
#pragma unroll
      for (int s = 0; s < 4; ++s) {
        wgmma_wait<3>();  // the wgmmas of the previous block that read af[.][s] have retired
        dequant_step(s);
        wgmma_fence();
#pragma unroll
        for (int mi = 0; mi < MI; ++mi) Wgmma<BT, T>::run(acc[mi], af[mi][s], desc0 + 2 * s);
        wgmma_commit();
      }
    }
  };
  int kb = kb_begin;
  if constexpr (GPB == 2) {
    if (kb & 1) {  // the odd first block alone, its parameters loaded now (the other fragment buffer
      uint32_t sr[MI][QP], zr[MI][QP];  // when batched: the next block takes buffer 0)
      fetch_qparams(kb, sr, zr);
      expand(sr, zr);
      block_wait(kb);
      block_math(kb, afr[1 % kBufs]);
      ++kb;
    }
  }
  // block kb + u of a round (u a compile-time constant after unrolling) with its parameter set
  auto step_u = [&](const int u) {
    if constexpr (Cfg::kG64) {
      if (u % GPB == 0) take(kb + u, rs[u / GPB], rz[u / GPB]);
      block_wait(kb + u);
    } else {
      block_wait(kb + u);
      take(kb + u, rs[u], rz[u]);
    }
    block_math(kb + u, afr[u % kBufs]);
  };
  // whole rounds of kQD blocks without conditions, then the rest
  for (; kb + kQD <= kb_end; kb += kQD) {
#pragma unroll
    for (int u = 0; u < kQD; ++u) step_u(u);
  }
#pragma unroll
  for (int u = 0; u < kQD - 1; ++u)
    if (kb + u < kb_end) step_u(u);
  wgmma_wait<0>();
  };

  // ---- epilogue: lanes g, g ^ 1 swap so each writes two adjacent features of one token ----
  // part == nullptr: y (+ bias), else the fp32 partial plane part [M, N]
  auto store_tile = [&](const int m0, const int n0, float* part) {
  const int m_lo = first_token(m0);
  const bool odd = (g & 1) != 0;
  T* y = static_cast<T*>(a.y);
#pragma unroll
  for (int mi = 0; mi < MI; ++mi)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      // even feature of the pair this lane writes
      const int n = n0 + 64 * (MI * wg + mi) + 16 * wq + g - (g & 1) + 8 * h;
      float b0 = 0.f, b1 = 0.f;
      if (part == nullptr && a.bias != nullptr && n < a.n) {
        b0 = load_float<T>(a.bias, n);
        b1 = load_float<T>(a.bias, n + 1);
      }
#pragma unroll
      for (int j = 0; j < BT / 8; ++j) {
        const float v0 = acc[mi][4 * j + 2 * h], v1 = acc[mi][4 * j + 2 * h + 1];
        const float recv = __shfl_xor_sync(0xffffffffu, odd ? v0 : v1, 4);
        const int tok = m0 + 8 * j + 2 * t + (odd ? 1 : 0);
        if (tok >= m_lo && tok < a.m && n < a.n) {
          const float lo = odd ? recv : v0, hi = odd ? v1 : recv;
          if (part == nullptr)
            *reinterpret_cast<uint32_t*>(y + int64_t(tok) * a.n + n) = pack2<T>(lo + b0, hi + b1);
          else
            *reinterpret_cast<float2*>(part + int64_t(tok) * a.n + n) = make_float2(lo, hi);
        }
      }
    }
  };

  // ---- epilogue through shared memory (y 16-byte aligned): stmatrix.trans puts the tile in the stage
  // memory as [token][feature] rows (kPitch bytes: 16 of padding keep the eight rows of an 8 x 8 matrix
  // on distinct banks), then each thread copies 16-byte chunks of token rows to y: whole 128-byte
  // lines instead of the 8 half-used sectors of each direct 4-byte store (~4 us per 256 x 128 tile
  // measured with the direct stores). Same rounding as store_tile: one rnd_T(acc + bias) per element.
  constexpr int kPitch = kRows * 2 + 16;
  static_assert(BT * kPitch <= STAGES * (Cfg::kXStage + Cfg::kWStage), "the staged tile fits the stage memory");
  auto store_staged = [&](const int m0, const int n0) {
    __syncthreads();  // every warpgroup's wgmmas (which read the stages) have retired
#pragma unroll
    for (int mi = 0; mi < MI; ++mi) {
      const int fbase = 64 * (MI * wg + mi) + 16 * wq;
      float b_lo = 0.f, b_hi = 0.f;  // bias of features fbase + g and fbase + g + 8
      if (a.bias != nullptr) {
        if (n0 + fbase + g < a.n) b_lo = load_float<T>(a.bias, n0 + fbase + g);
        if (n0 + fbase + g + 8 < a.n) b_hi = load_float<T>(a.bias, n0 + fbase + g + 8);
      }
      const int mat = lane >> 3;
      const uint32_t row_addr = smem0 + uint32_t(8 * (mat >> 1) + (lane & 7)) * kPitch + uint32_t(fbase + 8 * (mat & 1)) * 2;
#pragma unroll
      for (int jj = 0; jj < BT / 16; ++jj) {
        const float* d0 = &acc[mi][8 * jj];      // tokens 16 jj + 2t, +1 (chunk j0 = 2 jj)
        const float* d1 = &acc[mi][8 * jj + 4];  // chunk j1 = 2 jj + 1
        stmatrix_x4_trans(row_addr + uint32_t(16 * jj) * kPitch, pack2<T>(d0[0] + b_lo, d0[1] + b_lo),
                          pack2<T>(d0[2] + b_hi, d0[3] + b_hi), pack2<T>(d1[0] + b_lo, d1[1] + b_lo),
                          pack2<T>(d1[2] + b_hi, d1[3] + b_hi));
      }
    }
    __syncthreads();
    const int m_lo = first_token(m0);
    constexpr int kChunks = kRows / 8;  // 16-byte chunks per token row
    T* y = static_cast<T*>(a.y);
#pragma unroll 4
    for (int idx = tid; idx < BT * kChunks; idx += Cfg::kThreads) {
      const int tok = idx / kChunks, ch = idx % kChunks;
      const int gt = m0 + tok, gn = n0 + 8 * ch;
      if (gt >= m_lo && gt < a.m && gn < a.n)
        *reinterpret_cast<uint4*>(y + int64_t(gt) * a.n + gn) = lds128(smem0 + uint32_t(tok) * kPitch + uint32_t(ch) * 16);
    }
    // the stage memory is refilled by bulk copies (async proxy) in a following range
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
  };

  if constexpr (!Cfg::kSK) {
    // one tile (blockIdx.x) and one K split (blockIdx.y) per block
    int m0, n0;
    tile_origin(blockIdx.x, m0, n0);
    const int split = blockIdx.y;
    const int kb_begin = int(int64_t(split) * a.k_blocks / a.splits);
    const int kb_end = int(int64_t(split + 1) * a.k_blocks / a.splits);  // > kb_begin: splits <= k_blocks
    run_range(m0, n0, kb_begin, kb_end, 0);
    if (a.splits == 1 && a.y_vec)
      store_staged(m0, n0);
    else
      store_tile(m0, n0, a.splits == 1 ? nullptr : a.partials + int64_t(split) * a.m * a.n);
  } else {
    // ---- stream-K: after its whole tiles (below), CTA c walks units [U c / P, U (c + 1) / P) of the
    // U = (tiles - sk_dp_tiles) x k_blocks units of the tiles from sk_dp_tiles on, tile-major, as
    // ranges within tiles. A range that ends a tile but does not start it (always the
    // CTA's first) leaves its sums in the CTA's slot and raises its flag; the range that starts the
    // tile (the CTA's last, when it does not end the tile) waits for the flags of the following CTAs,
    // adds their slots in CTA order (deterministic) and stores the tile. Whole tiles store directly.
    // A CTA waits only for higher-numbered CTAs, whose whole tiles and first range need no waiting:
    // with one CTA per resident slot they all run at once.
    const int P = int(gridDim.x), c = int(blockIdx.x), KB = a.k_blocks;
    int it_base = 0;
    // Data-parallel waves first (hybrid stream-K): CTA c runs whole tiles c, c + P, ... below
    // sk_dp_tiles, stored directly; only the tiles after them are shared out as k-block units, so the
    // partial-tile fixups fall on the last wave or two instead of on every CTA's whole share. Only in
    // the G64 / G128 forms (measured there; in the generic form's stream-K instances the extra loop
    // made configurations 1 and 7 spill), whose launch passes sk_dp_tiles = 0 otherwise.
    if constexpr (Cfg::kG64) {
      for (int t = c; t < a.sk_dp_tiles; t += P) {
        int m0, n0;
        tile_origin(t, m0, n0);
        run_range(m0, n0, 0, KB, it_base);
        it_base += KB;
        if (a.y_vec)
          store_staged(m0, n0);
        else
          store_tile(m0, n0, nullptr);
        __syncthreads();  // every warpgroup is past this tile before the next range refills the stages
      }
    }
    const int64_t U = (int64_t(a.t_tiles) * a.n_tiles - a.sk_dp_tiles) * KB;
    auto unit0 = [&](int cta) { return U * cta / P; };
    constexpr int kAcc = MI * (BT / 2);
    int64_t u = unit0(c);
    const int64_t u_end = unit0(c + 1);
    while (u < u_end) {
      const int tile = a.sk_dp_tiles + int(u / KB), lo = int(u % KB);
      const int hi = int(lo + (u_end - u) < KB ? lo + (u_end - u) : KB);
      int m0, n0;
      tile_origin(tile, m0, n0);
      run_range(m0, n0, lo, hi, it_base);
      it_base += hi - lo;
      if (lo > 0) {
        // a later part of the tile: sums to this CTA's slot, then the flag (release)
        // 16-byte stores, quad q of the thread's sums at slot4[q * threads + tid]; the barrier orders every
        // thread's stores before thread 0's fence and release (cumulative at gpu scope)
        float4* slot4 = reinterpret_cast<float4*>(a.sk_slots + int64_t(c) * (kRows * BT));
#pragma unroll
        for (int mi = 0; mi < MI; ++mi)
#pragma unroll
          for (int i = 0; i < BT / 8; ++i)
            __stcg(slot4 + (mi * (BT / 8) + i) * Cfg::kThreads + tid,
                   make_float4(acc[mi][4 * i], acc[mi][4 * i + 1], acc[mi][4 * i + 2], acc[mi][4 * i + 3]));
        __syncthreads();
        if (tid == 0) {
          __threadfence();
          asm volatile("st.release.gpu.global.u32 [%0], %1;\n" ::"l"(a.sk_flags + c), "r"(1u) : "memory");
        }
      } else {
        // the tile's first part: add the parts of CTAs c + 1, ... until the tile is complete
        int covered = hi;
        for (int j = c + 1; covered < KB; ++j) {
          const int64_t part_len = unit0(j + 1) - unit0(j);
          const int len = int(part_len < KB - covered ? part_len : KB - covered);
          if (len == 0) continue;  // an empty CTA (more CTAs than units) has no part
          if (tid == 0) {
            unsigned f = 0;
            do {
              asm volatile("ld.acquire.gpu.global.u32 %0, [%1];\n" : "=r"(f) : "l"(a.sk_flags + j) : "memory");
            } while (f == 0);
          }
          __syncthreads();
          const float4* slot4 = reinterpret_cast<const float4*>(a.sk_slots + int64_t(j) * (kRows * BT));
#pragma unroll
          for (int mi = 0; mi < MI; ++mi)
#pragma unroll
            for (int i = 0; i < BT / 8; ++i) {
              const float4 v = __ldcg(slot4 + (mi * (BT / 8) + i) * Cfg::kThreads + tid);
              acc[mi][4 * i] += v.x;
              acc[mi][4 * i + 1] += v.y;
              acc[mi][4 * i + 2] += v.z;
              acc[mi][4 * i + 3] += v.w;
            }
          covered += len;
        }
        if (a.y_vec)
          store_staged(m0, n0);
        else
          store_tile(m0, n0, nullptr);
      }
      u += hi - lo;
      __syncthreads();  // every warpgroup is past this range before the next one refills the stages
    }
    static_assert(kAcc * Cfg::kThreads == kRows * BT, "one slot holds one tile's sums");
  }
#else
  // other targets (sm_80, compute_80 PTX) compile an empty body; the host never launches it there
  static_assert(Cfg::kMi > 0 && Cfg::kStages > 0 && kGroupT > 0, "configuration");
#endif  // AWQ_SM90_DEVICE
}


// ---- instantiated configurations ----------------------------------------------------------------
//   id   BT   W rows = WGS x MI x 64   stages  order          smem
//   0     64    64 = 1 x 1 x 64          6     step by step    61 KB
//   1     64   128 = 2 x 1 x 64          6     step by step    73 KB   M <= 64
//   2     64   256 = 2 x 2 x 64          6     step by step    97 KB
//   3    128    64 = 1 x 1 x 64          5     step by step    91 KB
//   4    128   128 = 2 x 1 x 64          7     batched        141 KB   128 < M <= 512 where plan_cost prefers it
//   5    128   256 = 2 x 2 x 64          4     step by step    97 KB   (232-255 registers)
//   6    256   128 = 2 x 1 x 64          5     batched        181 KB   128 < M <= kSm90MaxM (<= 512: where plan_cost prefers it)
//   7    128   128 = 2 x 1 x 64          9     batched        181 KB   64 < M <= 128
// Tried and dropped (H200 tuning tables, bench/results/gemm_notes.md): 256 x 128 with 6 stages
// (prefetch distance 4: ties configuration 6), 64 x 256 with 10 stages, and 4-warpgroup blocks
// (512 threads; 128 x 256 and 64 x 256): slower than 6, resp. 1, at every M.
// (128 x 256 with 5 stages spills: 255 registers are the limit of MI = 2 at BT = 128.)
// Each for fp16 and bf16 and for the three group forms (G128, G64, generic). default_cfg picks by M
// (measured choices, bench/results/gemm_notes.md); the others stay for the benchmark's tuning.
constexpr int kNumWgCfgs = 8;
struct WgShape {
  int bt, rows;
};
WgShape wg_shape(int cfg) {
  switch (cfg) {
    case 0: return {64, 64};
    case 1: return {64, 128};
    case 2: return {64, 256};
    case 3: return {128, 64};
    case 4: case 7: return {128, 128};
    case 5: return {128, 256};
    default: return {256, 128};
  }
}

// The configurations as types (SK: the stream-K form of 1, 4, 6, 7), used by both switches below.
template <typename T, int GF> using WgCfg0 = WgCfg<T, 64, 1, 1, 6, false, GF>;
template <typename T, int GF, bool SK = false> using WgCfg1 = WgCfg<T, 64, 2, 1, 6, false, GF, SK>;
template <typename T, int GF> using WgCfg2 = WgCfg<T, 64, 2, 2, 6, false, GF>;
template <typename T, int GF> using WgCfg3 = WgCfg<T, 128, 1, 1, 5, false, GF>;
template <typename T, int GF, bool SK = false> using WgCfg4 = WgCfg<T, 128, 2, 1, 7, true, GF, SK>;
template <typename T, int GF> using WgCfg5 = WgCfg<T, 128, 2, 2, 4, false, GF>;
template <typename T, int GF, bool SK = false> using WgCfg6 = WgCfg<T, 256, 2, 1, 5, true, GF, SK>;
template <typename T, int GF, bool SK = false> using WgCfg7 = WgCfg<T, 128, 2, 1, 9, true, GF, SK>;

#define AWQ_WG_CFG_SWITCH(CFG, T, GF, ...)                                    \
  [&]() -> ::awq::Status {                                                     \
    switch (CFG) {                                                             \
      case 0: { using Cfg = WgCfg0<T, GF>; return __VA_ARGS__(); }            \
      case 1: { using Cfg = WgCfg1<T, GF>; return __VA_ARGS__(); }            \
      case 2: { using Cfg = WgCfg2<T, GF>; return __VA_ARGS__(); }            \
      case 3: { using Cfg = WgCfg3<T, GF>; return __VA_ARGS__(); }            \
      case 4: { using Cfg = WgCfg4<T, GF>; return __VA_ARGS__(); }            \
      case 5: { using Cfg = WgCfg5<T, GF>; return __VA_ARGS__(); }            \
      case 6: { using Cfg = WgCfg6<T, GF>; return __VA_ARGS__(); }            \
      case 7: { using Cfg = WgCfg7<T, GF>; return __VA_ARGS__(); }            \
      default: break;                                                          \
    }                                                                          \
    return ::awq::Status::kUnsupported;                                        \
  }()

// The stream-K forms of configurations 1, 4, 6 and 7.
#define AWQ_WG_SK_SWITCH(CFG, T, GF, ...)                                     \
  [&]() -> ::awq::Status {                                                     \
    switch (CFG) {                                                             \
      case 1: { using Cfg = WgCfg1<T, GF, true>; return __VA_ARGS__(); }      \
      case 4: { using Cfg = WgCfg4<T, GF, true>; return __VA_ARGS__(); }      \
      case 6: { using Cfg = WgCfg6<T, GF, true>; return __VA_ARGS__(); }      \
      case 7: { using Cfg = WgCfg7<T, GF, true>; return __VA_ARGS__(); }      \
      default: break;                                                          \
    }                                                                          \
    return ::awq::Status::kUnsupported;                                        \
  }()
bool sk_cfg(int cfg) { return cfg == 1 || cfg == 4 || cfg == 6 || cfg == 7; }

// Measured on an H200 (bench/results/gemm_notes.md, tuning table of 2026-11-21 12:30 UTC, six LLM
// shapes, best split count each, geo-mean vs cuBLAS): M = 64: cfg 1 1.13x (2 1.10x, 0 1.08x);
// M = 128: cfg 7 1.00x (4 0.99x, 5 0.92x); M = 256: cfg 6 0.87x (5 0.77x); M = 1024: cfg 6 0.84x
// (the dequantize + cuBLAS fallback 0.77x); M = 2048: cfg 6 0.84x against the fallback's 0.86x.
// Repeated timings of one configuration differ by up to 10 % at large M (clocks under load).
// For 128 < M <= 512 make_plan chooses between 4 and 6 by plan_cost (below) instead. Since session 13
// (2026-11-22) configuration 6 also serves 1024 < M <= 4096, where it now beats the fallback (int4_gemm.h).
int default_cfg(int64_t m) { return m <= 64 ? 1 : m <= 128 ? 7 : 6; }

// Blocks of configuration cfg one SM holds at once (registers, shared memory), from the occupancy
// calculator, once per configuration (the fp16 G128 instance stands for the others: the split
// choice only needs the count, and workspace sizing and launch must agree, so both use this).
template <typename Cfg>
int resident_blocks_of() {
  static const int v = [] {
    auto kernel = int4_gemm_wgmma_kernel<Cfg>;
    int b = 0;
    if (cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, Cfg::kSmemBytes) != cudaSuccess ||
        cudaOccupancyMaxActiveBlocksPerMultiprocessor(&b, kernel, Cfg::kThreads, Cfg::kSmemBytes) != cudaSuccess)
      b = 1;
    return std::max(b, 1);
  }();
  return v;
}

int resident_blocks(int cfg, bool sk = false) {
  int b = 1;
  if (!sk) {
    const Status s = AWQ_WG_CFG_SWITCH(cfg, __half, 2, [&]() -> Status {
      b = resident_blocks_of<Cfg>();
      return Status::kOk;
    });
    return s == Status::kOk ? b : 1;
  }
  // stream-K waits need every CTA resident: the fewest over the instances a launch may use
  int lo = 0;
  auto take = [&](int v) { lo = lo == 0 ? v : std::min(lo, v); };
  auto take_all = [&](auto gf) {
    constexpr int GF = decltype(gf)::value;
    (void)AWQ_WG_SK_SWITCH(cfg, __half, GF, [&]() -> Status { take(resident_blocks_of<Cfg>()); return Status::kOk; });
    (void)AWQ_WG_SK_SWITCH(cfg, __nv_bfloat16, GF, [&]() -> Status { take(resident_blocks_of<Cfg>()); return Status::kOk; });
  };
  take_all(std::integral_constant<int, 0>{});
  take_all(std::integral_constant<int, 1>{});
  take_all(std::integral_constant<int, 2>{});
  return lo > 0 ? lo : 1;
}

// sk_ctas > 0: stream-K with that many CTAs (splits is then 1), the first sk_dp tiles run whole
struct WgPlan {
  int cfg, t_tiles, n_tiles, k_blocks, splits, sk_ctas, sk_dp;
};

// Stream-K: one CTA per resident slot (all run at once, which the waits need), each with at least
// kSkMinUnits k-blocks.
constexpr int kSkMinUnits = 8;
constexpr int64_t kSkAutoUnits = 96;   // the automatic choice's minimum k-blocks per CTA (make_plan)
constexpr int64_t kSkAutoUnitsLowFill = 32;  // the same where whole tiles fill at most 3/4 of their waves
int sk_ctas(const WgPlan& pl, int sm_count) {
  const int64_t units = int64_t(pl.t_tiles) * pl.n_tiles * pl.k_blocks;
  const int64_t slots = int64_t(sm_count) * resident_blocks(pl.cfg, true);
  return int(std::max<int64_t>(1, std::min(slots, units / kSkMinUnits)));
}
// Tiles a stream-K plan runs whole before sharing out the rest (hybrid stream-K): every full wave but
// the last, so each CTA's shared-out range covers between one and two tiles. H200, 2026-11-22
// (gemm_notes.md, session 13; fp16 op path, two runs each): 14336 x 4096 M = 1024 175.7 / 184.1 ->
// 172.1 / 172.2 us, 11008 x 4096 M = 1024 136.0 -> 134.5, M = 2048 264.1 -> 259.3; no plan slower.
// All full waves (no whole wave left to share out) was slower on those layers: 185-187, 135.7, 265 us.
int sk_dp_tiles(const WgPlan& pl) {
  const int64_t waves = (int64_t(pl.t_tiles) * pl.n_tiles) / pl.sk_ctas;
  return int(std::max<int64_t>(0, waves - 1) * pl.sk_ctas);
}
int64_t sk_flag_bytes(int ctas) { return (int64_t(ctas) * 4 + 255) / 256 * 256; }

// Time of a plan of configuration 4 (128 x 128 tile) or 6 (256 x 128) on the H200, us, by which
// make_plan picks the configuration (4 or 6) for 128 < M <= 512 and the split count of either for
// 128 < M <= 1024 where stream-K is not chosen:
//   whole tiles / split-K: waves x (a + b x k-blocks per CTA) + (splits > 1) x (r0 + r1 x MB of fp32 partials)
//   stream-K:              a + b x k-blocks per CTA + kSkCostUs (slot writes and reads)
// Least squares on relative error over 234 measured plans per configuration (explicit 1, 2 (, 4)
// splits; six LLM shapes at M = 160..1000 and seven others at M = 192..384, bench/results/gemm_notes.md
// Session 8): mean error 4 % (cfg 4) and 6 % (cfg 6). Against the rules it replaces there, the plans
// it picks took 0.90x the time on the measured cases (the best measured plan of each: 0.895x):
// 256-token tiles at M = 320 leave a second tile three quarters empty (14336 x 4096: 148 -> 83 us),
// and split counts with 16 k-blocks per split cost more than the waves they save (6144 x 4096 at
// M = 320: 4 splits 65 us, 1 split 43 us; 4096 x 4096 at M = 640: 65 and 43 us).
// Not modeled: a last token tile that is mostly empty runs slower than a full one (14336 x 4096,
// stream-K over 3 x 112 tiles: 183 us at M = 576, 138 us at M = 768), so above M = 512 the
// configuration stays 6.
struct PlanCost {
  double a, b, r0, r1;
};
constexpr PlanCost kCost4 = {2.02, 0.4315, 1.22, 0.5464};
constexpr PlanCost kCost6 = {3.22, 0.6687, 0.36, 0.6276};
constexpr double kSkCostUs = 8.0;
bool modeled_cfg(int64_t m) { return m > 128 && m <= 512; }
// (fitted up to M = 1024; above it the six LLM shapes have at least a wave of 256-token tiles, and
// smaller layers take choose_splits' count)
bool modeled_splits(int64_t m, int cfg) { return (cfg == 4 || cfg == 6) && m > 128 && m <= 1024; }
double plan_cost(const WgPlan& pl, int64_t m, int64_t n, int sm_count) {
  const PlanCost& c = pl.cfg == 4 ? kCost4 : kCost6;
  const int64_t slots = int64_t(sm_count) * resident_blocks(pl.cfg);
  const int64_t tiles = int64_t(pl.t_tiles) * pl.n_tiles;
  if (pl.sk_ctas > 0) {
    const int64_t per_cta = (tiles * pl.k_blocks + pl.sk_ctas - 1) / pl.sk_ctas;
    return c.a + c.b * double(per_cta) + kSkCostUs;
  }
  const int64_t waves = (tiles * pl.splits + slots - 1) / slots;
  double t = double(waves) * (c.a + c.b * double(pl.k_blocks) / pl.splits);
  if (pl.splits > 1) t += c.r0 + c.r1 * double(pl.splits) * double(m) * double(n) * 4e-6;
  return t;
}

// Split-K fills the SMs' resident slots (sm_count x blocks per SM) with at least 16 k-blocks
// (1024 k) per split: at 8 the pipeline's fill and the partials cost more than the extra blocks
// gain (H200 tuning table: 4096 x 4096 at M = 64 is fastest with 4 splits, not 8). Above M = 128 the
// split count (and up to M = 512 the configuration, 4 or 6) come from plan_cost instead.
WgPlan make_plan(int64_t m, int64_t n, int64_t k, int sm_count, int cfg, int splits) {
  if (cfg < 0 && splits == 0 && sm_count > 0 && modeled_cfg(m)) {
    const WgPlan p4 = make_plan(m, n, k, sm_count, 4, 0), p6 = make_plan(m, n, k, sm_count, 6, 0);
    return plan_cost(p4, m, n, sm_count) < plan_cost(p6, m, n, sm_count) ? p4 : p6;
  }
  WgPlan pl;
  pl.cfg = cfg >= 0 ? cfg : default_cfg(m);
#ifndef AWQ_SMALL_N_CFG0
#define AWQ_SMALL_N_CFG0 1  // -DAWQ_SMALL_N_CFG0=0 for A/B builds
#endif
  // M <= 64 on layers whose 64 x 128 tiles fill at most a quarter of the resident slots (4096 rows:
  // 32 tiles on 264): the 64 x 64 tile (configuration 0, three blocks per SM), split by choose_splits
  // as before. H200, 2026-11-22 (gemm_notes.md, session 14, tuning of every configuration and split):
  // the best plan there at M = 32 and 64; the layers with 86 or more such tiles keep configuration 1.
  if (AWQ_SMALL_N_CFG0 && cfg < 0 && splits == 0 && pl.cfg == 1 && sm_count > 0) {
    const WgShape s1 = wg_shape(1);
    const int64_t tiles1 = ((m + s1.bt - 1) / s1.bt) * ((n + s1.rows - 1) / s1.rows);
    if (4 * tiles1 <= int64_t(sm_count) * resident_blocks(1)) pl.cfg = 0;
  }
  const WgShape s = wg_shape(pl.cfg);
  pl.t_tiles = int((m + s.bt - 1) / s.bt);
  pl.n_tiles = int((n + s.rows - 1) / s.rows);
  pl.k_blocks = int(k / kBK);
  pl.sk_ctas = 0;
  pl.sk_dp = 0;
  if (splits < 0 && sk_cfg(pl.cfg) && sm_count > 0) {
    pl.splits = 1;
    pl.sk_ctas = sk_ctas(pl, sm_count);
    pl.sk_dp = sk_dp_tiles(pl);
    return pl;
  }
  // Automatic stream-K where whole tiles leave much of the last wave idle (tiles < 0.9 waves x slots)
  // and every CTA still gets at least kSkAutoUnits k-blocks. Fitted to the H200 tuning tables of
  // 16:00-16:15 UTC (fp16, bench/results/gemm_notes.md), which it matches on every measured case:
  // faster by 8 % on 28672 x 8192 at M = 64 (108 k-blocks per CTA), 3 % at M = 128 and 256, 5-8 % on
  // 11008 x 4096 and 14336 x 4096 at M = 1024 (167-217); slower where tiles fill their waves
  // (28672 x 8192 at M = 1024: +2 %) or CTAs get fewer k-blocks (14336 x 4096 at M = 256, 54: +24 %;
  // 11008 x 4096 at M = 64, 21: +20 %).
  if (splits == 0 && sk_cfg(pl.cfg) && sm_count > 0) {
    const int64_t tiles = int64_t(pl.t_tiles) * pl.n_tiles;
    const int64_t slots = int64_t(sm_count) * resident_blocks(pl.cfg, true);
    const int64_t waves = (tiles + slots - 1) / slots;
    // Also where whole tiles fill at most 3/4 of their waves and number at least half a wave, from 32
    // k-blocks per CTA, and M fills its token tiles (>= 7/8 of their rows): 11008 x 4096 (86 tiles on
    // 132 slots) at M = 128 -12 %, M = 256 -18 %, M = 512 -20 % (H200, 2026-11-21 18:50 UTC,
    // gemm_notes.md Session 7), while 14336 x 4096 (112 tiles, 85 %) at M = 128 / 256 and the 32- and
    // 64-tile layers (split-K fills one wave) stay data-parallel, where stream-K measured 5-19 %
    // slower; so does M = 384 (two 256-token tiles, the second half empty: stream-K +7 %, unexplained).
    // Only up to M = 512, the measured range.
    const bool low_fill = m <= 512 && 2 * tiles >= slots && 4 * tiles <= 3 * waves * slots &&
                          tiles * pl.k_blocks >= kSkAutoUnitsLowFill * slots &&
                          int64_t(pl.t_tiles) * s.bt * 7 <= m * 8;
    if ((tiles * pl.k_blocks >= kSkAutoUnits * slots && 10 * tiles < 9 * waves * slots) || low_fill) {
      pl.splits = 1;
      pl.sk_ctas = sk_ctas(pl, sm_count);
      pl.sk_dp = sk_dp_tiles(pl);
      return pl;
    }
  }
  if (splits == 0 && sm_count > 0 && modeled_splits(m, pl.cfg)) {
    // the split count with the lowest modeled time, each split >= 16 k-blocks
    const int cap = std::max(1, std::min(kMaxSplits, pl.k_blocks / 16));
    int best = 1;
    double best_t = 0.0;
    for (int s2 = 1; s2 <= cap; ++s2) {
      pl.splits = s2;
      const double t = plan_cost(pl, m, n, sm_count);
      if (s2 == 1 || t < best_t) {
        best = s2;
        best_t = t;
      }
    }
    pl.splits = best;
    return pl;
  }
  pl.splits = splits > 0 ? std::min(splits, pl.k_blocks)
                         : choose_splits(int64_t(pl.t_tiles) * pl.n_tiles, pl.k_blocks,
                                         sm_count * resident_blocks(pl.cfg), kMaxSplits, 16);
  return pl;
}

int64_t partial_bytes(const WgPlan& pl, int64_t m, int64_t n) {
  if (pl.sk_ctas > 0) {
    const WgShape s = wg_shape(pl.cfg);
    return sk_flag_bytes(pl.sk_ctas) + int64_t(pl.sk_ctas) * s.bt * s.rows * 4;
  }
  return pl.splits > 1 ? pl.splits * m * n * 4 : 0;
}

bool aligned(const void* p, uintptr_t al) { return (reinterpret_cast<uintptr_t>(p) & (al - 1)) == 0; }

// Compute capability 9.0 of the current device, queried once per device (a host query: safe while
// a CUDA graph is being captured).
bool device_is_sm90() {
  constexpr int kMaxDevices = 64;
  static std::atomic<int> cache[kMaxDevices];  // 0 unknown, 1 yes, 2 no
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) return false;
  if (dev < 0 || dev >= kMaxDevices) return false;
  int v = cache[dev].load(std::memory_order_relaxed);
  if (v == 0) {
    int major = 0, minor = 0;
    if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev) != cudaSuccess)
      return false;
    v = (major == 9 && minor == 0) ? 1 : 2;
    cache[dev].store(v, std::memory_order_relaxed);
  }
  return v == 1;
}

int device_sm_count(int given) {
  if (given > 0) return given;
  int dev = 0, sms = 0;
  if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess)
    return 0;
  return sms;
}

bool shape_supported(int64_t m, int64_t n, int64_t k, int group_size) {
  if (m <= 0 || n <= 0 || k <= 0 || n % 64 != 0 || k % kBK != 0) return false;
  if (group_size <= 0 || group_size % 32 != 0 || k % group_size != 0) return false;
  // group indices by multiply-high (exact for k * group_size < 2^32), 32-bit parameter offsets
  if (k * group_size >= (int64_t(1) << 32) || n * (k / group_size) >= (int64_t(1) << 31)) return false;
  return m <= INT32_MAX && n <= INT32_MAX && k <= INT32_MAX && m * n <= INT64_MAX / 64;
}

bool supported(const Int4LinearParams& p) {
  if (p.dtype != DType::kF16 && p.dtype != DType::kBF16) return false;
  if (!shape_supported(p.m, p.n, p.k, p.group_size)) return false;
  if (p.x_stride < p.k || p.x_stride % 8 != 0) return false;  // TMA: row strides in 16-byte units
  if (!aligned(p.x, 16) || !aligned(p.qweight, 16) || !aligned(p.y, 4) || !aligned(p.scales, 2)) return false;
  if (p.bias != nullptr && !aligned(p.bias, 2)) return false;
  return true;
}

// cuTensorMapEncodeTiled from the driver, through the runtime (no link against libcuda).
using EncodeTiledFn = CUresult (*)(CUtensorMap*, CUtensorMapDataType, cuuint32_t, void*, const cuuint64_t*,
                                   const cuuint64_t*, const cuuint32_t*, const cuuint32_t*, CUtensorMapInterleave,
                                   CUtensorMapSwizzle, CUtensorMapL2promotion, CUtensorMapFloatOOBfill);
EncodeTiledFn encode_tiled() {
  static const EncodeTiledFn fn = []() -> EncodeTiledFn {
    void* f = nullptr;
    cudaDriverEntryPointQueryResult q = cudaDriverEntryPointSymbolNotFound;
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &f, 12000, cudaEnableDefault, &q) != cudaSuccess ||
        q != cudaDriverEntryPointSuccess)
      return nullptr;
    return reinterpret_cast<EncodeTiledFn>(f);
  }();
  return fn;
}

// x [M, K] (row stride x_stride) as a 2-D tensor {K, M}: box {64, bt}, 128-byte swizzle (the wgmma
// B layout); x_tail the same with a box of M rows for M < bt (the zero fill of a box's rows past M
// made such tiles 1.1-1.7x slower on the H200: 14336 x 4096 at M = 320, 256-token tiles, one split
// 124 -> 86 us with no row past M; gemm_notes.md Session 8).
// qweight [N, K/8] int32 as {K/8, N}: box {8, rows} (32 bytes a row),
// zeros past N. Both promote L2 fills to 256 bytes: a W row is read 32 bytes per stage, and
// 256-byte fills turn those into whole DRAM bursts.
bool make_maps(CUtensorMap* x_map, CUtensorMap* x_tail, CUtensorMap* w_map, const Int4LinearParams& p, int bt, int rows) {
  const EncodeTiledFn encode = encode_tiled();
  if (encode == nullptr) return false;
  const cuuint32_t elem_strides[2] = {1, 1};
  const cuuint64_t x_dims[2] = {cuuint64_t(p.k), cuuint64_t(p.m)};
  const cuuint64_t x_strides[1] = {cuuint64_t(p.x_stride) * 2};
  const cuuint32_t x_box[2] = {cuuint32_t(kBK), cuuint32_t(bt)};
  const CUtensorMapDataType dt =
      p.dtype == DType::kF16 ? CU_TENSOR_MAP_DATA_TYPE_FLOAT16 : CU_TENSOR_MAP_DATA_TYPE_BFLOAT16;
  if (encode(x_map, dt, 2, const_cast<void*>(p.x), x_dims, x_strides, x_box, elem_strides,
             CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
             CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) != CUDA_SUCCESS)
    return false;
  // M < bt: the one token tile's M rows (none past M to zero-fill); otherwise unused
  const cuuint32_t tail_box[2] = {cuuint32_t(kBK), cuuint32_t(p.m)};
  if (p.m >= bt) {
    *x_tail = *x_map;
  } else if (encode(x_tail, dt, 2, const_cast<void*>(p.x), x_dims, x_strides, tail_box, elem_strides,
                    CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                    CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) != CUDA_SUCCESS) {
    return false;
  }
  const cuuint64_t w_dims[2] = {cuuint64_t(p.k / 8), cuuint64_t(p.n)};
  const cuuint64_t w_strides[1] = {cuuint64_t(p.k / 8) * 4};
  const cuuint32_t w_box[2] = {cuuint32_t(kBK / 8), cuuint32_t(rows)};
  return encode(w_map, CU_TENSOR_MAP_DATA_TYPE_INT32, 2, const_cast<int32_t*>(p.qweight), w_dims, w_strides, w_box,
                elem_strides, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_NONE,
                CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

// The kernel has a body only in sm_90a code. A build without it (TORCH_CUDA_ARCH_LIST=9.0, or
// 8.0+PTX JIT-compiled on an H100) would run an empty stub on a 9.0 device and leave y unwritten;
// the stub is recognised by its register count (the real configurations use 127-255).
template <typename Cfg>
bool has_sm90a_body() {
  static const bool ok = [] {
    cudaFuncAttributes fa;
    return cudaFuncGetAttributes(&fa, int4_gemm_wgmma_kernel<Cfg>) == cudaSuccess && fa.numRegs >= 64;
  }();
  return ok;
}

// Zeroes the stream-K flags ahead of the GEMM, as a kernel node: in a CUDA graph the cudaMemsetAsync
// node it replaces cost about 1.4 us more per call (H200, 2026-11-22, gemm_notes.md session 14:
// 11008 x 4096 at M = 128 29.5 -> 28.0 us, M = 256 43.7 -> 42.3; launching the GEMM as its programmatic
// dependent gained nothing more).
__global__ void __launch_bounds__(256) zero_flags_kernel(unsigned* flags, int n) {
  for (int i = int(threadIdx.x); i < n; i += int(blockDim.x)) flags[i] = 0u;
}

template <typename Cfg>
Status launch(const Int4LinearParams& p, const WgPlan& pl, cudaStream_t stream) {
  using T = typename Cfg::Elem;
  if (!has_sm90a_body<Cfg>()) return Status::kUnsupported;
  CUtensorMap x_map, x_tail, w_map;
  if (!make_maps(&x_map, &x_tail, &w_map, p, Cfg::kBT, Cfg::kRows)) return Status::kUnsupported;
  auto kernel = int4_gemm_wgmma_kernel<Cfg>;
  if (cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, Cfg::kSmemBytes) != cudaSuccess)
    return Status::kLaunchError;
  Sm90Args a;
  a.x = p.x;
  a.qweight = reinterpret_cast<const uint32_t*>(p.qweight);
  a.scales = static_cast<const uint16_t*>(p.scales);
  a.zeros = p.zeros;
  a.bias = p.bias;
  a.y = p.y;
  a.partials = static_cast<float*>(p.workspace);
  a.y_vec = aligned(p.y, 16) ? 1 : 0;
  a.m = int(p.m);
  a.n = int(p.n);
  a.k = int(p.k);
  a.x_stride = p.x_stride;
  a.group_size = p.group_size;
  a.groups = int(p.k / p.group_size);
  a.group_magic = uint32_t(((uint64_t(1) << 32) + uint64_t(p.group_size) - 1) / uint64_t(p.group_size));
  a.t_tiles = pl.t_tiles;
  a.n_tiles = pl.n_tiles;
  a.k_blocks = pl.k_blocks;
  a.splits = pl.splits;
  a.sk_flags = nullptr;
  a.sk_slots = nullptr;
  a.sk_dp_tiles = Cfg::kG64 ? pl.sk_dp : 0;  // the generic form has no whole-tile prefix (see the kernel)
  a.tail_rows = p.m < Cfg::kBT ? int(p.m) : 0;
  a.shift_last = p.m > Cfg::kBT && p.m % Cfg::kBT != 0 ? 1 : 0;
  if constexpr (Cfg::kSK) {
    a.sk_flags = static_cast<unsigned*>(p.workspace);
    a.sk_slots = reinterpret_cast<float*>(static_cast<char*>(p.workspace) + sk_flag_bytes(pl.sk_ctas));
    zero_flags_kernel<<<1, 256, 0, stream>>>(a.sk_flags, pl.sk_ctas);
    if (cudaGetLastError() != cudaSuccess) return Status::kLaunchError;
  }
  const dim3 grid = Cfg::kSK ? dim3(unsigned(pl.sk_ctas), 1u)
                             : dim3(unsigned(int64_t(pl.t_tiles) * pl.n_tiles), unsigned(pl.splits));
  kernel<<<grid, Cfg::kThreads, Cfg::kSmemBytes, stream>>>(x_map, x_tail, w_map, a);
  if (cudaGetLastError() != cudaSuccess) return Status::kLaunchError;
  if (pl.splits > 1) {
    const Status rs =
        launch_splitk_reduce<T>(a.partials, pl.splits, p.m, p.n, p.bias, p.y, stream, AWQ_SPLITK_PDL != 0 && pdl_allowed());
    if (rs != Status::kOk) return rs;
  }
  return Status::kOk;
}

}  // namespace

int int4_gemm_sm90_num_configs() { return kNumWgCfgs; }

// No shape below kSm90MaxM is left to the dequantize + cuBLAS fallback any more: a rule that did so for
// wide K <= 4096 layers at 512 < M <= 1024 without a stream-K plan (measured when this kernel ran
// M = 1024 at 0.70-0.76x cuBLAS) had gone stale: on 11008 x 4096 at M = 640 / 768 the kernel took
// 94.6 / 95.4 us against the fallback's 121.3 / 127.5 (H200, 2026-11-22, gemm_notes.md, session 13).

bool int4_gemm_sm90_handles(int64_t m, int64_t n, int64_t k, int group_size) {
  return m >= kSm90MinM && m <= kSm90MaxM && shape_supported(m, n, k, group_size) && device_is_sm90();
}

Status int4_gemm_sm90(const Int4LinearParams& p, cudaStream_t stream, int cfg, int splits) {
  if (cfg >= kNumWgCfgs || !supported(p) || !device_is_sm90()) return Status::kUnsupported;
  WgPlan pl = make_plan(p.m, p.n, p.k, device_sm_count(p.sm_count), cfg, splits);
  if (splits < 0 && pl.sk_ctas == 0) return Status::kUnsupported;
  if ((pl.splits > 1 || pl.sk_ctas > 0) && (p.workspace == nullptr || p.workspace_bytes < partial_bytes(pl, p.m, p.n) ||
                                            !aligned(p.workspace, 16))) {
    if (splits != 0) return Status::kUnsupported;  // a forced plan runs as asked or not at all
    pl.splits = 1;  // no room for partials: one split is always correct, only slower
    pl.sk_ctas = 0;
    pl.sk_dp = 0;
  }
  return AWQ_DTYPE_SWITCH(p.dtype, D, [&]() -> Status {
    if constexpr (D == DType::kF32) {
      return Status::kUnsupported;
    } else {
      using T = std::conditional_t<D == DType::kF16, __half, __nv_bfloat16>;
      // the group form: G128, G64 or generic (WgCfg)
      auto run = [&](auto gf) -> Status {
        constexpr int GF = decltype(gf)::value;
        if (pl.sk_ctas > 0) return AWQ_WG_SK_SWITCH(pl.cfg, T, GF, [&]() -> Status { return launch<Cfg>(p, pl, stream); });
        return AWQ_WG_CFG_SWITCH(pl.cfg, T, GF, [&]() -> Status { return launch<Cfg>(p, pl, stream); });
      };
      if (p.group_size % (2 * kBK) == 0) return run(std::integral_constant<int, 2>{});
      if (p.group_size % kBK == 0) return run(std::integral_constant<int, 1>{});
      return run(std::integral_constant<int, 0>{});
    }
  });
}

int64_t int4_gemm_sm90_workspace_bytes(int64_t m, int64_t n, int64_t k, int group_size, int sm_count) {
  if (!shape_supported(m, n, k, group_size)) return 0;
  return partial_bytes(make_plan(m, n, k, device_sm_count(sm_count), -1, 0), m, n);
}

}  // namespace detail
}  // namespace cuda
}  // namespace awq
