#include "ingest.h"

#include <algorithm>
#include <cstring>
#include <vector>

#if defined(__AVX512BW__)
// GCC 12's AVX-512 headers trip -Wmaybe-uninitialized on their own `__Y = __Y` placeholders.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#endif

#include "ingest_box.h"
#include "ingest_prefetch.h"
#include "ingest_taps.h"
#include "normalize.h"
#include "typed_array.h"

namespace vla {
namespace {

// Must match src/native/ingest-layout.ts.
enum Kind { kInterleaved8 = 0, kInterleaved16, kPacked422, kSemiplanar420, kBayerSuper, kBayerBilinear };
enum Field {
  kKind = 0, kChannels, kA, kB, kC, kBigEndian, kSrcWidth, kSrcHeight, kStep, kCropX, kCropY,
  kCropWidth, kCropHeight, kKx, kKy, kMidWidth, kMidHeight, kOutWidth, kOutHeight, kDestX, kDestY,
  kDestWidth, kDestHeight, kVTaps, kHTaps
};
constexpr int kTapShift = 12;
constexpr int32_t kRound = 1 << (kTapShift - 1);

inline uint8_t Clamp255(int32_t v) { return static_cast<uint8_t>(v < 0 ? 0 : v > 255 ? 255 : v); }

// Exact division by a block size without a divide instruction (one per output byte otherwise
// dominates the kernel): q = (x * m) >> 40 with m = floor(2^40 / n) + 1 equals floor(x / n)
// whenever x * n < 2^40, which holds for x <= 256 * n and n < 2^15 (larger n divide).
struct Divider {
  uint64_t n = 0, m = 0;
  void Set(uint32_t count) {
    if (count != n) {
      n = count;
      m = (uint64_t{1} << 40) / count + 1;
    }
  }
  uint32_t Div(uint32_t x) const {
    return n < (1u << 15) ? static_cast<uint32_t>((x * m) >> 40) : static_cast<uint32_t>(x / n);
  }
};

// Rounded mean, as the reference's Math.floor((s + (n >> 1)) / n) for non-negative s.
inline uint8_t Mean(uint32_t s, const Divider& d) {
  return static_cast<uint8_t>(d.Div(s + static_cast<uint32_t>(d.n >> 1)));
}

inline void YuvToRgb(int32_t y, int32_t u, int32_t v, uint8_t* o) {
  const int32_t c = 298 * (y - 16);
  const int32_t d = u - 128;
  const int32_t e = v - 128;
  o[0] = Clamp255((c + 409 * e + 128) >> 8);
  o[1] = Clamp255((c - 100 * d - 208 * e + 128) >> 8);
  o[2] = Clamp255((c + 516 * d + 128) >> 8);
}

inline int Reflect(int i, int n) { return i < 0 ? -i : i >= n ? 2 * n - 2 - i : i; }

void DemosaicRow(const uint8_t* src, int step, int width, int height, int y, int r_pos, int b_pos,
                 uint8_t* out) {
  const uint8_t* up = src + static_cast<size_t>(Reflect(y - 1, height)) * step;
  const uint8_t* row = src + static_cast<size_t>(y) * step;
  const uint8_t* down = src + static_cast<size_t>(Reflect(y + 1, height)) * step;
  const int py = (y & 1) << 1;
  const bool red_row = (r_pos >> 1) == (py >> 1);
  for (int x = 0; x < width; ++x) {
    const int l = Reflect(x - 1, width);
    const int r = Reflect(x + 1, width);
    const int here = row[x];
    const int horiz = row[l] + row[r];
    const int vert = up[x] + down[x];
    const int cross = horiz + vert;
    const int diag = up[l] + up[r] + down[l] + down[r];
    const int pos = py | (x & 1);
    int red, green, blue;
    if (pos == r_pos) {
      red = here;
      green = (cross + 2) >> 2;
      blue = (diag + 2) >> 2;
    } else if (pos == b_pos) {
      blue = here;
      green = (cross + 2) >> 2;
      red = (diag + 2) >> 2;
    } else {
      green = here;
      red = ((red_row ? horiz : vert) + 1) >> 1;
      blue = ((red_row ? vert : horiz) + 1) >> 1;
    }
    out[3 * x] = static_cast<uint8_t>(red);
    out[3 * x + 1] = static_cast<uint8_t>(green);
    out[3 * x + 2] = static_cast<uint8_t>(blue);
  }
}

void NarrowRow(const uint8_t* src, int count, bool big_endian, uint8_t* out) {
  const int hi = big_endian ? 0 : 1;
  const int lo = 1 - hi;
  for (int i = 0; i < count; ++i) {
    const uint32_t v = (static_cast<uint32_t>(src[2 * i + hi]) << 8) | src[2 * i + lo];
    out[i] = static_cast<uint8_t>((v * 2 + 257) / 514);
  }
}

// Column sums of up to MAX_BOX (257, src/ingest/raw-kernel.ts) rows of bytes: 257 * 255 fits in
// 16 bits, so twice the lanes per vector of 32-bit sums and half the memory traffic.
inline void AddRow(uint16_t* __restrict acc, const uint8_t* __restrict src, int length) {
  for (int i = 0; i < length; ++i) acc[i] = static_cast<uint16_t>(acc[i] + src[i]);
}

// acc[i] = the sum of src[r * step + i] over `rows` rows, for i in [from, to): the rows of a box
// summed in registers per 64 columns (one store per column instead of one per row). The same
// columns of the next box's first `next_rows` rows (at `next`; none when null) are prefetched
// meanwhile (see PrefetchLine), where the AVX-512 box path does not spread them instead.

inline void ColumnSums(const uint8_t* __restrict src, size_t step, int rows, int from, int to,
                       uint16_t* __restrict acc, const uint8_t* next, int next_rows) {
  if (next == nullptr) next_rows = 0;
#if defined(__AVX512BW__)
  int i = from;
  for (; i + 64 <= to; i += 64) {
    __m512i lo = _mm512_setzero_si512(), hi = _mm512_setzero_si512();
    const uint8_t* p = src + i;
    for (int r = 0; r < rows; ++r, p += step) {
      if (r < next_rows) PrefetchLine(next + r * step + i);
      const __m512i v = _mm512_loadu_si512(p);
      lo = _mm512_add_epi16(lo, _mm512_cvtepu8_epi16(_mm512_castsi512_si256(v)));
      hi = _mm512_add_epi16(hi, _mm512_cvtepu8_epi16(_mm512_extracti64x4_epi64(v, 1)));
    }
    _mm512_storeu_si512(acc + i, lo);
    _mm512_storeu_si512(acc + i + 32, hi);
  }
  for (; i < to; i += 32) {
    const __mmask32 m = to - i >= 32 ? ~__mmask32{0} : (__mmask32{1} << (to - i)) - 1;
    __m512i sum = _mm512_setzero_si512();
    const uint8_t* p = src + i;
    for (int r = 0; r < rows; ++r, p += step) {
      sum = _mm512_add_epi16(sum, _mm512_cvtepu8_epi16(_mm256_maskz_loadu_epi8(m, p)));
    }
    _mm512_mask_storeu_epi16(acc + i, m, sum);
  }
#else
  // The same order for the portable builds: a fixed-size block the compiler keeps in registers.
  int i = from;
  for (; i + 32 <= to; i += 32) {
    uint16_t t[32] = {};
    const uint8_t* p = src + i;
    for (int r = 0; r < rows; ++r, p += step) {
      if (r < next_rows && (i & 63) == (from & 63)) PrefetchLine(next + r * step + i);
      for (int k = 0; k < 32; ++k) t[k] = static_cast<uint16_t>(t[k] + p[k]);
    }
    std::memcpy(acc + i, t, sizeof t);
  }
  std::fill(acc + i, acc + to, uint16_t{0});
  for (int r = 0; r < rows; ++r) AddRow(acc + i, src + r * step + i, to - i);
#endif
}

// One intermediate row of an interleaved (RGB-like) source from its column sums `acc`: the box
// mean of each block of kx pixels. KX > 0 fixes kx at compile time (the compiler unrolls the
// block into straight-line adds; this loop is most of the kernel at camera sizes); 0 reads it.
template <int KX>
void BoxRowInterleaved(const uint16_t* acc, int ch, int oa, int ob, int oc, int crop_x, int crop_w,
                       int kx_rt, int mid_w, uint32_t ny, int from, uint8_t* o) {
  const int kx = KX > 0 ? KX : kx_rt;
  const int full = std::min(mid_w, crop_w / kx);
  Divider d;
  d.Set(static_cast<uint32_t>(kx) * ny);
  from = std::min(from, full);
  o += 3 * from;
  const uint16_t* p = acc + (static_cast<size_t>(crop_x) + static_cast<size_t>(from) * kx) * ch;
  for (int mx = from; mx < full; ++mx, o += 3) {
    uint32_t s0 = 0, s1 = 0, s2 = 0;
    for (int x = 0; x < kx; ++x, p += ch) {
      s0 += p[oa];
      s1 += p[ob];
      s2 += p[oc];
    }
    o[0] = Mean(s0, d);
    o[1] = Mean(s1, d);
    o[2] = Mean(s2, d);
  }
  for (int mx = full; mx < mid_w; ++mx, o += 3) {
    const int x0 = crop_x + mx * kx;
    const int x1 = std::min(x0 + kx, crop_x + crop_w);
    d.Set(static_cast<uint32_t>(x1 - x0) * ny);
    uint32_t s0 = 0, s1 = 0, s2 = 0;
    for (int x = x0; x < x1; ++x) {
      const uint16_t* q = acc + x * ch;
      s0 += q[oa];
      s1 += q[ob];
      s2 += q[oc];
    }
    o[0] = Mean(s0, d);
    o[1] = Mean(s1, d);
    o[2] = Mean(s2, d);
  }
}

// The box mean of pixels [x0, x0 + n) of a YUV or Bayer-superpixel row's column sums (A1: the
// chroma rows of NV12/NV21, the odd mosaic rows of Bayer), converted to RGB into o[0..2]. N > 0
// fixes n at compile time (unrolled), 0 reads n_rt.
template <int KIND, int N>
inline void BlockYuvBayer(const uint16_t* A0, const uint16_t* A1, int a, int b, int c, int x0,
                          int n_rt, uint32_t ny, Divider& d, Divider& d2, uint8_t* o) {
  const int n = N > 0 ? N : n_rt;
  d.Set(static_cast<uint32_t>(n) * ny);
  if (KIND == kPacked422) {
    uint32_t sy = 0, su = 0, sv = 0;
    for (int i = 0; i < n; ++i) {
      const int x = x0 + i;
      const int q = (x >> 1) << 2;
      sy += A0[2 * x + a];
      su += A0[q + b];
      sv += A0[q + c];
    }
    YuvToRgb(Mean(sy, d), Mean(su, d), Mean(sv, d), o);
  } else if (KIND == kSemiplanar420) {
    uint32_t sy = 0, su = 0, sv = 0;
    for (int i = 0; i < n; ++i) {
      const int x = x0 + i;
      const int q = (x >> 1) << 1;
      sy += A0[x];
      su += A1[q + b];
      sv += A1[q + c];
    }
    YuvToRgb(Mean(sy, d), Mean(su, d), Mean(sv, d), o);
  } else {
    uint32_t sums[4] = {0, 0, 0, 0};
    for (int i = 0; i < n; ++i) {
      const int x = x0 + i;
      sums[0] += A0[2 * x];
      sums[1] += A0[2 * x + 1];
      sums[2] += A1[2 * x];
      sums[3] += A1[2 * x + 1];
    }
    const uint32_t red = sums[a];
    const uint32_t blue = sums[c];
    const uint32_t green = sums[0] + sums[1] + sums[2] + sums[3] - red - blue;
    d2.Set(2 * d.n);
    o[0] = Mean(red, d);
    o[1] = Mean(green, d2);
    o[2] = Mean(blue, d);
  }
}

// One intermediate row of a YUV or Bayer-superpixel source (see BoxRowInterleaved).
template <int KIND, int KX>
void BoxRowYuvBayer(const uint16_t* A0, const uint16_t* A1, int a, int b, int c, int crop_x,
                    int crop_w, int kx_rt, int mid_w, uint32_t ny, uint8_t* o) {
  const int kx = KX > 0 ? KX : kx_rt;
  const int full = std::min(mid_w, crop_w / kx);
  Divider d, d2;
  for (int mx = 0; mx < full; ++mx, o += 3) {
    BlockYuvBayer<KIND, KX>(A0, A1, a, b, c, crop_x + mx * kx, kx, ny, d, d2, o);
  }
  for (int mx = full; mx < mid_w; ++mx, o += 3) {
    const int x0 = crop_x + mx * kx;
    const int n = std::min(x0 + kx, crop_x + crop_w) - x0;
    BlockYuvBayer<KIND, 0>(A0, A1, a, b, c, x0, n, ny, d, d2, o);
  }
}

struct Scratch {
  std::vector<uint16_t> acc0, acc1;
  std::vector<uint8_t> row, mid, vertical;
  std::vector<int32_t> sums;
  HorizontalTaps taps;
  BoxRowVector box;
};

// Step 1 of the plan: box-average and colour-convert intermediate rows [m0, m1) of the crop
// rectangle into `mid` (row my at my - m0).
void BoxConvert(const uint8_t* src, const int32_t* h, Scratch& s, int m0, int m1) {
  const int kind = h[kKind];
  const int channels = h[kChannels];
  const int a = h[kA], b = h[kB], c = h[kC];
  const int width = h[kSrcWidth], height = h[kSrcHeight], step = h[kStep];
  const int crop_x = h[kCropX], crop_y = h[kCropY];
  const int crop_w = h[kCropWidth], crop_h = h[kCropHeight];
  const int kx = h[kKx], ky = h[kKy];
  const int mid_w = h[kMidWidth];
  int row_len;
  switch (kind) {
    case kInterleaved8:
    case kInterleaved16: row_len = width * channels; break;
    case kPacked422: row_len = width * 2; break;
    case kBayerBilinear: row_len = width * 3; break;
    default: row_len = width;
  }
  s.acc0.resize(row_len);
  s.acc1.resize(row_len);
  s.row.resize(row_len);
  uint16_t* A0 = s.acc0.data();
  uint16_t* A1 = s.acc1.data();
  uint8_t* scratch = s.row.data();
  uint8_t* mid = s.mid.data();
  const size_t st = static_cast<size_t>(step);
  const int full_blocks = std::min(mid_w, crop_w / kx);
  bool vector_box = false;
  if (kind == kInterleaved8 || kind == kInterleaved16 || kind == kBayerBilinear) {
    const bool demosaiced = kind == kBayerBilinear;
    vector_box = s.box.Prepare(demosaiced ? 3 : channels, demosaiced ? 0 : a, demosaiced ? 1 : b,
                               demosaiced ? 2 : c, kx, ky, full_blocks);
  }
  for (int my = m0; my < m1; ++my) {
    const int y0 = crop_y + my * ky;
    const int y1 = std::min(y0 + ky, crop_y + crop_h);
    const uint32_t ny = static_cast<uint32_t>(y1 - y0);
    // The next box's rows (of this band), prefetched while this one is summed, or, on the
    // vector box's path, while its means are computed (see ingest_prefetch.h).
    const int next_rows = my + 1 < m1 ? std::min(y1 + ky, crop_y + crop_h) - y1 : 0;
    auto next = [&](size_t offset) { return next_rows > 0 ? src + offset : nullptr; };
    const bool spread_next = vector_box && kind == kInterleaved8;
    PrefetchCursor spread(spread_next ? next(y1 * st) : nullptr, st, next_rows,
                          crop_x * channels, (crop_x + crop_w) * channels);
    if (kind == kInterleaved8) {
      // Only the crop's columns: a centre crop of a wide frame reads a quarter less.
      ColumnSums(src + y0 * st, st, y1 - y0, crop_x * channels, (crop_x + crop_w) * channels, A0,
                 spread_next ? nullptr : next(y1 * st), next_rows);
    } else if (kind == kPacked422) {
      ColumnSums(src + y0 * st, st, y1 - y0, 0, row_len, A0, next(y1 * st), next_rows);
    } else if (kind == kBayerSuper) {
      // The even and the odd mosaic rows of the box's superpixel rows.
      ColumnSums(src + 2 * y0 * st, 2 * st, y1 - y0, 0, row_len, A0, next(2 * y1 * st),
                 next_rows);
      ColumnSums(src + (2 * y0 + 1) * st, 2 * st, y1 - y0, 0, row_len, A1,
                 next((2 * y1 + 1) * st), next_rows);
    } else {
      std::fill(A0, A0 + row_len, uint16_t{0});
      if (kind == kSemiplanar420) std::fill(A1, A1 + row_len, uint16_t{0});
      for (int y = y0; y < y1; ++y) {
        switch (kind) {
          case kInterleaved16:
            NarrowRow(src + y * st, row_len, h[kBigEndian] == 1, scratch);
            AddRow(A0, scratch, row_len);
            break;
          case kBayerBilinear:
            DemosaicRow(src, step, width, height, y, a, c, scratch);
            AddRow(A0, scratch, row_len);
            break;
          default:  // kSemiplanar420
            AddRow(A0, src + y * st, row_len);
            AddRow(A1, src + static_cast<size_t>(height) * st + (y >> 1) * st, row_len);
        }
      }
    }
    uint8_t* o = mid + static_cast<size_t>(my - m0) * mid_w * 3;
    if (kind == kInterleaved8 || kind == kInterleaved16 || kind == kBayerBilinear) {
      // A demosaiced row is RGB already; a, b, c then name Bayer sites, not channels.
      const bool demosaiced = kind == kBayerBilinear;
      const int ch = demosaiced ? 3 : channels;
      const int oa = demosaiced ? 0 : a, ob = demosaiced ? 1 : b, oc = demosaiced ? 2 : c;
      // Whole blocks through the vector path where there is one; the rest (a partial last block,
      // or every block) through the scalar loop.
      int done = 0;
      if (vector_box) {
        s.box.Row(A0 + static_cast<size_t>(crop_x) * ch, row_len - crop_x * ch, ny, o, &spread);
        spread.Flush();
        done = full_blocks;
      }
      switch (kx) {
#define VLA_BOX_ROW(K) \
  case K: BoxRowInterleaved<K>(A0, ch, oa, ob, oc, crop_x, crop_w, kx, mid_w, ny, done, o); break;
        VLA_BOX_ROW(1)
        VLA_BOX_ROW(2)
        VLA_BOX_ROW(3)
        VLA_BOX_ROW(4)
        VLA_BOX_ROW(5)
        VLA_BOX_ROW(6)
        VLA_BOX_ROW(7)
        VLA_BOX_ROW(8)
        VLA_BOX_ROW(9)
        VLA_BOX_ROW(10)
        VLA_BOX_ROW(11)
        VLA_BOX_ROW(12)
        VLA_BOX_ROW(13)
        VLA_BOX_ROW(14)
        VLA_BOX_ROW(15)
        VLA_BOX_ROW(16)
#undef VLA_BOX_ROW
        default: BoxRowInterleaved<0>(A0, ch, oa, ob, oc, crop_x, crop_w, kx, mid_w, ny, done, o);
      }
      continue;
    }
    switch (kind * 32 + std::min(kx, 17)) {
#define VLA_BOX_ROW(KIND, K)                                                               \
  case KIND * 32 + K:                                                                      \
    BoxRowYuvBayer<KIND, (K < 17 ? K : 0)>(A0, A1, a, b, c, crop_x, crop_w, kx, mid_w, ny, o); \
    break;
#define VLA_BOX_ROWS(KIND)                                                                 \
  VLA_BOX_ROW(KIND, 1)                                                                     \
  VLA_BOX_ROW(KIND, 2)                                                                     \
  VLA_BOX_ROW(KIND, 3)                                                                     \
  VLA_BOX_ROW(KIND, 4)                                                                     \
  VLA_BOX_ROW(KIND, 5)                                                                     \
  VLA_BOX_ROW(KIND, 6)                                                                     \
  VLA_BOX_ROW(KIND, 7)                                                                     \
  VLA_BOX_ROW(KIND, 8)                                                                     \
  VLA_BOX_ROW(KIND, 9)                                                                     \
  VLA_BOX_ROW(KIND, 10)                                                                    \
  VLA_BOX_ROW(KIND, 11)                                                                    \
  VLA_BOX_ROW(KIND, 12)                                                                    \
  VLA_BOX_ROW(KIND, 13)                                                                    \
  VLA_BOX_ROW(KIND, 14)                                                                    \
  VLA_BOX_ROW(KIND, 15)                                                                    \
  VLA_BOX_ROW(KIND, 16)                                                                    \
  VLA_BOX_ROW(KIND, 17)
      VLA_BOX_ROWS(kPacked422)
      VLA_BOX_ROWS(kSemiplanar420)
      VLA_BOX_ROWS(kBayerSuper)
#undef VLA_BOX_ROWS
#undef VLA_BOX_ROW
      default: break;
    }
  }
}

}  // namespace

void IngestRows(const IngestJob& job, int r0, int r1) {
  thread_local Scratch s;
  const int32_t* header = job.header;
  const int mid_w = header[kMidWidth];
  const int out_w = header[kOutWidth], out_h = header[kOutHeight];
  const int dest_x = header[kDestX], dest_y = header[kDestY];
  const int dest_w = header[kDestWidth], dest_h = header[kDestHeight];
  const int nv = header[kVTaps], nh = header[kHTaps];
  const size_t row_bytes = static_cast<size_t>(mid_w) * 3;
  const size_t out_stride = static_cast<size_t>(out_w) * 3;
  uint8_t* rgb = job.rgb;
  // The letterbox of `pad`: rows of this band outside the destination rectangle, and its sides.
  if (dest_w != out_w || dest_h != out_h) {
    std::fill(rgb + r0 * out_stride, rgb + r1 * out_stride, 0);
  }
  // Destination rows of this band, relative to the destination rectangle.
  const int d0 = std::max(r0, dest_y) - dest_y;
  const int d1 = std::min(r1, dest_y + dest_h) - dest_y;
  if (d1 > d0) {
    // The intermediate rows the band's vertical taps read (whatever order the plan's starts
    // come in: the facade only checks that each lies inside the intermediate image).
    int m0 = d0, m1 = d1;
    if (nv > 0) {
      m0 = job.v_taps[d0 * (nv + 1)];
      m1 = m0;
      for (int d = d0; d < d1; ++d) {
        m0 = std::min(m0, job.v_taps[d * (nv + 1)]);
        m1 = std::max(m1, job.v_taps[d * (nv + 1)] + nv);
      }
    }
    s.mid.resize(row_bytes * static_cast<size_t>(m1 - m0));
    BoxConvert(job.src, header, s, m0, m1);
    const size_t rows = static_cast<size_t>(d1 - d0);
    if (nv == 0 && nh == 0) {
      // An exact box reduction (the common crop of a camera frame): the intermediate rows are the
      // output rows (midWidth = destWidth, checked by the facade), so they are copied, not taken
      // through the taps.
      for (size_t y = 0; y < rows; ++y) {
        std::memcpy(rgb + (static_cast<size_t>(dest_y + d0) + y) * out_stride + dest_x * 3,
                    s.mid.data() + y * row_bytes, row_bytes);
      }
    } else if (nh > 0 && !s.taps.Prepare(job.h_taps, nh, dest_w, mid_w)) {
      TransposedBand(s.mid.data(), m0, mid_w, job.v_taps, nv, d0, rows, job.h_taps, nh, dest_w,
                     rgb + (static_cast<size_t>(dest_y + d0) * out_w + dest_x) * 3, out_stride,
                     s.vertical, s.sums);
    } else {
      // Each destination row: the vertical taps of its intermediate rows (or the intermediate row
      // itself), then the horizontal taps straight along that row.
      s.vertical.resize(row_bytes);
      s.sums.resize(row_bytes);
      int32_t* __restrict sums = s.sums.data();
      uint8_t* __restrict vrow = s.vertical.data();
      const uint8_t* __restrict mid = s.mid.data();
      for (size_t y = 0; y < rows; ++y) {
        const uint8_t* row = mid + y * row_bytes;
        if (nv > 0) {
          const int32_t* t = job.v_taps + (d0 + y) * (nv + 1);
          std::fill(sums, sums + row_bytes, kRound);
          for (int k = 0; k < nv; ++k) {
            const int32_t w = t[1 + k];
            const uint8_t* __restrict p = mid + static_cast<size_t>(t[0] + k - m0) * row_bytes;
            for (size_t i = 0; i < row_bytes; ++i) sums[i] += w * p[i];
          }
          for (size_t i = 0; i < row_bytes; ++i) vrow[i] = Clamp255(sums[i] >> kTapShift);
          row = vrow;
        }
        uint8_t* to = rgb + ((static_cast<size_t>(dest_y + d0) + y) * out_w + dest_x) * 3;
        if (nh > 0) {
          s.taps.Row(row, to);
        } else {
          std::memcpy(to, row, static_cast<size_t>(dest_w) * 3);
        }
      }
    }
  }
  if (job.out_length == 0) return;
  const size_t plane = static_cast<size_t>(out_w) * out_h;
  const size_t p0 = static_cast<size_t>(r0) * out_w;
  const size_t p1 = static_cast<size_t>(r1) * out_w;
  // Each band normalises its own rows while they are still in cache, so the lookup writes into
  // the whole image's planes (a stride of one plane) from the band's first pixel.
  NormalizeRgbPlanes(rgb + 3 * p0, p1 - p0, job.lut, job.out + p0, plane);
}

void IngestFrame(const uint8_t* src, const int32_t* header, const int32_t* v_taps,
                 const int32_t* h_taps, uint8_t* rgb, const float* lut, float* out,
                 size_t out_length) {
  const IngestJob job{src, header, v_taps, h_taps, rgb, lut, out, out_length};
  IngestRows(job, 0, header[kOutHeight]);
}

IngestJob JobOf(const Napi::Value* args) {
  const Elements<float> out = ElementsOf<float>(args[6]);
  return IngestJob{DataOf<uint8_t>(args[0]), DataOf<int32_t>(args[1]), DataOf<int32_t>(args[2]),
                   DataOf<int32_t>(args[3]),  DataOf<uint8_t>(args[4]), DataOf<float>(args[5]),
                   out.data,                  out.length};
}

int OutputRows(const IngestJob& job) { return job.header[kOutHeight]; }

Napi::Value IngestFrameBinding(const Napi::CallbackInfo& info) {
  const Elements<float> out = ElementsOf<float>(info[6]);
  IngestFrame(DataOf<uint8_t>(info[0]), DataOf<int32_t>(info[1]), DataOf<int32_t>(info[2]),
              DataOf<int32_t>(info[3]), DataOf<uint8_t>(info[4]), DataOf<float>(info[5]), out.data,
              out.length);
  return info.Env().Undefined();
}

namespace {

// One frame on the libuv thread pool. The references keep the arrays (and so their memory)
// alive until OnOK/OnError runs back on the JavaScript thread.
class IngestWorker : public Napi::AsyncWorker {
 public:
  IngestWorker(const Napi::CallbackInfo& info, Napi::Promise::Deferred deferred)
      : Napi::AsyncWorker(info.Env(), "vla:ingestFrame"), deferred_(deferred) {
    for (size_t i = 0; i < 7; ++i) refs_[i] = Napi::Persistent(info[i].As<Napi::Object>());
    src_ = DataOf<uint8_t>(info[0]);
    header_ = DataOf<int32_t>(info[1]);
    v_taps_ = DataOf<int32_t>(info[2]);
    h_taps_ = DataOf<int32_t>(info[3]);
    rgb_ = DataOf<uint8_t>(info[4]);
    lut_ = DataOf<float>(info[5]);
    const Elements<float> out = ElementsOf<float>(info[6]);
    out_ = out.data;
    out_length_ = out.length;
  }

  void Execute() override {
    IngestFrame(src_, header_, v_taps_, h_taps_, rgb_, lut_, out_, out_length_);
  }
  void OnOK() override { deferred_.Resolve(Env().Undefined()); }
  void OnError(const Napi::Error& error) override { deferred_.Reject(error.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  Napi::ObjectReference refs_[7];
  const uint8_t* src_;
  const int32_t* header_;
  const int32_t* v_taps_;
  const int32_t* h_taps_;
  uint8_t* rgb_;
  const float* lut_;
  float* out_;
  size_t out_length_;
};

}  // namespace

Napi::Value IngestFrameAsyncBinding(const Napi::CallbackInfo& info) {
  Napi::Promise::Deferred deferred = Napi::Promise::Deferred::New(info.Env());
  IngestWorker* worker = new IngestWorker(info, deferred);
  worker->Queue();
  return deferred.Promise();
}

}  // namespace vla
