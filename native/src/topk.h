// topK: the indices of the k largest scores.

#ifndef VLA_NATIVE_TOPK_H_
#define VLA_NATIVE_TOPK_H_

#include <napi.h>

#include <cstddef>
#include <cstdint>

namespace vla {

// Writes the indices of the k largest of scores[0..n) to out[0..k) in ascending index order. Ties
// go to the lower index; NaN scores rank below every number. Requires 1 <= k <= n.
void TopK(const float* scores, size_t n, size_t k, int32_t* out);

// topK(scores: Float32Array, k: number, out: Int32Array): undefined
Napi::Value TopKBinding(const Napi::CallbackInfo& info);

}  // namespace vla

#endif  // VLA_NATIVE_TOPK_H_
