// Runtime values -> compile-time constants, in one place. Every switch ends in an error status
// naming nothing but "unsupported": the binding layer validated user input already and owns the
// message; reaching a default here means a configuration was not instantiated.
//
// Usage:  AWQ_DTYPE_SWITCH(p.dtype, D, { return run<D>(p); });
#pragma once
#include "awq/core.h"

#define AWQ_DTYPE_SWITCH(DT, NAME, ...)                              \
  [&]() -> ::awq::Status {                                           \
    switch (DT) {                                                    \
      case ::awq::DType::kF16: {                                     \
        constexpr ::awq::DType NAME = ::awq::DType::kF16;            \
        return __VA_ARGS__();                                        \
      }                                                              \
      case ::awq::DType::kBF16: {                                    \
        constexpr ::awq::DType NAME = ::awq::DType::kBF16;           \
        return __VA_ARGS__();                                        \
      }                                                              \
      case ::awq::DType::kF32: {                                     \
        constexpr ::awq::DType NAME = ::awq::DType::kF32;            \
        return __VA_ARGS__();                                        \
      }                                                              \
    }                                                                \
    return ::awq::Status::kUnsupported;                              \
  }()

// Group sizes with a specialised kernel. Other values return kUnsupported.
#define AWQ_GROUP_SWITCH(G, NAME, ...)                               \
  [&]() -> ::awq::Status {                                           \
    switch (G) {                                                     \
      case 32: { constexpr int NAME = 32; return __VA_ARGS__(); }    \
      case 64: { constexpr int NAME = 64; return __VA_ARGS__(); }    \
      case 128: { constexpr int NAME = 128; return __VA_ARGS__(); }  \
      default: return ::awq::Status::kUnsupported;                   \
    }                                                                \
  }()
