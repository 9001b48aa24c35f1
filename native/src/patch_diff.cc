#include "patch_diff.h"

#if defined(__AVX512BW__) || defined(__AVX2__)
#include <immintrin.h>
#elif defined(__SSE2__)
#include <emmintrin.h>
#endif
#include <vector>

#include "typed_array.h"

namespace vla {
namespace {

// The sums are exact integers, so they may be added in any order: the SIMD paths sum absolute
// differences of 8-byte groups (psadbw) down each band of patch rows, then the groups of each
// patch.

#if defined(__SSE2__)
// Adds, for one band of `rows` image rows, the sum of |a - b| of every 8-byte group g of a row to
// groups[g] (row_bytes % 8 == 0; groups holds row_bytes / 8 rounded up to 8 entries).
void BandGroupSums(const uint8_t* a, const uint8_t* b, size_t row_bytes, size_t rows,
                   uint64_t* groups) {
  size_t x = 0;
#if defined(__AVX512BW__)
  for (; x < row_bytes; x += 64) {
    // A partial last chunk reads zeros past the row in both images: they add nothing.
    const size_t left = row_bytes - x;
    const __mmask64 mask = left >= 64 ? ~0ULL : (1ULL << left) - 1;
    __m512i acc = _mm512_setzero_si512();
    for (size_t y = 0; y < rows; ++y) {
      const __m512i va = _mm512_maskz_loadu_epi8(mask, a + y * row_bytes + x);
      const __m512i vb = _mm512_maskz_loadu_epi8(mask, b + y * row_bytes + x);
      acc = _mm512_add_epi64(acc, _mm512_sad_epu8(va, vb));
    }
    _mm512_storeu_si512(groups + x / 8, acc);
  }
#else
#if defined(__AVX2__)
  for (; x + 32 <= row_bytes; x += 32) {
    __m256i acc = _mm256_setzero_si256();
    for (size_t y = 0; y < rows; ++y) {
      const __m256i va =
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + y * row_bytes + x));
      const __m256i vb =
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + y * row_bytes + x));
      acc = _mm256_add_epi64(acc, _mm256_sad_epu8(va, vb));
    }
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(groups + x / 8), acc);
  }
#endif
  for (; x + 16 <= row_bytes; x += 16) {
    __m128i acc = _mm_setzero_si128();
    for (size_t y = 0; y < rows; ++y) {
      const __m128i va = _mm_loadu_si128(reinterpret_cast<const __m128i*>(a + y * row_bytes + x));
      const __m128i vb = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + y * row_bytes + x));
      acc = _mm_add_epi64(acc, _mm_sad_epu8(va, vb));
    }
    _mm_storeu_si128(reinterpret_cast<__m128i*>(groups + x / 8), acc);
  }
  if (x < row_bytes) {
    __m128i acc = _mm_setzero_si128();
    for (size_t y = 0; y < rows; ++y) {
      const __m128i va = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(a + y * row_bytes + x));
      const __m128i vb = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(b + y * row_bytes + x));
      acc = _mm_add_epi64(acc, _mm_sad_epu8(va, vb));
    }
    _mm_storel_epi64(reinterpret_cast<__m128i*>(groups + x / 8), acc);
  }
#endif
}
#endif  // __SSE2__

}  // namespace

void PatchDifference(const uint8_t* a, const uint8_t* b, size_t width, size_t height, size_t grid_w,
                     size_t grid_h, float* out) {
  thread_local std::vector<double> sums;
  thread_local std::vector<uint64_t> groups;
  const size_t patches = grid_w * grid_h;
  if (sums.size() < patches) sums.resize(patches);
  const size_t patch_bytes = (width / grid_w) * 3;
  const size_t patch_rows = height / grid_h;
  const size_t row_bytes = width * 3;
  const size_t band_bytes = row_bytes * patch_rows;
#if defined(__SSE2__)
  // A patch row is a whole number of 8-byte groups when patch_bytes % 8 == 0 (patch widths that
  // are multiples of 8 pixels, as the shipped 96 / 12).
  if (patch_bytes % 8 == 0) {
    const size_t per_patch = patch_bytes / 8;
    const size_t group_slots = (row_bytes / 8 + 7) / 8 * 8;
    if (groups.size() < group_slots) groups.resize(group_slots);
    uint64_t* g = groups.data();
    for (size_t gy = 0; gy < grid_h; ++gy) {
      BandGroupSums(a + gy * band_bytes, b + gy * band_bytes, row_bytes, patch_rows, g);
      double* band_sums = sums.data() + gy * grid_w;
      for (size_t gx = 0; gx < grid_w; ++gx) {
        uint64_t s = 0;
        for (size_t i = 0; i < per_patch; ++i) s += g[gx * per_patch + i];
        band_sums[gx] = static_cast<double>(s);
      }
    }
  } else
#endif
  {
    for (size_t gy = 0; gy < grid_h; ++gy) {
      double* band_sums = sums.data() + gy * grid_w;
      for (size_t gx = 0; gx < grid_w; ++gx) {
        uint64_t s = 0;
        for (size_t y = 0; y < patch_rows; ++y) {
          const size_t at = gy * band_bytes + y * row_bytes + gx * patch_bytes;
          const uint8_t* pa = a + at;
          const uint8_t* pb = b + at;
          for (size_t i = 0; i < patch_bytes; ++i) {
            s += static_cast<uint32_t>(pa[i] > pb[i] ? pa[i] - pb[i] : pb[i] - pa[i]);
          }
        }
        band_sums[gx] = static_cast<double>(s);
      }
    }
  }
  // Each mean is one division in double, rounded once to float, as in the reference.
  const double count = static_cast<double>(patch_bytes * patch_rows);
  const double* s = sums.data();
  for (size_t p = 0; p < patches; ++p) out[p] = static_cast<float>(s[p] / count);
}

Napi::Value PatchDifferenceBinding(const Napi::CallbackInfo& info) {
  PatchDifference(DataOf<uint8_t>(info[0]), DataOf<uint8_t>(info[1]),
                  static_cast<size_t>(IntOf(info[2])), static_cast<size_t>(IntOf(info[3])),
                  static_cast<size_t>(IntOf(info[4])), static_cast<size_t>(IntOf(info[5])),
                  DataOf<float>(info[6]));
  return info.Env().Undefined();
}

}  // namespace vla
