#include "diversity.h"

#include <cmath>
#include <limits>
#include <vector>
#if defined(__AVX512F__) || defined(__AVX__)
#include <immintrin.h>
#endif

#include "typed_array.h"

namespace vla {
namespace {

// Every dot product, here and in the TypeScript reference, sums the products of element d into
// accumulator d % 4 in increasing d and combines them as (s0 + s1) + (s2 + s3). The product of two
// floats is exact in double, so a fused multiply-add rounds exactly as the multiply then add of
// the reference does, and the SIMD paths below (one token per lane) reproduce it bit for bit.

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// --- scalar path (CPUs without AVX) -------------------------------------------------------------

double Dot(const float* a, const float* b, size_t dim) {
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  size_t j = 0;
  for (; j + 4 <= dim; j += 4) {
    s0 += static_cast<double>(a[j]) * b[j];
    s1 += static_cast<double>(a[j + 1]) * b[j + 1];
    s2 += static_cast<double>(a[j + 2]) * b[j + 2];
    s3 += static_cast<double>(a[j + 3]) * b[j + 3];
  }
  if (j < dim) s0 += static_cast<double>(a[j]) * b[j];
  if (j + 1 < dim) s1 += static_cast<double>(a[j + 1]) * b[j + 1];
  if (j + 2 < dim) s2 += static_cast<double>(a[j + 2]) * b[j + 2];
  return (s0 + s1) + (s2 + s3);
}

double Distance(const float* a, double norm_a, const float* b, double norm_b, size_t dim) {
  if (norm_a == 0 || norm_b == 0) return 1;
  return 1 - Dot(a, b, dim) / (norm_a * norm_b);
}

[[maybe_unused]] void MaxMinDiversityScalar(const float* tokens, size_t n, size_t dim, size_t k,
                                            size_t first, int32_t* out) {
  thread_local std::vector<double> norms;
  thread_local std::vector<double> min_dist;
  thread_local std::vector<uint8_t> selected;
  if (norms.size() < n) {
    norms.resize(n);
    min_dist.resize(n);
    selected.resize(n);
  }
  for (size_t i = 0; i < n; ++i) {
    const float* row = tokens + i * dim;
    norms[i] = std::sqrt(Dot(row, row, dim));
    selected[i] = 0;
  }
  selected[first] = 1;
  size_t last = first;
  for (size_t i = 0; i < n; ++i) {
    min_dist[i] = Distance(tokens + last * dim, norms[last], tokens + i * dim, norms[i], dim);
  }
  for (size_t count = 1; count < k; ++count) {
    size_t best = n;
    double best_dist = 0;
    for (size_t i = 0; i < n; ++i) {
      if (selected[i]) continue;
      const double d = min_dist[i];
      if (best == n || (!std::isnan(d) && (std::isnan(best_dist) || d > best_dist))) {
        best = i;
        best_dist = d;
      }
    }
    selected[best] = 1;
    last = best;
    if (count + 1 == k) break;
    const float* row = tokens + last * dim;
    for (size_t i = 0; i < n; ++i) {
      if (selected[i]) continue;
      const double d = Distance(row, norms[last], tokens + i * dim, norms[i], dim);
      if (d < min_dist[i]) min_dist[i] = d;
    }
  }
  size_t w = 0;
  for (size_t i = 0; i < n; ++i) {
    if (selected[i]) out[w++] = static_cast<int32_t>(i);
  }
}

// --- SIMD path: one token per lane
// ----------------------------------------------------------------
//
// The rows are transposed once per call into blocks of kLanes tokens, dimension-major
// (packed[(b * dim + d) * kLanes + l] is element d of token b * kLanes + l), so that one vector
// operation advances the dot products of kLanes tokens with the newest selected row by one
// element, each lane doing exactly the scalar sequence of operations.
//
// Selected tokens (and the padding lanes of the last block) hold NaN as their minimum distance:
// a NaN never becomes smaller (d < NaN is false) and never wins the arg-max, so one pass per
// selection updates the minima and finds the next selection. The reference takes the first
// unselected token with the largest non-NaN minimum, or the first unselected token when every
// minimum is NaN; so does Pass.

#if defined(__AVX512F__)

struct Vec {
  using R = __m512d;
  using M = __mmask8;
  static constexpr size_t kLanes = 8;
  static R Zero() { return _mm512_setzero_pd(); }
  static R Set1(double x) { return _mm512_set1_pd(x); }
  static R Load(const double* p) { return _mm512_load_pd(p); }
  static void Store(double* p, R v) { _mm512_store_pd(p, v); }
  // (The maskz forms avoid GCC 12's false -Wmaybe-uninitialized on _mm512_undefined_pd.)
  static R LoadFloats(const float* p) { return _mm512_maskz_cvtps_pd(0xff, _mm256_load_ps(p)); }
  static R MulAdd(R a, R b, R c) { return _mm512_fmadd_pd(a, b, c); }
  static R Add(R a, R b) { return _mm512_add_pd(a, b); }
  static R Sub(R a, R b) { return _mm512_sub_pd(a, b); }
  static R Mul(R a, R b) { return _mm512_mul_pd(a, b); }
  static R Div(R a, R b) { return _mm512_div_pd(a, b); }
  static R Sqrt(R a) { return _mm512_maskz_sqrt_pd(0xff, a); }
  static M Eq(R a, R b) { return _mm512_cmp_pd_mask(a, b, _CMP_EQ_OQ); }
  static M Lt(R a, R b) { return _mm512_cmp_pd_mask(a, b, _CMP_LT_OQ); }
  static M Ordered(R a) { return _mm512_cmp_pd_mask(a, a, _CMP_ORD_Q); }
  // a is a number and not <= b (so a > b, or b is NaN).
  static M Beats(R a, R b) {
    return _mm512_mask_cmp_pd_mask(_mm512_cmp_pd_mask(a, a, _CMP_ORD_Q), a, b, _CMP_NLE_UQ);
  }
  // m ? b : a
  static R Select(M m, R a, R b) { return _mm512_mask_blend_pd(m, a, b); }
  static R Iota() { return _mm512_set_pd(7, 6, 5, 4, 3, 2, 1, 0); }
};
#define VLA_DIVERSITY_SIMD 1

#elif defined(__AVX__)

struct Vec {
  using R = __m256d;
  using M = __m256d;
  static constexpr size_t kLanes = 4;
  static R Zero() { return _mm256_setzero_pd(); }
  static R Set1(double x) { return _mm256_set1_pd(x); }
  static R Load(const double* p) { return _mm256_load_pd(p); }
  static void Store(double* p, R v) { _mm256_store_pd(p, v); }
  static R LoadFloats(const float* p) { return _mm256_cvtps_pd(_mm_load_ps(p)); }
#if defined(__FMA__)
  static R MulAdd(R a, R b, R c) { return _mm256_fmadd_pd(a, b, c); }
#else
  static R MulAdd(R a, R b, R c) { return _mm256_add_pd(_mm256_mul_pd(a, b), c); }
#endif
  static R Add(R a, R b) { return _mm256_add_pd(a, b); }
  static R Sub(R a, R b) { return _mm256_sub_pd(a, b); }
  static R Mul(R a, R b) { return _mm256_mul_pd(a, b); }
  static R Div(R a, R b) { return _mm256_div_pd(a, b); }
  static R Sqrt(R a) { return _mm256_sqrt_pd(a); }
  static M Eq(R a, R b) { return _mm256_cmp_pd(a, b, _CMP_EQ_OQ); }
  static M Lt(R a, R b) { return _mm256_cmp_pd(a, b, _CMP_LT_OQ); }
  static M Ordered(R a) { return _mm256_cmp_pd(a, a, _CMP_ORD_Q); }
  static M Beats(R a, R b) {
    return _mm256_and_pd(_mm256_cmp_pd(a, a, _CMP_ORD_Q), _mm256_cmp_pd(a, b, _CMP_NLE_UQ));
  }
  static R Select(M m, R a, R b) { return _mm256_blendv_pd(a, b, m); }
  static R Iota() { return _mm256_set_pd(3, 2, 1, 0); }
};
#define VLA_DIVERSITY_SIMD 1

#endif

#if defined(VLA_DIVERSITY_SIMD)

constexpr size_t kLanes = Vec::kLanes;

// Scratch of one call, reused across calls.
struct Scratch {
  std::vector<float> packed;     // blocks * dim * kLanes floats (aligned by Reserve)
  std::vector<double> row;       // the newest selected row, as doubles
  std::vector<double> norms;     // blocks * kLanes
  std::vector<double> min_dist;  // blocks * kLanes
  std::vector<double> dots;      // blocks * kLanes
  std::vector<uint8_t> selected;

