#include "cpu/host_region.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <cerrno>
#include <string>

#include "core/error.h"

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010  // Linux 5.1; older C libraries lack the name
#endif

namespace mics {

void SealRegion(int fd) {
  // The size is fixed for good (a peer that truncated it would make every reader
  // fault), and once our own writable mapping exists nobody may create another:
  // peers can only map it read-only.
  const int seals = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;
  if (fcntl(fd, F_ADD_SEALS, seals | F_SEAL_FUTURE_WRITE) == 0) return;
  // F_SEAL_FUTURE_WRITE is Linux >= 5.1: older kernels get the size seals only.
  if (errno != EINVAL || fcntl(fd, F_ADD_SEALS, seals) != 0) {
    throw Error(ErrorCode::kSystem, SystemErrorText("fcntl(memfd, F_ADD_SEALS)", errno));
  }
}

HostRegion::HostRegion(std::size_t bytes) : size_(bytes) {
  if (bytes == 0) throw Error(ErrorCode::kInvalidArgument, "a host region needs at least one byte");
  fd_.reset(memfd_create("mics-host", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd_.valid()) throw Error(ErrorCode::kSystem, SystemErrorText("memfd_create", errno));
  // Owner only (memfds start as 0777): peers of the same user open it through /proc.
  if (fchmod(fd_.get(), 0600) != 0) throw Error(ErrorCode::kSystem, SystemErrorText("fchmod(memfd, 0600)", errno));
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
  // After our writable mapping exists (F_SEAL_FUTURE_WRITE forbids new ones).
  try {
    SealRegion(fd_.get());
  } catch (const Error&) {
    munmap(p, bytes);  // the destructor does not run for a constructor that throws
    throw;
  }
  data_ = static_cast<char*>(p);
}

HostRegion::~HostRegion() {
  if (data_) munmap(data_, size_);
}

}  // namespace mics
