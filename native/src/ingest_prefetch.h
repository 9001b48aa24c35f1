// The ingest kernel's prefetch of the next box's rows, spread over the work of this box's means.
// A frame out of cache is read at the rate the core keeps lines in flight. Prefetches issued in
// one burst while this box's rows are summed (the portable builds' way) compete with those loads,
// stall once the miss buffers are full, and leave the memory idle while the box means compute;
// issued a few at a time during the means, they keep it busy. Measured on the 2026-12-06 host
// (AVX-512 build, non-temporal hint), 640x480 rgb8 to 96x96, frames out of cache between model
// runs: about 95 us a frame in a burst, 72-75 us spread (frames in cache: 48-51 us, 52-55 us).

#ifndef VLA_NATIVE_INGEST_PREFETCH_H_
#define VLA_NATIVE_INGEST_PREFETCH_H_

#include <cstddef>
#include <cstdint>

namespace vla {

// One cache line of a frame, into the L2 cache (locality 2: prefetcht1). The hardware prefetcher
// does not run far enough ahead on several row streams at once (2026-12-06 host, non-temporal
// hint, the kernel alone on a 640x480 frame out of cache: about 95 us without software prefetch,
// 57 us with a burst per box). The non-temporal hint was meant to keep the model's weights in cache, but on the
// 2026-12-07 host (Zen 4) it left the kernel waiting on memory. The kernel alone, 30 distinct
// frames converted in turn (FrameIngest.rawToRgbMany, one frame a call): 150 us a frame
// non-temporal, 83-94 us into L2, 95 us into L3, 120-130 us into L1. In the pipeline
// (`npx vla-node bench ingest --json`, two runs of each, taking turns) the preprocess stage took
// 0.105-0.108 ms instead of 0.141-0.145 ms, and the encoder and policy stages did not slow down.
inline void PrefetchLine(const uint8_t* p) {
#if defined(__GNUC__) || defined(__clang__)
  __builtin_prefetch(p, 0, 2);
#else
  (void)p;
#endif
}

class PrefetchCursor {
 public:
  PrefetchCursor() = default;
  // The cache lines of bytes [from, to) of `rows` rows `step` apart from `base`, one 64-byte
  // column of every row at a time (the order the column sums read them). None when base is null.
  PrefetchCursor(const uint8_t* base, size_t step, int rows, int from, int to)
      : p_(base == nullptr ? nullptr : base + from),
        end_(base == nullptr ? nullptr : base + to),
        step_(step),
        rows_(rows) {}

  // Issue the next n columns (n x rows lines).
  void Issue(int n) {
    for (; n > 0 && p_ < end_; --n, p_ += 64) {
      const uint8_t* q = p_;
      for (int r = 0; r < rows_; ++r, q += step_) PrefetchLine(q);
    }
  }

  // Issue about 1 / parts of the columns left (the caller has `parts` steps of work left).
  void Share(int parts) {
    const int left = Left();
    Issue(parts <= 1 ? left : (left + parts - 1) / parts);
  }

  int Left() const { return p_ < end_ ? static_cast<int>((end_ - p_ + 63) / 64) : 0; }

  void Flush() { Issue(Left()); }

 private:
  const uint8_t* p_ = nullptr;
  const uint8_t* end_ = nullptr;
  size_t step_ = 0;
  int rows_ = 0;
};

}  // namespace vla

#endif  // VLA_NATIVE_INGEST_PREFETCH_H_
