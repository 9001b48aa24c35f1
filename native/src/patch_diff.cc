#include "patch_diff.h"

#include <algorithm>
#ifdef __SSE2__
#include <emmintrin.h>
#endif
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
#ifdef __SSE2__
    // Sums of absolute differences of 8-byte groups (two per instruction); a patch row is a whole
    // number of groups when patch_bytes % 8 == 0.
    if (patch_bytes % 8 == 0) {
      const size_t groups = row_bytes / 8;
      const size_t per_patch = patch_bytes / 8;
      size_t g = 0;
      for (; g + 2 <= groups; g += 2) {
        const __m128i va = _mm_loadu_si128(reinterpret_cast<const __m128i*>(ra + 8 * g));
        const __m128i vb = _mm_loadu_si128(reinterpret_cast<const __m128i*>(rb + 8 * g));
        const __m128i sad = _mm_sad_epu8(va, vb);
        patch_sums[g / per_patch] += static_cast<uint32_t>(_mm_cvtsi128_si32(sad));
        patch_sums[(g + 1) / per_patch] += static_cast<uint32_t>(_mm_extract_epi16(sad, 4));
      }
      for (size_t i = 8 * g; i < row_bytes; ++i) {
        patch_sums[i / patch_bytes] +=
            static_cast<uint32_t>(ra[i] > rb[i] ? ra[i] - rb[i] : rb[i] - ra[i]);
      }
      continue;
    }
#endif
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
