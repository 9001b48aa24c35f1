// normalizeRgb: packed HWC RGB8 to planar CHW float32 through a per-channel lookup table.

#ifndef VLA_NATIVE_NORMALIZE_H_
#define VLA_NATIVE_NORMALIZE_H_

#include <napi.h>

#include <cstddef>
#include <cstdint>

namespace vla {

// For each of the `pixels` pixels p and channel c, out[c * pixels + p] = lut[c * 256 + rgb[p*3+c]].
void NormalizeRgb(const uint8_t* rgb, size_t pixels, const float* lut, float* out);

// The same with channel c's plane at out + c * stride: a run of `pixels` pixels of a larger image
// (the ingest kernel normalises each band of rows as it finishes it).
void NormalizeRgbPlanes(const uint8_t* rgb, size_t pixels, const float* lut, float* out,
                        size_t stride);

// normalizeRgb(rgb: Uint8Array, lut: Float32Array, out: Float32Array): undefined
Napi::Value NormalizeRgbBinding(const Napi::CallbackInfo& info);

}  // namespace vla

#endif  // VLA_NATIVE_NORMALIZE_H_
