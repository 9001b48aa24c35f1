#include "ingest_taps.h"

#include <algorithm>

#if defined(__AVX512VBMI__) && defined(__AVX512BW__) && defined(__AVX512VL__)
// GCC 12's AVX-512 headers trip -Wmaybe-uninitialized on their own `__Y = __Y` placeholders.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#define VLA_TAPS_AVX512 1
#endif

namespace vla {
namespace {

constexpr int kTapShift = 12;
constexpr int32_t kRound = 1 << (kTapShift - 1);
// Output pixels per vector block, and the source bytes one block may read (two registers).
constexpr int kBlock = 16;
constexpr int kSpan = 128;

inline uint8_t Clamp255(int32_t v) { return static_cast<uint8_t>(v < 0 ? 0 : v > 255 ? 255 : v); }

#ifdef VLA_TAPS_AVX512
// The three byte planes of `n` packed RGB8 pixels, 64 pixels (three registers) at a time: plane c
// takes byte 3i + c, from the first two registers by one two-source permute and from the third by
// a masked one. The planes must hold n rounded up to 64 bytes; the last block reads no byte past
// the row (masked loads) and writes zeros past n. A byte at a time, this loop was nearly half of
// the horizontal taps' time at camera sizes.
void Deinterleave(const uint8_t* row, int n, uint8_t* p0, uint8_t* p1, uint8_t* p2) {
  alignas(64) static const struct Indices {
    uint8_t first[3][64], third[3][64];
    Indices() : first(), third() {
      for (int c = 0; c < 3; ++c) {
        for (int i = 0; i < 64; ++i) {
          const int at = 3 * i + c;
          first[c][i] = static_cast<uint8_t>(at & 127);
          third[c][i] = static_cast<uint8_t>(at & 63);
        }
      }
    }
  } kIndices;
  uint8_t* planes[3] = {p0, p1, p2};
  for (int x = 0; x < n; x += 64) {
    const int bytes = 3 * std::min(64, n - x);
    const uint8_t* src = row + 3 * static_cast<size_t>(x);
    auto part = [&](int k) {
      const int left = bytes - 64 * k;
      const __mmask64 m = left >= 64 ? ~__mmask64{0} : left <= 0 ? 0 : (__mmask64{1} << left) - 1;
      return _mm512_maskz_loadu_epi8(m, src + 64 * k);
    };
    const __m512i a = part(0), b = part(1), c = part(2);
    for (int ch = 0; ch < 3; ++ch) {
      // Lanes i whose byte 3i + ch lies in the third register: 3i + ch >= 128.
      const __mmask64 high = ~__mmask64{0} << ((128 - ch + 2) / 3);
      __m512i v = _mm512_permutex2var_epi8(a, _mm512_load_si512(kIndices.first[ch]), b);
      v = _mm512_mask_permutexvar_epi8(v, high, _mm512_load_si512(kIndices.third[ch]), c);
      _mm512_storeu_si512(planes[ch] + x, v);
    }
  }
}
#endif

}  // namespace

bool HorizontalTaps::Prepare(const int32_t* taps, int nh, int dest_w, int mid_w) {
  dest_w_ = dest_w;
  mid_w_ = mid_w;
#ifdef VLA_TAPS_AVX512
  const int blocks = (dest_w + kBlock - 1) / kBlock;
  pairs_ = (nh + 1) / 2;
  base_.assign(blocks, 0);
  index_.assign(static_cast<size_t>(blocks) * pairs_ * 64, 0);
  weight_.assign(static_cast<size_t>(blocks) * pairs_ * kBlock, 0);
  for (int b = 0; b < blocks; ++b) {
    const int x0 = b * kBlock;
    const int n = std::min(kBlock, dest_w - x0);
    int lo = taps[static_cast<size_t>(x0) * (nh + 1)], hi = lo;
    for (int i = 0; i < n; ++i) {
      const int start = taps[static_cast<size_t>(x0 + i) * (nh + 1)];
      lo = std::min(lo, start);
      hi = std::max(hi, start);
    }
    if (hi - lo + nh > kSpan) return false;
    base_[b] = lo;
    for (int j = 0; j < pairs_; ++j) {
      uint8_t* idx = &index_[(static_cast<size_t>(b) * pairs_ + j) * 64];
      int32_t* w = &weight_[(static_cast<size_t>(b) * pairs_ + j) * kBlock];
      for (int i = 0; i < n; ++i) {
        const int32_t* t = taps + static_cast<size_t>(x0 + i) * (nh + 1);
        const int s = t[0] - lo;
        const int32_t w0 = t[1 + 2 * j];
        const bool second = 2 * j + 1 < nh;
        const int32_t w1 = second ? t[2 + 2 * j] : 0;
        if (w0 < INT16_MIN || w0 > INT16_MAX || w1 < INT16_MIN || w1 > INT16_MAX) return false;
        // Word 2i: source pixel of tap 2j, word 2i + 1: tap 2j + 1 (a padded tap reads pixel s
        // with weight 0); their high bytes are zeroed by the permute's mask.
        idx[4 * i] = static_cast<uint8_t>(s + 2 * j);
        idx[4 * i + 2] = static_cast<uint8_t>(second ? s + 2 * j + 1 : s);
        w[i] = static_cast<int32_t>((static_cast<uint32_t>(w1) << 16) |
                                    (static_cast<uint32_t>(w0) & 0xffffu));
      }
    }
  }
  // Three planes, each readable kSpan bytes past any block's first pixel.
  planes_.resize(3 * static_cast<size_t>(mid_w + kSpan));
  return true;
#else
  (void)taps, (void)nh;
  return false;
#endif
}

void HorizontalTaps::Row(const uint8_t* row, uint8_t* out) {
#ifdef VLA_TAPS_AVX512
  {
    const size_t ps = static_cast<size_t>(mid_w_ + kSpan);
    uint8_t* p0 = planes_.data();
    uint8_t* p1 = p0 + ps;
    uint8_t* p2 = p1 + ps;
    Deinterleave(row, mid_w_, p0, p1, p2);
    // Byte 3i + c of 16 pixels from lane c's byte i.
    alignas(64) static const uint8_t kInterleave[64] = {
        0, 16, 32, 1, 17, 33, 2,  18, 34, 3,  19, 35, 4,  20, 36, 5,  21, 37, 6,  22, 38, 7,
        23, 39, 8, 24, 40, 9, 25, 41, 10, 26, 42, 11, 27, 43, 12, 28, 44, 13, 29, 45, 14, 30,
        46, 15, 31, 47, 0, 0, 0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0};
    const __m512i interleave = _mm512_load_si512(kInterleave);
    const __m512i round = _mm512_set1_epi32(kRound);
    const __m512i zero = _mm512_setzero_si512();
    const int blocks = static_cast<int>(base_.size());
    for (int b = 0; b < blocks; ++b) {
      const int n = std::min(kBlock, dest_w_ - b * kBlock);
      const size_t at = static_cast<size_t>(b) * pairs_;
      const __m512i* idx = reinterpret_cast<const __m512i*>(&index_[at * 64]);
      const __m512i* w = reinterpret_cast<const __m512i*>(&weight_[at * kBlock]);
      __m128i rgb[3];
      for (int c = 0; c < 3; ++c) {
        const uint8_t* p = p0 + c * ps + base_[b];
        const __m512i lo = _mm512_loadu_si512(p);
        const __m512i hi = _mm512_loadu_si512(p + 64);
        __m512i acc = round;
        for (int j = 0; j < pairs_; ++j) {
          const __m512i v = _mm512_maskz_permutex2var_epi8(0x5555555555555555ull, lo,
                                                           _mm512_loadu_si512(idx + j), hi);
          acc = _mm512_add_epi32(acc, _mm512_madd_epi16(v, _mm512_loadu_si512(w + j)));
        }
        acc = _mm512_max_epi32(_mm512_srai_epi32(acc, kTapShift), zero);
        rgb[c] = _mm512_cvtusepi32_epi8(acc);
      }
      __m512i z = _mm512_castsi128_si512(rgb[0]);
      z = _mm512_inserti32x4(z, rgb[1], 1);
      z = _mm512_inserti32x4(z, rgb[2], 2);
      _mm512_mask_storeu_epi8(out + 3 * b * kBlock, (uint64_t{1} << (3 * n)) - 1,
                              _mm512_permutexvar_epi8(interleave, z));
    }
    return;
  }
#else
  (void)row, (void)out;
#endif
}

void TransposedBand(const uint8_t* __restrict mid, int m0, int mid_w, const int32_t* v_taps, int nv,
                    int d0, size_t rows, const int32_t* h_taps, int nh, int dest_w, uint8_t* band,
                    size_t out_stride, std::vector<uint8_t>& columns_buf,
                    std::vector<int32_t>& sums_buf) {
  const size_t row_bytes = static_cast<size_t>(mid_w) * 3;
  columns_buf.resize(row_bytes * rows);
  uint8_t* __restrict columns = columns_buf.data();
  sums_buf.resize(std::max(row_bytes, rows));
  int32_t* __restrict sums = sums_buf.data();
  for (size_t y = 0; y < rows; ++y) {
    if (nv > 0) {
      const int32_t* t = v_taps + (d0 + y) * (nv + 1);
      std::fill(sums, sums + row_bytes, kRound);
      for (int k = 0; k < nv; ++k) {
        const int32_t w = t[1 + k];
        const uint8_t* __restrict p = mid + static_cast<size_t>(t[0] + k - m0) * row_bytes;
        for (size_t i = 0; i < row_bytes; ++i) sums[i] += w * p[i];
      }
      for (size_t i = 0; i < row_bytes; ++i) {
        const int32_t v = sums[i] >> kTapShift;
        sums[i] = v < 0 ? 0 : v > 255 ? 255 : v;
      }
      for (size_t x = 0; x < static_cast<size_t>(mid_w); ++x) {
        columns[x * rows + y] = static_cast<uint8_t>(sums[3 * x]);
        columns[(mid_w + x) * rows + y] = static_cast<uint8_t>(sums[3 * x + 1]);
        columns[(2 * mid_w + x) * rows + y] = static_cast<uint8_t>(sums[3 * x + 2]);
      }
    } else {
      const uint8_t* __restrict row = mid + y * row_bytes;
      for (size_t x = 0; x < static_cast<size_t>(mid_w); ++x) {
        columns[x * rows + y] = row[3 * x];
        columns[(mid_w + x) * rows + y] = row[3 * x + 1];
        columns[(2 * mid_w + x) * rows + y] = row[3 * x + 2];
      }
    }
  }
  // Horizontal taps down each column: out column x of channel c from columns start..start+nh.
  for (int c = 0; c < 3; ++c) {
    const uint8_t* __restrict plane = columns + static_cast<size_t>(c) * mid_w * rows;
    for (int x = 0; x < dest_w; ++x) {
      uint8_t* to = band + static_cast<size_t>(x) * 3 + c;
      if (nh > 0) {
        const int32_t* t = h_taps + static_cast<size_t>(x) * (nh + 1);
        std::fill(sums, sums + rows, kRound);
        for (int k = 0; k < nh; ++k) {
          const int32_t w = t[1 + k];
          const uint8_t* __restrict p = plane + static_cast<size_t>(t[0] + k) * rows;
          for (size_t y = 0; y < rows; ++y) sums[y] += w * p[y];
        }
        for (size_t y = 0; y < rows; ++y) to[y * out_stride] = Clamp255(sums[y] >> kTapShift);
      } else {
        const uint8_t* __restrict col = plane + static_cast<size_t>(x) * rows;
        for (size_t y = 0; y < rows; ++y) to[y * out_stride] = col[y];
      }
    }
  }
}

}  // namespace vla
