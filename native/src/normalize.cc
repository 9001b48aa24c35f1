#include "normalize.h"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VBMI__)
#include <immintrin.h>
#define VLA_NORMALIZE_VBMI 1
#endif

#include "typed_array.h"

namespace vla {
namespace {

// Every output is a copy of a table entry, so any way of looking it up gives the same bits.

void NormalizeScalar(const uint8_t* rgb, size_t from, size_t pixels, const float* lut, float* out,
                     size_t stride) {
  const float* lut_r = lut;
  const float* lut_g = lut + 256;
  const float* lut_b = lut + 512;
  float* out_r = out;
  float* out_g = out + stride;
  float* out_b = out + 2 * stride;
  for (size_t p = from; p < pixels; ++p) {
    const uint8_t* px = rgb + p * 3;
    out_r[p] = lut_r[px[0]];
    out_g[p] = lut_g[px[1]];
    out_b[p] = lut_b[px[2]];
  }
}

#if defined(VLA_NORMALIZE_VBMI)

// 64 pixels at a time, one channel at a time, with byte permutes only:
//  1. two permutes pick the channel's 64 bytes out of the 192 bytes of the pixels, in the lane
//     order that step 3 turns back into pixel order;
//  2. the 256-entry table of the channel is held as 4 byte planes (byte k of every float) of
//     4 registers each; per plane, vpermi2b looks the low 7 bits up in each half and the top
//     bit picks the half;
//  3. unpacking the 4 plane results (bytes, then 16-bit words) interleaves them into 64 floats.

// The pixel whose channel byte goes to lane q: step 3 leaves the float of lane 16L + 4j + e of
// the planes at element 4L + e of output vector j.
constexpr int PixelOfLane(int q) { return 16 * ((q >> 2) & 3) + 4 * (q >> 4) + (q & 3); }

// Per channel c: index[c][q] is the byte of lane q within bytes 0..127 of the 192 bytes of 64
// pixels, or within bytes 128..191 where bit q of third[c] is set.
struct Deinterleave {
  __m512i index[3];
  __mmask64 third[3];
  __m512i every_fourth;  // lane q: (4 q) % 128
};

Deinterleave MakeDeinterleave() {
  Deinterleave d;
  for (int c = 0; c < 3; ++c) {
    alignas(64) uint8_t index[64];
    uint64_t third = 0;
    for (int q = 0; q < 64; ++q) {
      const int at = 3 * PixelOfLane(q) + c;
      index[q] = static_cast<uint8_t>(at & 127);
      if (at >= 128) third |= 1ULL << q;
    }
    d.index[c] = _mm512_load_si512(index);
    d.third[c] = third;
  }
  alignas(64) uint8_t every_fourth[64];
  for (int q = 0; q < 64; ++q) every_fourth[q] = static_cast<uint8_t>((4 * q) & 127);
  d.every_fourth = _mm512_load_si512(every_fourth);
  return d;
}

void NormalizeVbmi(const uint8_t* rgb, size_t pixels, const float* lut, float* out, size_t stride) {
  static const Deinterleave deinterleave = MakeDeinterleave();
  const size_t whole = pixels / 64 * 64;
  for (int c = 0; c < 3; ++c) {
    // planes[k][j]: byte k of the floats lut[c * 256 + 64 j .. + 64), picked out of the table's
    // 256 bytes by the same two-source permute for both halves (byte 4 q + k, modulo 128).
    __m512i planes[4][4];
    for (int j = 0; j < 4; ++j) {
      const float* f = lut + c * 256 + 64 * j;
      const __m512i f0 = _mm512_loadu_si512(f);
      const __m512i f1 = _mm512_loadu_si512(f + 16);
      const __m512i f2 = _mm512_loadu_si512(f + 32);
      const __m512i f3 = _mm512_loadu_si512(f + 48);
      for (int k = 0; k < 4; ++k) {
        const __m512i pick = _mm512_add_epi8(deinterleave.every_fourth, _mm512_set1_epi8(k));
        planes[k][j] =
            _mm512_mask_blend_epi8(0xffffffff00000000ULL, _mm512_permutex2var_epi8(f0, pick, f1),
                                   _mm512_permutex2var_epi8(f2, pick, f3));
      }
    }
    const __m512i index = deinterleave.index[c];
    const __mmask64 third = deinterleave.third[c];
    float* plane_out = out + c * stride;
    for (size_t p = 0; p < whole; p += 64) {
      const uint8_t* src = rgb + 3 * p;
      const __m512i v0 = _mm512_loadu_si512(src);
      const __m512i v1 = _mm512_loadu_si512(src + 64);
      const __m512i v2 = _mm512_loadu_si512(src + 128);
      const __m512i x =
          _mm512_mask_permutexvar_epi8(_mm512_permutex2var_epi8(v0, index, v1), third, index, v2);
      const __mmask64 upper = _mm512_movepi8_mask(x);
      __m512i b[4];
      for (int k = 0; k < 4; ++k) {
        b[k] =
            _mm512_mask_blend_epi8(upper, _mm512_permutex2var_epi8(planes[k][0], x, planes[k][1]),
                                   _mm512_permutex2var_epi8(planes[k][2], x, planes[k][3]));
      }
      const __m512i lo01 = _mm512_unpacklo_epi8(b[0], b[1]);
      const __m512i hi01 = _mm512_unpackhi_epi8(b[0], b[1]);
      const __m512i lo23 = _mm512_unpacklo_epi8(b[2], b[3]);
      const __m512i hi23 = _mm512_unpackhi_epi8(b[2], b[3]);
      float* o = plane_out + p;
      _mm512_storeu_si512(o, _mm512_unpacklo_epi16(lo01, lo23));
      _mm512_storeu_si512(o + 16, _mm512_unpackhi_epi16(lo01, lo23));
      _mm512_storeu_si512(o + 32, _mm512_unpacklo_epi16(hi01, hi23));
      _mm512_storeu_si512(o + 48, _mm512_unpackhi_epi16(hi01, hi23));
    }
  }
  NormalizeScalar(rgb, whole, pixels, lut, out, stride);
}

#endif  // VLA_NORMALIZE_VBMI

}  // namespace

void NormalizeRgbPlanes(const uint8_t* rgb, size_t pixels, const float* lut, float* out,
                        size_t stride) {
#if defined(VLA_NORMALIZE_VBMI)
  NormalizeVbmi(rgb, pixels, lut, out, stride);
#else
  NormalizeScalar(rgb, 0, pixels, lut, out, stride);
#endif
}

void NormalizeRgb(const uint8_t* rgb, size_t pixels, const float* lut, float* out) {
  NormalizeRgbPlanes(rgb, pixels, lut, out, pixels);
}

Napi::Value NormalizeRgbBinding(const Napi::CallbackInfo& info) {
  const Elements<uint8_t> rgb = ElementsOf<uint8_t>(info[0]);
  NormalizeRgb(rgb.data, rgb.length / 3, DataOf<float>(info[1]), DataOf<float>(info[2]));
  return info.Env().Undefined();
}

}  // namespace vla