  static constexpr size_t kAlignFloats = 16;
  static constexpr size_t kAlignDoubles = 8;
  float* packed_data = nullptr;
  double* norms_data = nullptr;
  double* min_data = nullptr;
  double* dots_data = nullptr;

  void Reserve(size_t blocks, size_t dim) {
    const size_t floats = blocks * dim * kLanes + kAlignFloats;
    if (packed.size() < floats) packed.resize(floats);
    const size_t doubles = blocks * kLanes + kAlignDoubles;
    if (norms.size() < doubles) {
      norms.resize(doubles);
      min_dist.resize(doubles);
      dots.resize(doubles);
    }
    if (row.size() < dim) row.resize(dim);
    if (selected.size() < blocks * kLanes) selected.resize(blocks * kLanes);
    packed_data = Align(packed.data());
    norms_data = Align(norms.data());
    min_data = Align(min_dist.data());
    dots_data = Align(dots.data());
  }

  template <typename T>
  static T* Align(T* p) {
    const uintptr_t a = reinterpret_cast<uintptr_t>(p);
    return reinterpret_cast<T*>((a + 63) & ~static_cast<uintptr_t>(63));
  }
};

// packed[(b * dim + d) * kLanes + l] = tokens[(b * kLanes + l) * dim + d], zero past row n.
void Transpose(const float* tokens, size_t n, size_t dim, size_t blocks, float* packed) {
  alignas(64) static const float kZeros[kLanes] = {};
  for (size_t b = 0; b < blocks; ++b) {
    float* block = packed + b * dim * kLanes;
    const float* rows[kLanes];
    for (size_t l = 0; l < kLanes; ++l) {
      const size_t i = b * kLanes + l;
      rows[l] = i < n ? tokens + i * dim : nullptr;
    }
    size_t d = 0;
#if defined(__AVX512F__)
    // 8 x 8 tiles: eight rows of eight floats in, eight columns out.
    for (; d + 8 <= dim; d += 8) {
      __m256 r[8];
      for (size_t l = 0; l < 8; ++l) r[l] = _mm256_loadu_ps(rows[l] ? rows[l] + d : kZeros);
      const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
      const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
      const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
      const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
      const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xee);
      const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xee);
      const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xee);
      const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xee);
      float* col = block + d * kLanes;
      _mm256_store_ps(col + 0 * kLanes, _mm256_permute2f128_ps(u0, u4, 0x20));
      _mm256_store_ps(col + 1 * kLanes, _mm256_permute2f128_ps(u1, u5, 0x20));
      _mm256_store_ps(col + 2 * kLanes, _mm256_permute2f128_ps(u2, u6, 0x20));
      _mm256_store_ps(col + 3 * kLanes, _mm256_permute2f128_ps(u3, u7, 0x20));
      _mm256_store_ps(col + 4 * kLanes, _mm256_permute2f128_ps(u0, u4, 0x31));
      _mm256_store_ps(col + 5 * kLanes, _mm256_permute2f128_ps(u1, u5, 0x31));
      _mm256_store_ps(col + 6 * kLanes, _mm256_permute2f128_ps(u2, u6, 0x31));
      _mm256_store_ps(col + 7 * kLanes, _mm256_permute2f128_ps(u3, u7, 0x31));
    }
