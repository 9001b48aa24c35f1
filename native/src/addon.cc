// Registration of vla_native's kernels. Each kernel lives in its own .h/.cc pair; arguments are
// validated by the TypeScript facade (src/native/index.ts) before they reach this addon.

#include <napi.h>

#include "byte_pairs.h"
#include "cpu.h"
#include "diversity.h"
#include "gather.h"
#include "ingest.h"
#include "ingest_batch.h"
#include "normalize.h"
#include "patch_diff.h"
#include "topk.h"

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("topK", Napi::Function::New(env, vla::TopKBinding, "topK"));
  exports.Set("maxMinDiversity",
              Napi::Function::New(env, vla::MaxMinDiversityBinding, "maxMinDiversity"));
  exports.Set("patchDifference",
              Napi::Function::New(env, vla::PatchDifferenceBinding, "patchDifference"));
  exports.Set("normalizeRgb", Napi::Function::New(env, vla::NormalizeRgbBinding, "normalizeRgb"));
  exports.Set("gatherRows", Napi::Function::New(env, vla::GatherRowsBinding, "gatherRows"));
  exports.Set("ingestFrame", Napi::Function::New(env, vla::IngestFrameBinding, "ingestFrame"));
  exports.Set("ingestFrameAsync",
              Napi::Function::New(env, vla::IngestFrameAsyncBinding, "ingestFrameAsync"));
  exports.Set("ingestFrames", Napi::Function::New(env, vla::IngestFramesBinding, "ingestFrames"));
  exports.Set("countBytePairs",
              Napi::Function::New(env, vla::CountBytePairsBinding, "countBytePairs"));
  exports.Set("cpuFeatures", Napi::Function::New(env, vla::CpuFeaturesBinding, "cpuFeatures"));
  return exports;
}

}  // namespace

NODE_API_MODULE(vla_native, Init)
