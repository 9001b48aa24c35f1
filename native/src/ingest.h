// ingestFrame: a raw camera frame (any encoding the plan describes) to RGB8 at the model's size
// and the normalised CHW float32 tensor, in one pass. The plan layout is defined in
// src/ingest/../native/ingest-layout.ts; src/native/reference-ingest.ts is the reference this
// reproduces bit for bit (integer arithmetic only).

#ifndef VLA_NATIVE_INGEST_H_
#define VLA_NATIVE_INGEST_H_

#include <napi.h>

#include <cstddef>
#include <cstdint>

namespace vla {

// One frame's arrays (see IngestFrame).
struct IngestJob {
  const uint8_t* src;
  const int32_t* header;
  const int32_t* v_taps;
  const int32_t* h_taps;
  uint8_t* rgb;
  const float* lut;
  float* out;
  size_t out_length;
};

// Output rows [r0, r1) of `job` (RGB8 and, when out_length > 0, the tensor's rows): bands of one
// frame are independent, so several threads may run disjoint bands of the same job; the result
// is the same bytes whatever the split.
void IngestRows(const IngestJob& job, int r0, int r1);

// The job of the 7 arguments (src, header, vTaps, hTaps, rgb, lut, out) at `args`.
IngestJob JobOf(const Napi::Value* args);

// The output height of a job's plan.
int OutputRows(const IngestJob& job);

// Runs the plan (`header`, `v_taps`, `h_taps`) on `src`, writing outW * outH * 3 bytes to `rgb`
// and, when `out_length` > 0, 3 * outW * outH floats to `out` through `lut` (768 floats).
void IngestFrame(const uint8_t* src, const int32_t* header, const int32_t* v_taps,
                 const int32_t* h_taps, uint8_t* rgb, const float* lut, float* out,
                 size_t out_length);

// ingestFrame(src, header, vTaps, hTaps, rgb, lut, out): undefined
Napi::Value IngestFrameBinding(const Napi::CallbackInfo& info);

// ingestFrameAsync(src, header, vTaps, hTaps, rgb, lut, out): Promise<undefined>, run on libuv's
// thread pool; the arrays are kept alive (referenced) until the promise settles.
Napi::Value IngestFrameAsyncBinding(const Napi::CallbackInfo& info);

}  // namespace vla

#endif  // VLA_NATIVE_INGEST_H_