#else
    // 4 x 4 tiles.
    for (; d + 4 <= dim; d += 4) {
      __m128 r0 = _mm_loadu_ps(rows[0] ? rows[0] + d : kZeros);
      __m128 r1 = _mm_loadu_ps(rows[1] ? rows[1] + d : kZeros);
      __m128 r2 = _mm_loadu_ps(rows[2] ? rows[2] + d : kZeros);
      __m128 r3 = _mm_loadu_ps(rows[3] ? rows[3] + d : kZeros);
      _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
      float* col = block + d * kLanes;
      _mm_store_ps(col + 0 * kLanes, r0);
      _mm_store_ps(col + 1 * kLanes, r1);
      _mm_store_ps(col + 2 * kLanes, r2);
      _mm_store_ps(col + 3 * kLanes, r3);
    }
#endif
    for (; d < dim; ++d) {
      for (size_t l = 0; l < kLanes; ++l) block[d * kLanes + l] = rows[l] ? rows[l][d] : 0;
    }
  }
}

// The dot products of the kLanes tokens of each of kBlocks consecutive blocks with `row` (dim
// doubles), or with themselves (kSquares), to dots[0 .. kBlocks * kLanes).
template <bool kSquares, size_t kBlocks>
inline void BlockDots(const float* blocks, const double* row, size_t dim, double* dots) {
  Vec::R s[kBlocks][4];
  for (size_t j = 0; j < kBlocks; ++j) s[j][0] = s[j][1] = s[j][2] = s[j][3] = Vec::Zero();
  const auto term = [blocks, row, dim](size_t j, size_t d, Vec::R acc) {
    const Vec::R x = Vec::LoadFloats(blocks + (j * dim + d) * kLanes);
    return Vec::MulAdd(kSquares ? x : Vec::Set1(row[d]), x, acc);
  };
  size_t d = 0;
  for (; d + 4 <= dim; d += 4) {
    for (size_t j = 0; j < kBlocks; ++j) {
      s[j][0] = term(j, d, s[j][0]);
      s[j][1] = term(j, d + 1, s[j][1]);
      s[j][2] = term(j, d + 2, s[j][2]);
      s[j][3] = term(j, d + 3, s[j][3]);
    }
  }
  for (size_t j = 0; j < kBlocks; ++j) {
    if (d < dim) s[j][0] = term(j, d, s[j][0]);
    if (d + 1 < dim) s[j][1] = term(j, d + 1, s[j][1]);
    if (d + 2 < dim) s[j][2] = term(j, d + 2, s[j][2]);
    Vec::Store(dots + j * kLanes, Vec::Add(Vec::Add(s[j][0], s[j][1]), Vec::Add(s[j][2], s[j][3])));
  }
}

