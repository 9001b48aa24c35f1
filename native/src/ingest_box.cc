#include "ingest_box.h"

#include <algorithm>

#if defined(__AVX512VBMI__) && defined(__AVX512BW__) && defined(__AVX512VL__)
// GCC 12's AVX-512 headers trip -Wmaybe-uninitialized on their own `__Y = __Y` placeholders.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#define VLA_BOX_AVX512 1
#endif

namespace vla {
namespace {

// Output bytes per vector, and source words one permute window covers (two registers).
constexpr int kLanes = 32;
constexpr int kWindow = 64;
constexpr int kMaxWindows = 8;

#ifdef VLA_BOX_AVX512
// floor(x / n) = (x * multiplier) >> (16 + shift) for every x a rounded block mean divides
// (0 <= x <= 255 n + n / 2), in 16-bit lanes (vpmulhuw, then a shift): a quarter of the
// instructions of the 32-bit float estimate and its correction. With multiplier = ceil(2^k / n)
// and e = multiplier * n - 2^k, x * multiplier / 2^k = x / n + x e / (n 2^k), which keeps
// floor(x / n) whenever x e < 2^k. ok is false where no multiplier fits 16 bits or s + n / 2
// could pass 65535 (n > 256): the float path divides then (n = 1, and some n over 185).
Reciprocal16 Reciprocal16For(int32_t n) {
  Reciprocal16 r;
  if (n < 1 || n > 256) return r;
  const uint64_t top = 255 * static_cast<uint64_t>(n) + static_cast<uint64_t>(n >> 1);
  for (int shift = 0; shift <= 16; ++shift) {
    const uint64_t power = uint64_t{1} << (16 + shift);
    const uint64_t m = (power + static_cast<uint64_t>(n) - 1) / static_cast<uint64_t>(n);
    if (m > 0xffff) break;
    if ((m * static_cast<uint64_t>(n) - power) * top < power) {
      r.ok = true;
      r.multiplier = static_cast<uint32_t>(m);
      r.shift = shift;
      return r;
    }
  }
  return r;
}

// sums[j] = acc[j] + acc[j + ch] + ... (kx terms) for j < span: K > 0 fixes kx at compile time
// (the loads unrolled, two independent chains of adds), 0 reads it.
template <int K>
void BlockSums(const uint16_t* __restrict acc, int ch, int kx_rt, int span,
               uint16_t* __restrict sums, PrefetchCursor* spread) {
  const int kx = K > 0 ? K : kx_rt;
  int j = 0;
  for (; j + kLanes <= span; j += kLanes) {
    if (spread != nullptr) spread->Issue(1);
    __m512i s0 = _mm512_loadu_si512(acc + j);
    __m512i s1 = _mm512_setzero_si512();
    for (int i = 1; i < kx; ++i) {
      const __m512i v = _mm512_loadu_si512(acc + j + ch * i);
      if (i & 1) s1 = _mm512_add_epi16(s1, v); else s0 = _mm512_add_epi16(s0, v);
    }
    _mm512_storeu_si512(sums + j, _mm512_add_epi16(s0, s1));
  }
  if (j < span) {
    const __mmask32 m = (__mmask32{1} << (span - j)) - 1;
    __m512i s = _mm512_maskz_loadu_epi16(m, acc + j);
    for (int i = 1; i < kx; ++i) {
      s = _mm512_add_epi16(s, _mm512_maskz_loadu_epi16(m, acc + j + ch * i));
    }
    _mm512_mask_storeu_epi16(sums + j, m, s);
  }
}
#endif

}  // namespace

bool BoxRowVector::Prepare(int ch, int oa, int ob, int oc, int kx, int ky, int full) {
#ifdef VLA_BOX_AVX512
  // A block's sum in 16 bits (kx * ky * 255 <= 65535), as the column sums are.
  if (full <= 0 || kx * ky > 257) return false;
  const int off[3] = {oa, ob, oc};
  const int count = 3 * full;
  const int vectors = (count + kLanes - 1) / kLanes;
  auto word = [&](int o) { return kx * ch * (o / 3) + off[o % 3]; };
  int windows = 1;
  first_.assign(vectors, 0);
  for (int v = 0; v < vectors; ++v) {
    int lo = word(v * kLanes), hi = lo;
    for (int o = v * kLanes; o < std::min(count, (v + 1) * kLanes); ++o) {
      lo = std::min(lo, word(o));
      hi = std::max(hi, word(o));
    }
    first_[v] = lo;
    windows = std::max(windows, (hi - lo) / kWindow + 1);
  }
  if (windows > kMaxWindows) return false;
  ch_ = ch;
  kx_ = kx;
  full_ = full;
  windows_ = windows;
  index_.assign(static_cast<size_t>(vectors) * windows * kLanes, 0);
  lanes_.assign(static_cast<size_t>(vectors) * windows, 0);
  for (int v = 0; v < vectors; ++v) {
    for (int o = v * kLanes; o < std::min(count, (v + 1) * kLanes); ++o) {
      const int rel = word(o) - first_[v];
      const int w = rel / kWindow;
      const int l = o - v * kLanes;
      const size_t at = (static_cast<size_t>(v) * windows + w) * kLanes + l;
      index_[at] = static_cast<uint16_t>(rel % kWindow);
      lanes_[static_cast<size_t>(v) * windows + w] |= 1u << l;
    }
  }
  // Block sums of every word up to the last one read, plus the windows' reach past it (zeros).
  const int last = word(count - 1);
  sums_.assign(static_cast<size_t>(std::max(last + 1, first_[vectors - 1] + windows * kWindow)) +
                   kLanes,
               0);
  return true;
#else
  (void)ch, (void)oa, (void)ob, (void)oc, (void)kx, (void)ky, (void)full;
  return false;
#endif
}

void BoxRowVector::Row(const uint16_t* acc, int acc_length, uint32_t ny, uint8_t* out,
                       PrefetchCursor* spread) {
#ifdef VLA_BOX_AVX512
  const int count = 3 * full_;
  const int vectors = (count + kLanes - 1) / kLanes;
  // Sums of kx pixels (stride ch words) for every word a block reads: word j at sums_[j].
  const int span = kx_ * ch_ * (full_ - 1) + ch_;
  uint16_t* sums = sums_.data();
  switch (kx_) {
#define VLA_BLOCK_SUMS(K) \
  case K: BlockSums<K>(acc, ch_, K, span, sums, spread); break;
    VLA_BLOCK_SUMS(1)
    VLA_BLOCK_SUMS(2)
    VLA_BLOCK_SUMS(3)
    VLA_BLOCK_SUMS(4)
    VLA_BLOCK_SUMS(5)
    VLA_BLOCK_SUMS(6)
    VLA_BLOCK_SUMS(7)
    VLA_BLOCK_SUMS(8)
    VLA_BLOCK_SUMS(9)
    VLA_BLOCK_SUMS(10)
    VLA_BLOCK_SUMS(11)
    VLA_BLOCK_SUMS(12)
    VLA_BLOCK_SUMS(13)
    VLA_BLOCK_SUMS(14)
    VLA_BLOCK_SUMS(15)
    VLA_BLOCK_SUMS(16)
#undef VLA_BLOCK_SUMS
    default: BlockSums<0>(acc, ch_, kx_, span, sums, spread);
  }
  (void)acc_length;
  // Output vector v's 32 block sums in output order: one masked word permute per window.
  auto gather = [&](int v) {
    const uint16_t* base = sums + first_[v];
    __m512i r = _mm512_setzero_si512();
    for (int w = 0; w < windows_; ++w) {
      const __mmask32 lanes = lanes_[static_cast<size_t>(v) * windows_ + w];
      if (lanes == 0) continue;
      const size_t at = (static_cast<size_t>(v) * windows_ + w) * kLanes;
      const __m512i idx = _mm512_loadu_si512(&index_[at]);
      const __m512i lo = _mm512_loadu_si512(base + w * kWindow);
      const __m512i hi = _mm512_loadu_si512(base + w * kWindow + kLanes);
      r = _mm512_mask_mov_epi16(r, lanes, _mm512_permutex2var_epi16(lo, idx, hi));
    }
    return r;
  };
  const int32_t n = static_cast<int32_t>(static_cast<uint32_t>(kx_) * ny);
  // Every box of a frame but the last row's has ky rows: worked out once per size, not per row.
  if (n != reciprocal_n_) {
    reciprocal_ = Reciprocal16For(n);
    reciprocal_n_ = n;
  }
  const Reciprocal16& r16 = reciprocal_;
  if (r16.ok) {
    // floor((s + n / 2) / n) in 16-bit lanes: s + n / 2 fits (n <= 256), and the multiplier is
    // exact over every value a block sum can take.
    const __m512i half16 = _mm512_set1_epi16(static_cast<int16_t>(n >> 1));
    const __m512i m16 = _mm512_set1_epi16(static_cast<int16_t>(r16.multiplier));
    const __m128i shift = _mm_cvtsi32_si128(r16.shift);
    for (int v = 0; v < vectors; ++v) {
      if (spread != nullptr) spread->Share(vectors - v);
      const __m512i x = _mm512_add_epi16(gather(v), half16);
      const __m512i q = _mm512_srl_epi16(_mm512_mulhi_epu16(x, m16), shift);
      const int left = count - v * kLanes;
      const __mmask32 m = left >= kLanes ? ~__mmask32{0} : (__mmask32{1} << left) - 1;
      _mm256_mask_storeu_epi8(out + v * kLanes, m, _mm512_cvtepi16_epi8(q));
    }
    return;
  }
  const __m512i half = _mm512_set1_epi32(n >> 1);
  const __m512i divisor = _mm512_set1_epi32(n);
  const __m512 inverse = _mm512_set1_ps(1.0f / static_cast<float>(n));
  const __m512i one = _mm512_set1_epi32(1);
  const __m512i zero = _mm512_setzero_si512();
  // floor(x / n) from a float estimate that is off by at most one, corrected exactly.
  auto divide = [&](__m256i words) {
    const __m512i x = _mm512_add_epi32(_mm512_cvtepu16_epi32(words), half);
    __m512i q = _mm512_cvttps_epi32(_mm512_mul_ps(_mm512_cvtepi32_ps(x), inverse));
    const __m512i r = _mm512_sub_epi32(x, _mm512_mullo_epi32(q, divisor));
    q = _mm512_mask_sub_epi32(q, _mm512_cmplt_epi32_mask(r, zero), q, one);
    q = _mm512_mask_add_epi32(q, _mm512_cmpge_epi32_mask(r, divisor), q, one);
    return _mm512_cvtepi32_epi8(q);
  };
  for (int v = 0; v < vectors; ++v) {
    if (spread != nullptr) spread->Share(vectors - v);
    const __m512i r = gather(v);
    const __m128i b0 = divide(_mm512_castsi512_si256(r));
    const __m128i b1 = divide(_mm512_extracti64x4_epi64(r, 1));
    const __m256i bytes = _mm256_inserti128_si256(_mm256_castsi128_si256(b0), b1, 1);
    const int left = count - v * kLanes;
    const __mmask32 m = left >= kLanes ? ~__mmask32{0} : (__mmask32{1} << left) - 1;
    _mm256_mask_storeu_epi8(out + v * kLanes, m, bytes);
  }
#else
  (void)acc, (void)acc_length, (void)ny, (void)out, (void)spread;
#endif
}

}  // namespace vla
