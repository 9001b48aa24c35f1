// countBytePairs: how often one byte value is directly followed by another (a JPEG's markers).

#ifndef VLA_NATIVE_BYTE_PAIRS_H_
#define VLA_NATIVE_BYTE_PAIRS_H_

#include <napi.h>

#include <cstddef>
#include <cstdint>

namespace vla {

// The positions i in [from, length - 1) with data[i] == first and data[i + 1] == second, counted
// up to limit + 1: min(count, limit + 1).
size_t CountBytePairs(const uint8_t* data, size_t length, size_t from, uint8_t first,
                      uint8_t second, size_t limit);

// countBytePairs(bytes: Uint8Array, from, first, second, limit): number
Napi::Value CountBytePairsBinding(const Napi::CallbackInfo& info);

}  // namespace vla

#endif  // VLA_NATIVE_BYTE_PAIRS_H_
