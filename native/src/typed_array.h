// Access to the TypedArray arguments of a kernel call, without copies.
//
// The TypeScript facade (src/native/index.ts) validates every argument before it calls the addon,
// so these helpers do not check types or lengths again.

#ifndef VLA_NATIVE_TYPED_ARRAY_H_
#define VLA_NATIVE_TYPED_ARRAY_H_

#include <napi.h>

#include <cstddef>
#include <cstdint>

namespace vla {

// The elements of a TypedArray argument (its byteOffset applied), in place.
template <typename T>
inline T* DataOf(const Napi::Value& value) {
  return value.As<Napi::TypedArrayOf<T>>().Data();
}

// The elements and element count of a TypedArray argument (one lookup for both).
template <typename T>
struct Elements {
  T* data;
  size_t length;
};

template <typename T>
inline Elements<T> ElementsOf(const Napi::Value& value) {
  Napi::TypedArrayOf<T> array = value.As<Napi::TypedArrayOf<T>>();
  return {array.Data(), array.ElementLength()};
}

// An integer argument.
inline int32_t IntOf(const Napi::Value& value) { return value.As<Napi::Number>().Int32Value(); }

// A non-negative integer argument that may exceed 32 bits (an offset into a large array).
inline size_t SizeOf(const Napi::Value& value) {
  return static_cast<size_t>(value.As<Napi::Number>().Int64Value());
}

}  // namespace vla

#endif  // VLA_NATIVE_TYPED_ARRAY_H_
