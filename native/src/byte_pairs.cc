#include "byte_pairs.h"

#include <algorithm>

#if defined(__AVX2__)
#if defined(__GNUC__) && !defined(__clang__)
// GCC 12's AVX-512 headers trip -Wmaybe-uninitialized on their own `__Y = __Y` placeholders.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
#endif

#include "typed_array.h"

namespace vla {
namespace {

// Bytes between two looks at the limit, so that a file past it stops early. Every path compares
// every byte without a branch on its value: a file crowded with the first byte costs what any file
// of its length does (figures in native/README.md, "Speed").
constexpr size_t kBlock = 4096;

}  // namespace

size_t CountBytePairs(const uint8_t* data, size_t length, size_t from, uint8_t first,
                      uint8_t second, size_t limit) {
  if (length < 2) return 0;
  // Pairs start before `end`; data[i + 1] is read for each.
  const size_t end = length - 1;
  size_t count = 0;
  size_t i = from;
#if defined(__AVX512BW__)
  const __m512i a = _mm512_set1_epi8(static_cast<char>(first));
  const __m512i b = _mm512_set1_epi8(static_cast<char>(second));
  while (i + 64 <= end) {
    const size_t stop = std::min(end - 63, i + kBlock);
    for (; i < stop; i += 64) {
      const __mmask64 m = _mm512_cmpeq_epi8_mask(_mm512_loadu_si512(data + i), a) &
                          _mm512_cmpeq_epi8_mask(_mm512_loadu_si512(data + i + 1), b);
      count += static_cast<size_t>(_mm_popcnt_u64(m));
    }
    if (count > limit) return limit + 1;
  }
#elif defined(__AVX2__)
  const __m256i a = _mm256_set1_epi8(static_cast<char>(first));
  const __m256i b = _mm256_set1_epi8(static_cast<char>(second));
  while (i + 32 <= end) {
    const size_t stop = std::min(end - 31, i + kBlock);
    for (; i < stop; i += 32) {
      const __m256i here = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(data + i));
      const __m256i next = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(data + i + 1));
      const __m256i both =
          _mm256_and_si256(_mm256_cmpeq_epi8(here, a), _mm256_cmpeq_epi8(next, b));
      count += static_cast<size_t>(
          __builtin_popcount(static_cast<unsigned>(_mm256_movemask_epi8(both))));
    }
    if (count > limit) return limit + 1;
  }
#endif
  // The rest (every byte on the baseline, where the compiler vectorises this loop).
  while (i < end) {
    const size_t stop = std::min(end, i + kBlock);
    uint32_t block = 0;
    for (; i < stop; ++i) {
      block += static_cast<uint32_t>((data[i] == first) & (data[i + 1] == second));
    }
    count += block;
    if (count > limit) return limit + 1;
  }
  return count;
}
Napi::Value CountBytePairsBinding(const Napi::CallbackInfo& info) {
  const Elements<uint8_t> bytes = ElementsOf<uint8_t>(info[0]);
  const size_t from = SizeOf(info[1]);
  const size_t limit = SizeOf(info[4]);
  const size_t count =
      CountBytePairs(bytes.data, bytes.length, from, static_cast<uint8_t>(IntOf(info[2])),
                     static_cast<uint8_t>(IntOf(info[3])), limit);
  return Napi::Number::New(info.Env(), static_cast<double>(count));
}

}  // namespace vla
