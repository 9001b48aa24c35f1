#include "patch_diff.h"

#include <algorithm>
#include <vector>

#include "typed_array.h"

namespace vla {

void PatchDifference(const uint8_t* a, const uint8_t* b, size_t width, size_t height, size_t grid_w,
                     size_t grid_h, float* out) {
  thread_local std::vector<uint64_t> sums;
  const size_t patches = grid_w * grid_h;
  sums.assign(patches, 0);
  const size_t patch_bytes = (width / grid_w) * 3;
  const size_t patch_rows = height / grid_h;
  const size_t row_bytes = width * 3;
  for (size_t y = 0; y < height; ++y) {
    uint64_t* patch_sums = sums.data() + (y / patch_rows) * grid_w;
    const uint8_t* ra = a + y * row_bytes;
    const uint8_t* rb = b + y * row_bytes;
    for (size_t gx = 0; gx < grid_w; ++gx) {
      const uint8_t* pa = ra + gx * patch_bytes;
      const uint8_t* pb = rb + gx * patch_bytes;
      uint32_t s = 0;
      for (size_t i = 0; i < patch_bytes; ++i) {
        s += static_cast<uint32_t>(pa[i] > pb[i] ? pa[i] - pb[i] : pb[i] - pa[i]);
      }
      patch_sums[gx] += s;
    }
  }
  // The sums are exact integers; each mean is one division in double, rounded once to float.
  const double count = static_cast<double>(patch_bytes * patch_rows);
  for (size_t p = 0; p < patches; ++p) {
    out[p] = static_cast<float>(static_cast<double>(sums[p]) / count);
  }
}

Napi::Value PatchDifferenceBinding(const Napi::CallbackInfo& info) {
  PatchDifference(DataOf<uint8_t>(info[0]), DataOf<uint8_t>(info[1]),
                  static_cast<size_t>(IntOf(info[2])), static_cast<size_t>(IntOf(info[3])),
                  static_cast<size_t>(IntOf(info[4])), static_cast<size_t>(IntOf(info[5])),
                  DataOf<float>(info[6]));
  return info.Env().Undefined();
}

}  // namespace vla
