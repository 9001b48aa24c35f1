#include "topk.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "typed_array.h"

namespace vla {
namespace {

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

}  // namespace

void TopK(const float* scores, size_t n, size_t k, int32_t* out) {
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

Napi::Value TopKBinding(const Napi::CallbackInfo& info) {
  TopK(DataOf<float>(info[0]), LengthOf<float>(info[0]), static_cast<size_t>(IntOf(info[1])),
       DataOf<int32_t>(info[2]));
  return info.Env().Undefined();
}

}  // namespace vla