// BlockDots over all `blocks` blocks, two at a time (eight independent sums in flight).
template <bool kSquares>
void Dots(const float* packed, const double* row, size_t dim, size_t blocks, double* dots) {
  size_t b = 0;
  for (; b + 2 <= blocks; b += 2) {
    BlockDots<kSquares, 2>(packed + b * dim * kLanes, row, dim, dots + b * kLanes);
  }
  if (b < blocks) BlockDots<kSquares, 1>(packed + b * dim * kLanes, row, dim, dots + b * kLanes);
}

// One pass for the newest selected row `last`: the distance of every token to it, the updated
// minimum distances (kInitial: set to that distance, except the NaN of selected and padding
// lanes), and the index of the next selection (n when every minimum is NaN).
template <bool kInitial>
size_t Pass(const Scratch& s, size_t n, size_t dim, size_t blocks, size_t last) {
  const double last_norm = s.norms_data[last];
  const double* row = s.row.data();
  const Vec::R one = Vec::Set1(1);
  const Vec::R zero = Vec::Zero();
  const Vec::R norm = Vec::Set1(last_norm);
  const Vec::R step = Vec::Set1(static_cast<double>(kLanes));
  Vec::R index = Vec::Iota();
  Vec::R best = Vec::Set1(kNaN);
  Vec::R best_index = Vec::Set1(static_cast<double>(n));
  if (last_norm != 0) Dots<false>(s.packed_data, row, dim, blocks, s.dots_data);
  for (size_t b = 0; b < blocks; ++b) {
    const Vec::R norms = Vec::Load(s.norms_data + b * kLanes);
    Vec::R d;
    if (last_norm == 0) {
      d = one;
    } else {
      const Vec::R dot = Vec::Load(s.dots_data + b * kLanes);
      d = Vec::Select(Vec::Eq(norms, zero), Vec::Sub(one, Vec::Div(dot, Vec::Mul(norm, norms))),
                      one);
    }
    double* min_dist = s.min_data + b * kLanes;
    Vec::R m = Vec::Load(min_dist);
    m = kInitial ? Vec::Select(Vec::Ordered(m), m, d) : Vec::Select(Vec::Lt(d, m), m, d);
    Vec::Store(min_dist, m);
    const Vec::M beats = Vec::Beats(m, best);
    best = Vec::Select(beats, best, m);
    best_index = Vec::Select(beats, best_index, index);
    index = Vec::Add(index, step);
  }
  alignas(64) double lanes[kLanes];
  alignas(64) double lane_index[kLanes];
  Vec::Store(lanes, best);
  Vec::Store(lane_index, best_index);
  size_t winner = n;
  double winner_dist = 0;
  for (size_t l = 0; l < kLanes; ++l) {
    const double v = lanes[l];
    if (std::isnan(v)) continue;
    const size_t i = static_cast<size_t>(lane_index[l]);
    if (winner == n || v > winner_dist || (v == winner_dist && i < winner)) {
      winner = i;
      winner_dist = v;
    }
  }
  return winner;
}

