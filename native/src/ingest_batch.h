// ingestFrames: several cameras' frames in one call, their output rows split across the calling
// thread and a small set of persistent threads. The libuv pool's hand-off (a queue, a wake-up and
// a callback on the JavaScript thread per frame) costs about as much as a 640x480 frame's
// kernel; here the calling thread works too and waits only for the last band.

#ifndef VLA_NATIVE_INGEST_BATCH_H_
#define VLA_NATIVE_INGEST_BATCH_H_

#include <napi.h>

#include <cstddef>

namespace vla {

// Runs task(context, i) for every i in [0, count) on the calling thread and the band threads, and
// returns when all have run. One batch at a time per process.
void RunBands(size_t count, void (*task)(void* context, size_t i), void* context);

// Threads that run bands (the calling thread included): min(hardware threads, 4), at least 1.
size_t BandThreads();

// ingestFrames(jobs: [src, header, vTaps, hTaps, rgb, lut, out][]): undefined, synchronous.
Napi::Value IngestFramesBinding(const Napi::CallbackInfo& info);

}  // namespace vla

#endif  // VLA_NATIVE_INGEST_BATCH_H_
