#include "cpu.h"

#ifndef VLA_BUILD
#define VLA_BUILD "baseline"
#endif

namespace vla {

Napi::Value CpuFeaturesBinding(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("build", VLA_BUILD);
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  // libgcc's / compiler-rt's CPUID reading, which also checks that the OS saves the AVX and
  // AVX-512 registers (XGETBV), not only that the CPU has them.
  __builtin_cpu_init();
  o.Set("arch", "x64");
  o.Set("avx2", __builtin_cpu_supports("avx2") != 0);
  o.Set("fma", __builtin_cpu_supports("fma") != 0);
  o.Set("bmi", __builtin_cpu_supports("bmi") != 0);
  o.Set("bmi2", __builtin_cpu_supports("bmi2") != 0);
  o.Set("avx512f", __builtin_cpu_supports("avx512f") != 0);
  o.Set("avx512bw", __builtin_cpu_supports("avx512bw") != 0);
  o.Set("avx512dq", __builtin_cpu_supports("avx512dq") != 0);
  o.Set("avx512vl", __builtin_cpu_supports("avx512vl") != 0);
  o.Set("avx512cd", __builtin_cpu_supports("avx512cd") != 0);
  o.Set("avx512vbmi", __builtin_cpu_supports("avx512vbmi") != 0);
#else
  o.Set("arch", "other");
  for (const char* name : {"avx2", "fma", "bmi", "bmi2", "avx512f", "avx512bw", "avx512dq", "avx512vl",
                           "avx512cd", "avx512vbmi"}) {
    o.Set(name, false);
  }
#endif
  return o;
}

}  // namespace vla
