#include "topk.h"

#include <algorithm>
#include <cmath>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif
#include <vector>

#include "typed_array.h"

namespace vla {
namespace {

#if defined(__AVX512F__)

// AVX-512: each score becomes an unsigned key in the same order (NaN lowest, -0 equal to +0), the
// k-th largest key T is found bit by bit from the top (the largest T with at least k keys >= T,
// stopping early once exactly k keys are >= the candidate), and one pass writes the indices with a
// key above T and, in index order, as many with a key equal to T as are still needed.

// Keys of 16 scores: the float bits, made to compare as unsigned integers in the scores' order.
__m512i Keys(__m512 x) {
  const __m512i sign = _mm512_set1_epi32(INT32_MIN);
  __m512i bits = _mm512_castps_si512(x);
  bits = _mm512_mask_mov_epi32(bits, _mm512_cmpeq_epi32_mask(bits, sign), _mm512_setzero_si512());
  // Positive: flip the sign bit; negative: flip every bit.
  const __mmask16 negative = _mm512_cmplt_epi32_mask(bits, _mm512_setzero_si512());
  const __m512i keys =
      _mm512_xor_si512(bits, _mm512_mask_mov_epi32(sign, negative, _mm512_set1_epi32(-1)));
  // NaN: 0, below every number (whose keys are at least 0x007fffff, -Infinity's).
  return _mm512_maskz_mov_epi32(_mm512_cmp_ps_mask(x, x, _CMP_ORD_Q), keys);
}

// How many of the keys (padding keys are 0) are >= at_least (> 0).
size_t CountAtLeast(const uint32_t* keys, size_t vectors, uint32_t at_least) {
  const __m512i bound = _mm512_set1_epi32(static_cast<int>(at_least));
  size_t count = 0;
  for (size_t v = 0; v < vectors; ++v) {
    count += static_cast<size_t>(
        __builtin_popcount(_mm512_cmpge_epu32_mask(_mm512_load_si512(keys + 16 * v), bound)));
  }
  return count;
}

void TopKAvx512(const float* scores, size_t n, size_t k, int32_t* out) {
  thread_local std::vector<uint32_t> storage;
  const size_t vectors = (n + 15) / 16;
  if (storage.size() < vectors * 16 + 16) storage.resize(vectors * 16 + 16);
  uint32_t* keys = reinterpret_cast<uint32_t*>((reinterpret_cast<uintptr_t>(storage.data()) + 63) &
                                               ~static_cast<uintptr_t>(63));
  for (size_t v = 0; v < vectors; ++v) {
    const size_t left = n - 16 * v;
    const __mmask16 valid = left >= 16 ? 0xffff : static_cast<__mmask16>((1u << left) - 1);
    _mm512_store_si512(
        keys + 16 * v,
        _mm512_maskz_mov_epi32(valid, Keys(_mm512_maskz_loadu_ps(valid, scores + 16 * v))));
  }
  uint32_t threshold = 0;
  bool exact = k == n;
  for (int bit = 31; bit >= 0 && !exact; --bit) {
    const uint32_t candidate = threshold | (1u << bit);
    const size_t count = CountAtLeast(keys, vectors, candidate);
    if (count >= k) {
      threshold = candidate;
      exact = count == k;
    }
  }
  // Exact: the keys >= threshold are the k largest. Else threshold is the k-th largest key, tied:
  // take the keys above it, then the lowest indices of those equal to it.
  // (threshold <= 0xff800000, the key of +Infinity, so threshold + 1 does not wrap.)
  size_t need = exact ? 0 : k - CountAtLeast(keys, vectors, threshold + 1);
  const __m512i bound = _mm512_set1_epi32(static_cast<int>(threshold));
  __m512i index = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i step = _mm512_set1_epi32(16);
  size_t w = 0;
  for (size_t v = 0; v < vectors; ++v, index = _mm512_add_epi32(index, step)) {
    const __m512i key = _mm512_load_si512(keys + 16 * v);
    const size_t left = n - 16 * v;
    const __mmask16 valid = left >= 16 ? 0xffff : static_cast<__mmask16>((1u << left) - 1);
    __mmask16 take;
    if (exact) {
      take = _mm512_mask_cmpge_epu32_mask(valid, key, bound);
    } else {
      take = _mm512_cmpgt_epu32_mask(key, bound);
      if (need > 0) {
        unsigned equal = _mm512_mask_cmpeq_epu32_mask(valid, key, bound);
        while (equal != 0 && need > 0) {
          take |= static_cast<__mmask16>(equal & (0u - equal));
          equal &= equal - 1;
          --need;
        }
      }
    }
    const unsigned count = static_cast<unsigned>(__builtin_popcount(take));
    _mm512_mask_storeu_epi32(out + w, static_cast<__mmask16>((1u << count) - 1),
                             _mm512_maskz_compress_epi32(take, index));
    w += count;
  }
}

#else

// The strict total order of topK: larger score first, NaN last, then lower index first.
struct Ranks {
  const float* scores;
  bool Better(int32_t i, int32_t j) const {
    const float a = scores[i];
    const float b = scores[j];
    const bool a_nan = std::isnan(a);
    const bool b_nan = std::isnan(b);
    if (a_nan || b_nan) return a_nan == b_nan ? i < j : b_nan;
    if (a != b) return a > b;
    return i < j;
  }
  // Heap order: the worst kept index sits on top.
  bool operator()(int32_t i, int32_t j) const { return Better(i, j); }
};

// A heap of the k best indices seen (the worst on top), then the kept ones in index order.
void TopKHeap(const float* scores, size_t n, size_t k, int32_t* out) {
  thread_local std::vector<int32_t> heap;
  thread_local std::vector<uint8_t> kept;
  if (kept.size() < n) kept.resize(n);
  heap.resize(k);
  const Ranks ranks{scores};
  for (size_t i = 0; i < k; ++i) heap[i] = static_cast<int32_t>(i);
  std::make_heap(heap.begin(), heap.end(), ranks);
  for (size_t i = k; i < n; ++i) {
    const int32_t candidate = static_cast<int32_t>(i);
    if (ranks.Better(candidate, heap.front())) {
      std::pop_heap(heap.begin(), heap.end(), ranks);
      heap.back() = candidate;
      std::push_heap(heap.begin(), heap.end(), ranks);
    }
  }
  std::fill(kept.begin(), kept.begin() + n, 0);
  for (const int32_t i : heap) kept[i] = 1;
  size_t w = 0;
  for (size_t i = 0; i < n; ++i) {
    if (kept[i]) out[w++] = static_cast<int32_t>(i);
  }
}

#endif  // __AVX512F__

}  // namespace

void TopK(const float* scores, size_t n, size_t k, int32_t* out) {
#if defined(__AVX512F__)
  TopKAvx512(scores, n, k, out);
#else
  TopKHeap(scores, n, k, out);
#endif
}

Napi::Value TopKBinding(const Napi::CallbackInfo& info) {
  const Elements<float> scores = ElementsOf<float>(info[0]);
  TopK(scores.data, scores.length, static_cast<size_t>(IntOf(info[1])), DataOf<int32_t>(info[2]));
  return info.Env().Undefined();
}

}  // namespace vla
