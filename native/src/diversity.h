// maxMinDiversity: greedy max-min (DivPrune) selection of token rows by cosine distance.

#ifndef VLA_NATIVE_DIVERSITY_H_
#define VLA_NATIVE_DIVERSITY_H_

#include <napi.h>

#include <cstddef>
#include <cstdint>

namespace vla {

// Selects k of the n rows of tokens (dim floats each, row-major): row `first`, then repeatedly
// the unselected row whose minimum cosine distance (1 - cos; 1 when either row is zero) to the
// selected rows is largest, ties to the lower index, NaN distances ranking lowest. Writes the k
// row indices to out[0..k) in ascending order. Requires 1 <= k <= n and first < n.
//
// Dot products use four double accumulators (element j into accumulator j % 4, combined as
// (s0 + s1) + (s2 + s3)) so that the TypeScript reference reproduces every distance bit for bit.
void MaxMinDiversity(const float* tokens, size_t n, size_t dim, size_t k, size_t first,
                     int32_t* out);

// maxMinDiversity(tokens, n, dim, k, first, out: Int32Array): undefined
Napi::Value MaxMinDiversityBinding(const Napi::CallbackInfo& info);

}  // namespace vla

#endif  // VLA_NATIVE_DIVERSITY_H_
