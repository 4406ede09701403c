{
  "targets": [
    {
      "target_name": "mics",
      "sources": [
        "csrc/core/build_info.cc",
        "csrc/core/error.cc",
        "csrc/cuda/device_probe.cc",
        "csrc/nccl/nccl_library.cc",
        "csrc/napi/addon.cc",
        "csrc/napi/capabilities.cc"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "csrc"
      ],
      "defines": [
        "NAPI_VERSION=8",
        "NODE_ADDON_API_DISABLE_DEPRECATED",
        "MICS_VERSION=\"<!(node -p \"require('./package.json').version\")\"",
        "MICS_BUILD_SYSTEM=\"node-gyp\""
      ],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-O3", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "libraries": ["-ldl", "-lpthread"]
    }
  ]
}
