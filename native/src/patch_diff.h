// patchDifference: mean absolute difference per patch between two packed RGB8 images.

#ifndef VLA_NATIVE_PATCH_DIFF_H_
#define VLA_NATIVE_PATCH_DIFF_H_

#include <napi.h>

#include <cstddef>
#include <cstdint>

namespace vla {

// For each patch of a grid_w x grid_h grid over two width x height RGB8 images (packed, 3 bytes a
// pixel), writes the mean of |a - b| over the patch's pixels and channels, in [0, 255], to
// out[gy * grid_w + gx]. Requires width % grid_w == 0 and height % grid_h == 0. The sums are exact
// integers; each mean is one double division rounded to float.
void PatchDifference(const uint8_t* a, const uint8_t* b, size_t width, size_t height, size_t grid_w,
                     size_t grid_h, float* out);

// patchDifference(a, b, width, height, gridW, gridH, out: Float32Array): undefined
Napi::Value PatchDifferenceBinding(const Napi::CallbackInfo& info);

}  // namespace vla

#endif  // VLA_NATIVE_PATCH_DIFF_H_
