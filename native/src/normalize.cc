#include "normalize.h"

#include "typed_array.h"

namespace vla {

void NormalizeRgb(const uint8_t* rgb, size_t pixels, const float* lut, float* out) {
  const float* lut_r = lut;
  const float* lut_g = lut + 256;
  const float* lut_b = lut + 512;
  float* out_r = out;
  float* out_g = out + pixels;
  float* out_b = out + 2 * pixels;
  for (size_t p = 0; p < pixels; ++p) {
    const uint8_t* px = rgb + p * 3;
    out_r[p] = lut_r[px[0]];
    out_g[p] = lut_g[px[1]];
    out_b[p] = lut_b[px[2]];
  }
}

Napi::Value NormalizeRgbBinding(const Napi::CallbackInfo& info) {
  NormalizeRgb(DataOf<uint8_t>(info[0]), LengthOf<uint8_t>(info[0]) / 3, DataOf<float>(info[1]),
               DataOf<float>(info[2]));
  return info.Env().Undefined();
}

}  // namespace vla
