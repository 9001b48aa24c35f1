// gatherRows: copy selected token rows into a packed output.

#ifndef VLA_NATIVE_GATHER_H_
#define VLA_NATIVE_GATHER_H_

#include <napi.h>

#include <cstddef>
#include <cstdint>

namespace vla {

// out[i*dim .. (i+1)*dim) = tokens[idx[i]*dim .. (idx[i]+1)*dim) for i < count.
void GatherRows(const float* tokens, size_t dim, const int32_t* idx, size_t count, float* out);

// gatherRows(tokens, dim, idx: Int32Array, count, out: Float32Array): undefined
Napi::Value GatherRowsBinding(const Napi::CallbackInfo& info);

}  // namespace vla

#endif  // VLA_NATIVE_GATHER_H_
