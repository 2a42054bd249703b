import re,sys
p='/tmp/qv/quantize.cu'
s=open(p).read()
# variant knobs: make bf16 use smem form (and NEXT loop) via macros
s=s.replace('constexpr bool kScaleSmem = AWQ_SCALE_SMEM != 0 && std::is_same_v<T, __half>;',
 'constexpr bool kScaleSmem = AWQ_SCALE_SMEM != 0 && (std::is_same_v<T, __half> || (AWQ_BF16_SMEM != 0 && std::is_same_v<T, __nv_bfloat16>));')
s=s.replace('  if constexpr (kScale && std::is_same_v<T, __half>) {','  if constexpr (kScale && (std::is_same_v<T, __half> || (AWQ_BF16_NEXT != 0 && std::is_same_v<T, __nv_bfloat16>))) {')
s=s.replace('constexpr bool kSkipClamps = AWQ_CLAMP_SKIP != 0 && (std::is_same_v<T, __nv_bfloat16> || (kScale && kScaleSmem<T>));',
 'constexpr bool kSkipClamps = AWQ_CLAMP_SKIP != 0 && ((std::is_same_v<T, __nv_bfloat16> && AWQ_BF16_SKIP != 0) || (kScale && kScaleSmem<T> && std::is_same_v<T, __half>));')
s='#ifndef AWQ_BF16_SMEM\n#define AWQ_BF16_SMEM 0\n#endif\n#ifndef AWQ_BF16_NEXT\n#define AWQ_BF16_NEXT 0\n#endif\n#ifndef AWQ_BF16_SKIP\n#define AWQ_BF16_SKIP 1\n#endif\n'+s
open(p,'w').write(s)
