{
  "targets": [
    {
      "target_name": "mics",
      "sources": [
        "csrc/comm/collective.cc",
        "csrc/comm/progress_thread.cc",
        "csrc/core/build_info.cc",
        "csrc/core/dtype.cc",
        "csrc/core/error.cc",
        "csrc/core/libc_compat.cc",
        "csrc/cpu/cpu_communicator.cc",
        "csrc/cpu/host_region.cc",
        "csrc/cpu/host_region_registry.cc",
        "csrc/cpu/peer_address.cc",
        "csrc/cpu/peer_regions.cc",
        "csrc/cpu/ring_allgather.cc",
        "csrc/cpu/ring_allreduce.cc",
        "csrc/cpu/ring_broadcast.cc",
        "csrc/cpu/ring_reduce_scatter.cc",
        "csrc/cpu/shm_allgather.cc",
        "csrc/cpu/shm_broadcast.cc",
        "csrc/cpu/shm_small.cc",
        "csrc/cpu/shm_direct.cc",
        "csrc/cpu/shm_group.cc",
        "csrc/cpu/shm_reduce.cc",
        "csrc/cpu/shm_segment.cc",
        "csrc/cpu/signature_census.cc",
        "csrc/cpu/socket.cc",
        "csrc/cpu/tcp_ring.cc",
        "csrc/cuda/device_probe.cc",
        "csrc/kernels/checksum.cc",
        "csrc/kernels/copy.cc",
        "csrc/kernels/optimizer.cc",
        "csrc/kernels/optimizer_scalars.cc",
        "csrc/kernels/reduce.cc",
        "csrc/kernels/vector_ops.cc",
        "csrc/napi/addon.cc",
        "csrc/napi/capabilities.cc",
        "csrc/napi/communicator_wrap.cc",
        "csrc/napi/errors.cc",
        "csrc/napi/host_buffer.cc",
        "csrc/napi/kernel_options.cc",
        "csrc/napi/host_kernels.cc",
        "csrc/napi/host_memory.cc",
        "csrc/napi/large_array_buffer.cc",
        "csrc/nccl/nccl_config.cc",
        "csrc/nccl/nccl_library.cc"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "csrc"
      ],
      "defines": [
        "NAPI_VERSION=8",
        "NODE_ADDON_API_DISABLE_DEPRECATED",
        "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS",
        "MICS_VERSION=\"<!(node -p \"require('./package.json').version\")\"",
        "MICS_BUILD_SYSTEM=\"node-gyp\""
      ],
      "cflags!": [
        "-fno-exceptions"
      ],
      "cflags_cc!": [
        "-fno-exceptions",
        "-std=gnu++17"
      ],
      "cflags_cc": [
        "-std=c++17",
        "-fexceptions",
        "-O3",
        "-ffp-contract=off",
        "-fno-math-errno",
        "-fno-trapping-math",
        "-Wall",
        "-Wextra",
        "-Wno-unused-parameter"
      ],
      "ldflags": [
        "-Wl,-z,nodelete",
        "-static-libstdc++",
        "-Wl,--exclude-libs,ALL"
      ],
      "libraries": [
        "-ldl",
        "-lpthread"
      ]
    }
  ]
}
