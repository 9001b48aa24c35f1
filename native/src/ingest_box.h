// The ingest kernel's horizontal box mean of an interleaved row's column sums (step 1 of
// src/native/ingest-layout.ts), vectorised for the AVX-512 (VBMI) build: the sums of kx pixels
// come from kx shifted loads, one masked word permute per 64 source words picks each block's sum
// in output order, and the rounded division is a 16-bit multiply by an exact reciprocal (a float
// estimate corrected by one multiply for the few box sizes without one), so the bytes equal the
// scalar reference's floor((s + n / 2) / n).

#ifndef VLA_NATIVE_INGEST_BOX_H_
#define VLA_NATIVE_INGEST_BOX_H_

#include <cstdint>
#include <vector>

#include "ingest_prefetch.h"

namespace vla {

// floor(x / n) = (x * multiplier) >> (16 + shift) for every rounded block mean's x, where ok
// (see Reciprocal16For in ingest_box.cc); not ok: the float quotient divides.
struct Reciprocal16 {
  bool ok = false;
  uint32_t multiplier = 0;
  int shift = 0;
};

// The vectorised box of one plan (built once per call, reused for every intermediate row).
class BoxRowVector {
 public:
  // Pixels of `ch` 16-bit column sums; output bytes 3 * mx + c from channel offsets oa, ob, oc of
  // pixels [kx * mx, kx * mx + kx) for mx < full (whole blocks only). Returns false (and the
  // caller keeps its scalar loop) where this build has no vector path or the plan does not fit
  // it (sums of a block over 16 bits, or blocks too wide for the permute windows).
  bool Prepare(int ch, int oa, int ob, int oc, int kx, int ky, int full);

  // Bytes [0, 3 * full) of an intermediate row from `acc` (the row's column sums, starting at the
  // crop's first pixel, readable for `acc_length` words) summed over `ny` rows. `spread`, when
  // given, issues its prefetches a column per step of the block sums, the rest shared over the
  // output vectors.
  void Row(const uint16_t* acc, int acc_length, uint32_t ny, uint8_t* out,
           PrefetchCursor* spread = nullptr);

 private:
  int ch_ = 0, kx_ = 0, full_ = 0, windows_ = 0;
  // The 16-bit reciprocal of the last box size n = kx * ny that Row divided by.
  int32_t reciprocal_n_ = -1;
  Reciprocal16 reciprocal_;
  std::vector<uint16_t> sums_;
  // Per output vector of 32 bytes: its first source word, then per window 32 word indices and
  // the lanes it fills.
  std::vector<int32_t> first_;
  std::vector<uint16_t> index_;
  std::vector<uint32_t> lanes_;
};

}  // namespace vla

#endif  // VLA_NATIVE_INGEST_BOX_H_
