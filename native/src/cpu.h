// What this build was compiled for and what the CPU running it supports, so that the loader
// (src/native/binding.ts) picks the fastest build of the addon the CPU can run.

#ifndef VLA_NATIVE_CPU_H_
#define VLA_NATIVE_CPU_H_

#include <napi.h>

namespace vla {

// cpuFeatures(): { build, arch, avx2, fma, bmi, bmi2, avx512f, avx512bw, avx512dq, avx512vl,
// avx512cd, avx512vbmi } — each feature true only where the CPU and the OS (saved register state)
// support it; all false off x86-64.
Napi::Value CpuFeaturesBinding(const Napi::CallbackInfo& info);

}  // namespace vla

#endif  // VLA_NATIVE_CPU_H_
