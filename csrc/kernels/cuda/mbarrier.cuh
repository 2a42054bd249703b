// Shared-memory barriers (mbarrier) of the sm_90 kernels (int4_gemm_sm90.cu, quantize.cu), addressed
// by their 32-bit shared-memory address. A phase completes when its arrivals are in and, with
// expect_tx, when the bulk copies that signal it (complete_tx) have delivered the announced bytes;
// waiters name the phase by its parity. PTX of sm_90: call only from code built for it (the
// functions are inline, so a translation unit for an older target that never calls them is fine).
#pragma once
#include <cstdint>

namespace awq {
namespace cuda {

__device__ __forceinline__ void mbar_init(uint32_t bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count));
}
// makes the initializations visible to the async proxy (bulk copies) and to the other threads
__device__ __forceinline__ void mbar_init_fence() { asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory"); }
__device__ __forceinline__ void mbar_arrive(uint32_t bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}
// one arrival plus `bytes` that bulk copies will deliver to this phase
__device__ __forceinline__ void mbar_expect_tx(uint32_t bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
}
__device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity) {
  uint32_t done = 0;
  do {
    asm volatile(
        "{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
        : "=r"(done)
        : "r"(bar), "r"(parity)
        : "memory");
  } while (!done);
}

}  // namespace cuda
}  // namespace awq
