#include "nccl/nccl_library.h"

#include <dlfcn.h>
#include <glob.h>

#include <cstdlib>
#include <set>

namespace mics::nccl {

namespace {

constexpr const char* kSoname = "libnccl.so.2";

std::string EnvOr(const char* name, const std::string& fallback = "") {
  const char* value = std::getenv(name);
  return value && *value ? std::string(value) : fallback;
}

void AddGlob(const std::string& pattern, std::vector<std::string>* out) {
  glob_t matches{};
  if (glob(pattern.c_str(), 0, nullptr, &matches) == 0) {
    for (size_t i = 0; i < matches.gl_pathc; ++i) out->push_back(matches.gl_pathv[i]);
  }
  globfree(&matches);
}

// Python site-package roots where pip puts nvidia-nccl-cu12 / -cu13 wheels.
std::vector<std::string> PythonSiteRoots() {
  std::vector<std::string> roots;
  for (const char* env : {"VIRTUAL_ENV", "CONDA_PREFIX"}) {
    std::string prefix = EnvOr(env);
    if (!prefix.empty()) roots.push_back(prefix + "/lib/python3*/site-packages");
  }
  std::string home = EnvOr("HOME");
  if (!home.empty()) roots.push_back(home + "/.local/lib/python3*/site-packages");
  for (const char* prefix : {"/usr/local/lib", "/usr/lib", "/opt/conda/lib"}) {
    roots.push_back(std::string(prefix) + "/python3*/site-packages");
    roots.push_back(std::string(prefix) + "/python3*/dist-packages");
  }
  roots.push_back("/usr/lib/python3/dist-packages");
  return roots;
}

}  // namespace

std::vector<std::string> NcclSearchPaths() {
  std::vector<std::string> paths;
  std::string explicitPath = EnvOr("MICS_NCCL_LIBRARY");
  if (!explicitPath.empty()) paths.push_back(explicitPath);
  // The dynamic linker's own search: LD_LIBRARY_PATH, then ld.so.cache and /usr/lib.
  paths.push_back(kSoname);
  std::string ncclHome = EnvOr("NCCL_HOME");
  if (!ncclHome.empty()) {
    paths.push_back(ncclHome + "/lib/" + kSoname);
    paths.push_back(ncclHome + "/lib64/" + kSoname);
  }
  for (const std::string& cuda :
       {EnvOr("CUDA_HOME"), EnvOr("CUDA_PATH"), std::string("/usr/local/cuda")}) {
    if (cuda.empty()) continue;
    paths.push_back(cuda + "/lib64/" + kSoname);
    paths.push_back(cuda + "/lib/" + kSoname);
    paths.push_back(cuda + "/targets/x86_64-linux/lib/" + kSoname);
  }
  std::vector<std::string> wheelHits;
  for (const std::string& root : PythonSiteRoots()) {
    // Listed as the pattern when nothing matches, so the error names it.
    std::string pattern = root + "/nvidia/nccl/lib/" + kSoname;
    size_t before = wheelHits.size();
    AddGlob(pattern, &wheelHits);
    if (wheelHits.size() == before) paths.push_back(pattern);
    for (size_t i = before; i < wheelHits.size(); ++i) paths.push_back(wheelHits[i]);
  }
  // Drop repeats (CUDA_HOME is often /usr/local/cuda) but keep the order.
  std::vector<std::string> unique;
  std::set<std::string> seen;
  for (auto& p : paths) {
    if (seen.insert(p).second) unique.push_back(p);
  }
  return unique;
}

const NcclLibrary& NcclLibrary::Get() {
  static NcclLibrary library;
  return library;
}

NcclLibrary::NcclLibrary() { Load(); }

NcclLibrary::~NcclLibrary() {
  if (handle_) dlclose(handle_);
}

void NcclLibrary::Load() {
  searched_ = NcclSearchPaths();
  std::string lastDlError;
  for (const std::string& candidate : searched_) {
    if (candidate.find('*') != std::string::npos) continue;  // an unmatched glob
    void* handle = dlopen(candidate.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
      const char* err = dlerror();
      // A file that exists but fails to load is worth reporting over "not found".
      if (err && std::string(err).find("No such file") == std::string::npos) lastDlError = err;
      continue;
    }
    handle_ = handle;
    char resolved[4096] = {0};
    // Report the real file the linker picked, not the bare soname.
    if (dlinfo(handle, RTLD_DI_ORIGIN, resolved) == 0 && resolved[0]) {
      path_ = std::string(resolved) + "/" + kSoname;
    } else {
      path_ = candidate;
    }
    break;
  }
  if (!handle_) {
    error_ = std::string(kSoname) + " not found";
    if (!lastDlError.empty()) error_ += " (last load error: " + lastDlError + ")";
    return;
  }
  std::string missing;
  if (!ResolveSymbols(&missing)) {
    error_ = path_ + " is missing required symbol " + missing;
    dlclose(handle_);
    handle_ = nullptr;
    return;
  }
  if (symbols_.getVersion(&versionCode_) != kSuccess) {
    error_ = path_ + ": ncclGetVersion failed";
    dlclose(handle_);
    handle_ = nullptr;
  }
}

std::string NcclLibrary::Describe(Result result, Comm comm) const {
  const char* name = symbols_.getErrorString ? symbols_.getErrorString(result) : nullptr;
  std::string text = std::string(name && *name ? name : "unknown error") + " (ncclResult " +
                     std::to_string(static_cast<int>(result)) + ")";
  const char* last = symbols_.getLastError ? symbols_.getLastError(comm) : nullptr;
  if (last && *last) {
    std::string detail(last);
    while (!detail.empty() && (detail.back() == '\n' || detail.back() == ' ')) detail.pop_back();
    if (!detail.empty()) text += "; NCCL says: " + detail;
  }
  return text;
}

bool NcclLibrary::ResolveSymbols(std::string* missing) {
  auto resolve = [&](const char* name, auto* slot, bool required) {
    *slot = reinterpret_cast<std::remove_pointer_t<decltype(slot)>>(dlsym(handle_, name));
    if (!*slot && required && missing->empty()) *missing = name;
  };
  resolve("ncclGetVersion", &symbols_.getVersion, true);
  resolve("ncclGetUniqueId", &symbols_.getUniqueId, true);
  resolve("ncclCommInitRank", &symbols_.commInitRank, true);
  resolve("ncclCommInitRankConfig", &symbols_.commInitRankConfig, false);
  resolve("ncclCommSplit", &symbols_.commSplit, false);
  resolve("ncclAllGather", &symbols_.allGather, true);
  resolve("ncclReduceScatter", &symbols_.reduceScatter, true);
  resolve("ncclAllReduce", &symbols_.allReduce, true);
  resolve("ncclBroadcast", &symbols_.broadcast, true);
  resolve("ncclGroupStart", &symbols_.groupStart, true);
  resolve("ncclGroupEnd", &symbols_.groupEnd, true);
  resolve("ncclCommAbort", &symbols_.commAbort, true);
  resolve("ncclCommDestroy", &symbols_.commDestroy, true);
  resolve("ncclCommGetAsyncError", &symbols_.commGetAsyncError, true);
  resolve("ncclGetErrorString", &symbols_.getErrorString, true);
  resolve("ncclCommFinalize", &symbols_.commFinalize, false);
  resolve("ncclGetLastError", &symbols_.getLastError, false);
  return missing->empty();
}

}  // namespace mics::nccl
