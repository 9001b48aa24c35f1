#include "gather.h"

#include <cstring>

#include "typed_array.h"

namespace vla {

void GatherRows(const float* tokens, size_t dim, const int32_t* idx, size_t count, float* out) {
  const size_t row_bytes = dim * sizeof(float);
  for (size_t i = 0; i < count; ++i) {
    std::memcpy(out + i * dim, tokens + static_cast<size_t>(idx[i]) * dim, row_bytes);
  }
}

Napi::Value GatherRowsBinding(const Napi::CallbackInfo& info) {
  GatherRows(DataOf<float>(info[0]), static_cast<size_t>(IntOf(info[1])), DataOf<int32_t>(info[2]),
             static_cast<size_t>(IntOf(info[3])), DataOf<float>(info[4]));
  return info.Env().Undefined();
}

}  // namespace vla
