// Our own declarations of NCCL's C ABI (facts from NCCL's public nccl.h, see
// shared/reference/nccl-abi.md). We never include nccl.h: the addon must build
// without NCCL headers and load on machines without libnccl, so every symbol is
// resolved with dlsym at run time through these types.
#pragma once

#include <climits>
#include <cstddef>

namespace mics::nccl {

constexpr std::size_t kUniqueIdBytes = 128;
struct UniqueId {
  char internal[kUniqueIdBytes];
};
static_assert(sizeof(UniqueId) == 128, "ncclUniqueId is 128 bytes");

using Comm = struct OpaqueComm*;      // ncclComm_t
using CudaStream = struct OpaqueStream*;  // cudaStream_t

// ncclResult_t
enum Result : int {
  kSuccess = 0,
  kUnhandledCudaError = 1,
  kSystemError = 2,
  kInternalError = 3,
  kInvalidArgument = 4,
  kInvalidUsage = 5,
  kRemoteError = 6,  // 2.13+
  kInProgress = 7,   // 2.14+
  kTimeout = 8,      // 2.30+
};

// ncclRedOp_t
enum RedOp : int { kSum = 0, kProd = 1, kMax = 2, kMin = 3, kAvg = 4 /* 2.10+ */ };

// ncclDataType_t
enum DataType : int {
  kInt8 = 0, kUint8 = 1, kInt32 = 2, kUint32 = 3, kInt64 = 4, kUint64 = 5,
  kFloat16 = 6, kFloat32 = 7, kFloat64 = 8, kBfloat16 = 9,
  kFloat8e4m3 = 10, kFloat8e5m2 = 11,  // 2.24+
};

constexpr int kSplitNoColor = -1;  // NCCL_SPLIT_NOCOLOR, 2.18+
constexpr int kConfigUndefInt = INT_MIN;
constexpr unsigned kConfigMagic = 0xcafebeef;

// ncclConfig_t as NCCL 2.18 declares it (ncclConfig_v21700 plus splitShare). NCCL
// copies min(size, its own sizeof) bytes of what we pass and then, for every field
// newer than `version`, puts its default back. So `version` must name THIS layout,
// never the loaded library's version: with a 2.26+ library and version = 2.26, NCCL
// would keep `trafficClass` (offset 44, added in 2.26) read from our padding.
struct Config {
  std::size_t size;        // sizeof(Config)
  unsigned magic;          // kConfigMagic
  unsigned version;        // kConfigLayoutVersion
  int blocking;            // 2.14
  int cgaClusterSize;      // 2.17
  int minCTAs;             // 2.17
  int maxCTAs;             // 2.17
  const char* netName;     // 2.17
  int splitShare;          // 2.18
};
// NCCL_VERSION(2, 18, 0): the release whose layout Config declares.
constexpr unsigned kConfigLayoutVersion = 21800;

// The offsets of NCCL's own declaration (LP64), field by field: a change here would
// make NCCL read one field as another.
static_assert(sizeof(void*) == 8 && sizeof(std::size_t) == 8, "ncclConfig_t offsets below assume LP64");
static_assert(offsetof(Config, size) == 0, "ncclConfig_t.size");
static_assert(offsetof(Config, magic) == 8, "ncclConfig_t.magic");
static_assert(offsetof(Config, version) == 12, "ncclConfig_t.version");
static_assert(offsetof(Config, blocking) == 16, "ncclConfig_t.blocking");
static_assert(offsetof(Config, cgaClusterSize) == 20, "ncclConfig_t.cgaClusterSize");
static_assert(offsetof(Config, minCTAs) == 24, "ncclConfig_t.minCTAs");
static_assert(offsetof(Config, maxCTAs) == 28, "ncclConfig_t.maxCTAs");
static_assert(offsetof(Config, netName) == 32, "ncclConfig_t.netName");
static_assert(offsetof(Config, splitShare) == 40, "ncclConfig_t.splitShare");
// 44..47 is padding here; NCCL >= 2.26 has trafficClass there, which the version
// above makes it ignore (and MakeConfig zeroes).
static_assert(sizeof(Config) == 48, "ncclConfig_t (2.18 layout) is 48 bytes");

// Function pointer types, one per symbol we resolve.
using GetVersionFn = Result (*)(int* version);
using GetUniqueIdFn = Result (*)(UniqueId* id);
using CommInitRankFn = Result (*)(Comm* comm, int nranks, UniqueId id, int rank);
using CommInitRankConfigFn = Result (*)(Comm* comm, int nranks, UniqueId id, int rank,
                                        Config* config);
using CommSplitFn = Result (*)(Comm parent, int color, int key, Comm* out, Config* config);
using AllGatherFn = Result (*)(const void* send, void* recv, std::size_t sendcount, DataType,
                               Comm, CudaStream);
using ReduceScatterFn = Result (*)(const void* send, void* recv, std::size_t recvcount,
                                   DataType, RedOp, Comm, CudaStream);
using AllReduceFn = Result (*)(const void* send, void* recv, std::size_t count, DataType,
                               RedOp, Comm, CudaStream);
using BroadcastFn = Result (*)(const void* send, void* recv, std::size_t count, DataType,
                               int root, Comm, CudaStream);
using GroupFn = Result (*)();
using CommFn = Result (*)(Comm);  // ncclCommAbort, ncclCommDestroy, ncclCommFinalize (2.14+)
using CommGetAsyncErrorFn = Result (*)(Comm, Result* asyncError);
using GetErrorStringFn = const char* (*)(Result);
using GetLastErrorFn = const char* (*)(Comm);  // 2.13+: the last error's text (comm may be null)

// ncclGetVersion's encoding changed after 2.8: X*10000+Y*100+Z, before X*1000+Y*100+Z.
struct Version {
  int major;
  int minor;
  int patch;
};
constexpr Version DecodeVersion(int code) {
  return code >= 10000 ? Version{code / 10000, (code % 10000) / 100, code % 100}
                       : Version{code / 1000, (code % 1000) / 100, code % 100};
}
static_assert(DecodeVersion(22304).major == 2 && DecodeVersion(22304).minor == 23 &&
                  DecodeVersion(22304).patch == 4,
              "2.23.4 decodes");
static_assert(DecodeVersion(2708).major == 2 && DecodeVersion(2708).minor == 7 &&
                  DecodeVersion(2708).patch == 8,
              "2.7.8 decodes (old encoding)");

}  // namespace mics::nccl
