#include "cpu/shm_segment.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <random>
#include <utility>

#include "core/error.h"
#include "cpu/unique_fd.h"

namespace mics {

ShmSegment ShmSegment::Create(const std::string& name, std::size_t bytes) {
  UniqueFd fd(shm_open(name.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600));
  if (!fd.valid()) throw Error(ErrorCode::kSystem, SystemErrorText("shm_open(" + name + ")", errno));
  ShmSegment seg;
  seg.name_ = name;
  seg.owner_ = true;
  if (ftruncate(fd.get(), static_cast<off_t>(bytes)) != 0) {
    int err = errno;
    shm_unlink(name.c_str());
    throw Error(ErrorCode::kSystem, SystemErrorText("ftruncate(" + name + ")", err));
  }
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
  if (p == MAP_FAILED) {
    int err = errno;
    shm_unlink(name.c_str());
    throw Error(ErrorCode::kSystem, SystemErrorText("mmap(" + name + ")", err));
  }
  seg.data_ = p;
  seg.size_ = bytes;
  return seg;
}

ShmSegment ShmSegment::Open(const std::string& name) {
  UniqueFd fd(shm_open(name.c_str(), O_RDWR | O_CLOEXEC, 0600));
  if (!fd.valid()) throw Error(ErrorCode::kSystem, SystemErrorText("shm_open(" + name + ")", errno));
  struct stat st {};
  if (fstat(fd.get(), &st) != 0) throw Error(ErrorCode::kSystem, SystemErrorText("fstat(" + name + ")", errno));
  void* p = mmap(nullptr, static_cast<std::size_t>(st.st_size), PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
  if (p == MAP_FAILED) throw Error(ErrorCode::kSystem, SystemErrorText("mmap(" + name + ")", errno));
  ShmSegment seg;
  seg.name_ = name;
  seg.data_ = p;
  seg.size_ = static_cast<std::size_t>(st.st_size);
  return seg;
}

ShmSegment::~ShmSegment() { Release(); }

ShmSegment::ShmSegment(ShmSegment&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      name_(std::move(other.name_)),
      owner_(std::exchange(other.owner_, false)) {}

ShmSegment& ShmSegment::operator=(ShmSegment&& other) noexcept {
  if (this != &other) {
    Release();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    name_ = std::move(other.name_);
    owner_ = std::exchange(other.owner_, false);
  }
  return *this;
}

void ShmSegment::Unlink() {
  if (owner_) {
    shm_unlink(name_.c_str());
    owner_ = false;
  }
}

void ShmSegment::Release() {
  Unlink();
  if (data_) munmap(data_, size_);
  data_ = nullptr;
}

std::string NewSegmentName() {
  std::random_device rd;
  uint64_t r = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  char buf[64];
  snprintf(buf, sizeof(buf), "/mics-%d-%016llx", static_cast<int>(getpid()),
           static_cast<unsigned long long>(r));
  return buf;
}

void RemoveStaleSegments() {
  DIR* dir = opendir("/dev/shm");
  if (!dir) return;
  while (dirent* entry = readdir(dir)) {
    int pid = 0;
    if (sscanf(entry->d_name, "mics-%d-", &pid) != 1 || pid <= 0) continue;
    if (kill(pid, 0) == 0 || errno != ESRCH) continue;  // creator alive (or not ours to judge)
    shm_unlink((std::string("/") + entry->d_name).c_str());
  }
  closedir(dir);
}

}  // namespace mics
