{
  # One addon, built more than once from the same sources: `vla_native` for a portable baseline
  # (plain x86-64, or the compiler's default elsewhere, e.g. aarch64), which every CPU of the
  # architecture runs, and on x86-64 two builds for newer instruction sets. The baseline exports
  # cpuFeatures(); src/native/binding.ts loads the fastest build this CPU supports and falls back
  # to the baseline, so a copied install never dies with SIGILL. Each build is its own shared
  # object (loaded RTLD_LOCAL by Node), so no inline function compiled for AVX-512 can be shared
  # with the baseline's code.
  "variables": {
    "vla_sources": [
      "src/addon.cc",
      "src/cpu.cc",
      "src/topk.cc",
      "src/diversity.cc",
      "src/patch_diff.cc",
      "src/normalize.cc",
      "src/gather.cc",
      "src/byte_pairs.cc",
      "src/ingest.cc",
      "src/ingest_box.cc",
      "src/ingest_taps.cc",
      "src/ingest_batch.cc"
    ]
  },
  "target_defaults": {
    "sources": ["<@(vla_sources)"],
    "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
    "defines": [
      "NAPI_VERSION=8",
      "NAPI_DISABLE_CPP_EXCEPTIONS",
      "NODE_ADDON_API_DISABLE_DEPRECATED"
    ],
    "cflags_cc!": ["-std=gnu++17"],
    "cflags_cc": ["-std=c++17", "-O3", "-ffp-contract=off", "-pthread"],
    "ldflags": ["-pthread"],
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
  },
  "targets": [
    {
      "target_name": "vla_native",
      "defines": ["VLA_BUILD=\"baseline\""],
      "conditions": [
        ["target_arch=='x64' and OS!='win'", { "cflags_cc": ["-march=x86-64", "-mtune=generic"] }]
      ]
    }
  ],
  "conditions": [
    [
      "target_arch=='x64' and OS!='win' and OS!='mac'",
      {
        "targets": [
          {
            "target_name": "vla_native_avx2",
            "defines": ["VLA_BUILD=\"avx2\""],
            "cflags_cc": [
              "-mavx", "-mavx2", "-mfma", "-mbmi", "-mbmi2",
              "-mtune=generic"
            ]
          },
          {
            "target_name": "vla_native_avx512",
            "defines": ["VLA_BUILD=\"avx512\""],
            "cflags_cc": [
              "-mavx", "-mavx2", "-mfma", "-mbmi", "-mbmi2",
              "-mavx512f", "-mavx512bw", "-mavx512dq", "-mavx512vl", "-mavx512cd", "-mavx512vbmi",
              "-mtune=generic",
              "-mprefer-vector-width=512"
            ]
          }
        ]
      }
    ]
  ]
}
