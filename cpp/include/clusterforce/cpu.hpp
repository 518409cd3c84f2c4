// Portability helpers for the hot kernels: run-time choice of the SIMD instruction set,
// forced inlining and prefetch hints (OpenMP pragmas: parallel.hpp).
//
// The package is built once (often on a login node) and run elsewhere, so kernels are not
// compiled with -march=native. Instead each hot kernel is instantiated for a few instruction
// sets with the compiler's `target` attribute and one is picked at run time from CPUID.
#pragma once

#include <stdexcept>
#include <string>

#include "parallel.hpp"  // CLUSTERFORCE_PRAGMA

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define CLUSTERFORCE_X86_DISPATCH 1
#define CLUSTERFORCE_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define CLUSTERFORCE_TARGET_AVX512 __attribute__((target("avx512f,avx2,fma")))
#else
#define CLUSTERFORCE_X86_DISPATCH 0
#define CLUSTERFORCE_TARGET_AVX2
#define CLUSTERFORCE_TARGET_AVX512
#endif

#if defined(__GNUC__) || defined(__clang__)
#define CLUSTERFORCE_ALWAYS_INLINE inline __attribute__((always_inline))
#define CLUSTERFORCE_PREFETCH(address) __builtin_prefetch(address)  // never faults
#else
#define CLUSTERFORCE_ALWAYS_INLINE inline
#define CLUSTERFORCE_PREFETCH(address) ((void)0)
#endif

namespace clusterforce {

// `automatic` = the widest set this CPU supports; the others force a variant (for tests and
// benchmarks) and fail if the CPU lacks it.
enum class Isa { automatic, generic, avx2, avx512 };

inline const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::automatic:
      return "auto";
    case Isa::generic:
      return "generic";
    case Isa::avx2:
      return "avx2";
    case Isa::avx512:
      return "avx512";
  }
  return "unknown";
}

inline Isa parse_isa(const std::string& name) {
  if (name == "auto") return Isa::automatic;
  if (name == "generic") return Isa::generic;
  if (name == "avx2") return Isa::avx2;
  if (name == "avx512") return Isa::avx512;
  throw std::invalid_argument("unknown instruction set '" + name + "'; expected one of auto, generic, avx2, avx512");
}

inline bool cpu_supports(Isa isa) {
  switch (isa) {
    case Isa::automatic:
    case Isa::generic:
      return true;
#if CLUSTERFORCE_X86_DISPATCH
    case Isa::avx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case Isa::avx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    case Isa::avx2:
    case Isa::avx512:
      return false;
#endif
  }
  return false;
}

// Resolve `automatic` to the best supported set; reject a forced set the CPU cannot run.
inline Isa resolve_isa(Isa requested) {
  if (requested == Isa::automatic) {
    if (cpu_supports(Isa::avx512)) return Isa::avx512;
    if (cpu_supports(Isa::avx2)) return Isa::avx2;
    return Isa::generic;
  }
  if (!cpu_supports(requested)) {
    throw std::invalid_argument(std::string("instruction set '") + isa_name(requested) +
                                "' is not supported by this CPU (or this build)");
  }
  return requested;
}

}  // namespace clusterforce
