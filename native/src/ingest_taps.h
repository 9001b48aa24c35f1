// The ingest kernel's horizontal filter (step 2 of src/native/ingest-layout.ts): libvips' reduceh
// arithmetic (12-bit fixed-point taps, + 2048, >> 12, clamped to 0..255) applied straight along
// one packed RGB8 row. On the AVX-512 (VBMI) build a block of 16 output pixels takes its source
// bytes from two registers with one byte permute per pair of taps and multiplies them with
// vpmaddwd, so no transposed copy of the image and no strided writes are needed.

#ifndef VLA_NATIVE_INGEST_TAPS_H_
#define VLA_NATIVE_INGEST_TAPS_H_

#include <cstddef>
#include <cstdint>
#include <vector>

namespace vla {

// One plan's horizontal taps, laid out for HorizontalRow (built once per call, reused per row).
class HorizontalTaps {
 public:
  // `taps`: dest_w entries of (start, nh weights), as the plan's hTaps; `mid_w` source pixels.
  // False where this build has no vector path or the plan does not fit it (a block of 16 outputs
  // spanning more than 128 source pixels, or a weight outside int16): use TransposedBand then.
  bool Prepare(const int32_t* taps, int nh, int dest_w, int mid_w);

  // dest_w packed RGB8 pixels of `out` from the mid_w packed RGB8 pixels of `row` (after a
  // Prepare that returned true).
  void Row(const uint8_t* row, uint8_t* out);

 private:
  int dest_w_ = 0, mid_w_ = 0;
  // Per block of 16 outputs, the first source pixel it reads and, per pair of taps, 64 permute
  // indices and 16 weight pairs.
  int pairs_ = 0;
  std::vector<int32_t> base_;
  std::vector<uint8_t> index_;
  std::vector<int32_t> weight_;
  std::vector<uint8_t> planes_;
};

// The portable path of a band of `rows` destination rows (the first is d0): its vertical taps (or
// the intermediate rows themselves when nv is 0) into a transposed copy, then the horizontal taps
// down each column, which the compiler vectorises across rows; `mid` holds intermediate rows from
// m0 on. Writes dest_w pixels of each row at `band` (rows out_stride bytes apart).
void TransposedBand(const uint8_t* mid, int m0, int mid_w, const int32_t* v_taps, int nv, int d0,
                    size_t rows, const int32_t* h_taps, int nh, int dest_w, uint8_t* band,
                    size_t out_stride, std::vector<uint8_t>& columns, std::vector<int32_t>& sums);

}  // namespace vla

#endif  // VLA_NATIVE_INGEST_TAPS_H_
