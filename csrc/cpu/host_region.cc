#include "cpu/host_region.h"

#include <sys/mman.h>
#include <sys/stat.h>

#include <cerrno>
#include <string>

#include "core/error.h"

namespace mics {

HostRegion::HostRegion(std::size_t bytes) : size_(bytes) {
  if (bytes == 0) throw Error(ErrorCode::kInvalidArgument, "a host region needs at least one byte");
  fd_.reset(memfd_create("mics-host", MFD_CLOEXEC));
  if (!fd_.valid()) throw Error(ErrorCode::kSystem, SystemErrorText("memfd_create", errno));
  if (ftruncate(fd_.get(), static_cast<off_t>(bytes)) != 0) {
    throw Error(ErrorCode::kSystem, SystemErrorText("ftruncate(memfd, " + std::to_string(bytes) + ")", errno));
  }
  struct stat st {};
  if (fstat(fd_.get(), &st) != 0) throw Error(ErrorCode::kSystem, SystemErrorText("fstat(memfd)", errno));
  inode_ = static_cast<uint64_t>(st.st_ino);
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd_.get(), 0);
  if (p == MAP_FAILED) {
    throw Error(ErrorCode::kSystem, SystemErrorText("mmap(memfd, " + std::to_string(bytes) + " bytes)", errno));
  }
  data_ = static_cast<char*>(p);
}

HostRegion::~HostRegion() {
  if (data_) munmap(data_, size_);
}

}  // namespace mics