void MaxMinDiversitySimd(const float* tokens, size_t n, size_t dim, size_t k, size_t first,
                         int32_t* out) {
  thread_local Scratch s;
  const size_t blocks = (n + kLanes - 1) / kLanes;
  s.Reserve(blocks, dim);
  Transpose(tokens, n, dim, blocks, s.packed_data);
  Dots<true>(s.packed_data, nullptr, dim, blocks, s.norms_data);
  for (size_t b = 0; b < blocks; ++b) {
    double* norms = s.norms_data + b * kLanes;
    Vec::Store(norms, Vec::Sqrt(Vec::Load(norms)));
  }
  uint8_t* selected = s.selected.data();
  for (size_t i = 0; i < blocks * kLanes; ++i) {
    selected[i] = i >= n;
    s.min_data[i] = i >= n ? kNaN : 0;
  }
  selected[first] = 1;
  s.min_data[first] = kNaN;
  size_t last = first;
  for (size_t count = 1; count < k; ++count) {
    for (size_t d = 0; d < dim; ++d) s.row[d] = tokens[last * dim + d];
    size_t best =
        count == 1 ? Pass<true>(s, n, dim, blocks, last) : Pass<false>(s, n, dim, blocks, last);
    if (best == n) {
      best = 0;
      while (selected[best]) ++best;
    }
    selected[best] = 1;
    s.min_data[best] = kNaN;
    last = best;
  }
  size_t w = 0;
  for (size_t i = 0; i < n; ++i) {
    if (selected[i]) out[w++] = static_cast<int32_t>(i);
  }
}

#endif  // VLA_DIVERSITY_SIMD

}  // namespace

void MaxMinDiversity(const float* tokens, size_t n, size_t dim, size_t k, size_t first,
                     int32_t* out) {
#if defined(VLA_DIVERSITY_SIMD)
  MaxMinDiversitySimd(tokens, n, dim, k, first, out);
#else
  MaxMinDiversityScalar(tokens, n, dim, k, first, out);
#endif
}

Napi::Value MaxMinDiversityBinding(const Napi::CallbackInfo& info) {
  MaxMinDiversity(DataOf<float>(info[0]), static_cast<size_t>(IntOf(info[1])),
                  static_cast<size_t>(IntOf(info[2])), static_cast<size_t>(IntOf(info[3])),
                  static_cast<size_t>(IntOf(info[4])), DataOf<int32_t>(info[5]));
  return info.Env().Undefined();
}

}  // namespace vla
