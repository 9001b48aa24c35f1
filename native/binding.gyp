{
  "targets": [
    {
      "target_name": "vla_native",
      "sources": [
        "src/addon.cc",
        "src/topk.cc",
        "src/diversity.cc",
        "src/patch_diff.cc",
        "src/normalize.cc",
        "src/gather.cc",
        "src/ingest.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": [
        "NAPI_VERSION=8",
        "NAPI_DISABLE_CPP_EXCEPTIONS",
        "NODE_ADDON_API_DISABLE_DEPRECATED"
      ],
      "cflags_cc!": ["-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-O3", "-march=native", "-ffp-contract=off"],
      "xcode_settings": {
        "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
        "GCC_OPTIMIZATION_LEVEL": "3",
        "OTHER_CPLUSPLUSFLAGS": ["-ffp-contract=off"],
        "MACOSX_DEPLOYMENT_TARGET": "10.15"
      },
      "msvs_settings": {
        "VCCLCompilerTool": {
          "AdditionalOptions": ["/std:c++17", "/O2", "/fp:precise"]
        }
      }
    }
  ]
}
