// Finds libnccl.so.2 at run time and resolves the symbols we use. Loading is
// explicit and never a link-time dependency: a process without NCCL loads the
// addon fine and is told exactly where we looked.
#pragma once

#include <string>
#include <vector>

#include "nccl/nccl_abi.h"

namespace mics::nccl {

struct Symbols {
  GetVersionFn getVersion = nullptr;
  GetUniqueIdFn getUniqueId = nullptr;
  CommInitRankFn commInitRank = nullptr;
  CommInitRankConfigFn commInitRankConfig = nullptr;  // 2.14+, may be null
  CommSplitFn commSplit = nullptr;                    // 2.18+, may be null
  AllGatherFn allGather = nullptr;
  ReduceScatterFn reduceScatter = nullptr;
  AllReduceFn allReduce = nullptr;
  BroadcastFn broadcast = nullptr;
  GroupFn groupStart = nullptr;
  GroupFn groupEnd = nullptr;
  CommFn commAbort = nullptr;
  CommFn commDestroy = nullptr;
  CommFn commFinalize = nullptr;                      // 2.14+, may be null
  CommGetAsyncErrorFn commGetAsyncError = nullptr;
  GetErrorStringFn getErrorString = nullptr;
  GetLastErrorFn getLastError = nullptr;              // 2.13+, may be null
};

// The places searched, in order, with the environment as it is now. Each entry
// is a full path or the bare soname (left to the dynamic linker, which honours
// LD_LIBRARY_PATH and the system cache).
std::vector<std::string> NcclSearchPaths();

class NcclLibrary {
 public:
  // The process-wide library, loaded on first use. Never throws: check loaded().
  static const NcclLibrary& Get();

  bool loaded() const { return handle_ != nullptr; }
  const std::string& path() const { return path_; }        // where it was found
  int versionCode() const { return versionCode_; }         // raw ncclGetVersion value
  const std::string& error() const { return error_; }      // why not loaded
  const std::vector<std::string>& searched() const { return searched_; }
  const Symbols& symbols() const { return symbols_; }

  // "unhandled system error (ncclResult 2); NCCL says: <ncclGetLastError(comm)>": the
  // result's name and, where the library has it, its own last error's text (what
  // NCCL_DEBUG=WARN would print), so every error says what NCCL saw.
  std::string Describe(Result result, Comm comm) const;

  NcclLibrary(const NcclLibrary&) = delete;
  NcclLibrary& operator=(const NcclLibrary&) = delete;
  ~NcclLibrary();

 private:
  NcclLibrary();
  void Load();
  bool ResolveSymbols(std::string* missing);

  void* handle_ = nullptr;
  std::string path_;
  int versionCode_ = 0;
  std::string error_;
  std::vector<std::string> searched_;
  Symbols symbols_;
};

}  // namespace mics::nccl
