#include "diversity.h"

#include <cmath>
#ifdef __AVX__
#include <immintrin.h>
#endif
#include <vector>

#include "typed_array.h"

namespace vla {
namespace {

// The products of two floats are exact in double, so the sums below round identically here and in
// the TypeScript reference, with or without fused multiply-add: lane l of the accumulator sums the
// products of the elements j with j % 4 == l, as the reference's s0..s3 do.
double Dot(const float* a, const float* b, size_t dim) {
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  size_t j = 0;
#ifdef __AVX__
  __m256d acc = _mm256_setzero_pd();
  for (; j + 4 <= dim; j += 4) {
    const __m256d va = _mm256_cvtps_pd(_mm_loadu_ps(a + j));
    const __m256d vb = _mm256_cvtps_pd(_mm_loadu_ps(b + j));
    acc = _mm256_add_pd(acc, _mm256_mul_pd(va, vb));
  }
  alignas(32) double lanes[4];
  _mm256_store_pd(lanes, acc);
  s0 = lanes[0];
  s1 = lanes[1];
  s2 = lanes[2];
  s3 = lanes[3];
#else
  for (; j + 4 <= dim; j += 4) {
    s0 += static_cast<double>(a[j]) * b[j];
    s1 += static_cast<double>(a[j + 1]) * b[j + 1];
    s2 += static_cast<double>(a[j + 2]) * b[j + 2];
    s3 += static_cast<double>(a[j + 3]) * b[j + 3];
  }
#endif
  if (j < dim) s0 += static_cast<double>(a[j]) * b[j];
  if (j + 1 < dim) s1 += static_cast<double>(a[j + 1]) * b[j + 1];
  if (j + 2 < dim) s2 += static_cast<double>(a[j + 2]) * b[j + 2];
  return (s0 + s1) + (s2 + s3);
}

double Distance(const float* a, double norm_a, const float* b, double norm_b, size_t dim) {
  if (norm_a == 0 || norm_b == 0) return 1;
  return 1 - Dot(a, b, dim) / (norm_a * norm_b);
}

}  // namespace

void MaxMinDiversity(const float* tokens, size_t n, size_t dim, size_t k, size_t first,
                     int32_t* out) {
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

Napi::Value MaxMinDiversityBinding(const Napi::CallbackInfo& info) {
  MaxMinDiversity(DataOf<float>(info[0]), static_cast<size_t>(IntOf(info[1])),
                  static_cast<size_t>(IntOf(info[2])), static_cast<size_t>(IntOf(info[3])),
                  static_cast<size_t>(IntOf(info[4])), DataOf<int32_t>(info[5]));
  return info.Env().Undefined();
}

}  // namespace vla
