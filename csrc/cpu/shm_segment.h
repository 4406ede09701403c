// A POSIX shared-memory mapping, unmapped on destruction. The creator unlinks the
// name as soon as every peer has mapped it, so a later kill -9 leaks nothing; a
// crash before that point is cleaned by RemoveStaleSegments() at the next start.
#pragma once

#include <cstddef>
#include <string>

namespace mics {

class ShmSegment {
 public:
  ShmSegment() = default;
  static ShmSegment Create(const std::string& name, std::size_t bytes);  // zero-filled
  static ShmSegment Open(const std::string& name);
  ~ShmSegment();
  ShmSegment(ShmSegment&& other) noexcept;
  ShmSegment& operator=(ShmSegment&& other) noexcept;
  ShmSegment(const ShmSegment&) = delete;
  ShmSegment& operator=(const ShmSegment&) = delete;

  void* data() const { return data_; }
  std::size_t size() const { return size_; }
  const std::string& name() const { return name_; }
  void Unlink();  // idempotent; only the creator calls it

 private:
  void Release();
  void* data_ = nullptr;
  std::size_t size_ = 0;
  std::string name_;
  bool owner_ = false;
};

// "/mics-<pid>-<random>": the pid lets a later start tell whose segment is stale.
std::string NewSegmentName();
// Unlinks /dev/shm/mics-<pid>-* whose creating process no longer exists.
void RemoveStaleSegments();

}  // namespace mics
