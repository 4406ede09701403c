// A communicator's "stream": one thread that runs its tasks in the order they
// were queued. Blocking collectives run here, never on libuv's pool, so ops on
// two communicators that wait on each other cannot starve a shared pool.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace mics {

class ProgressThread {
 public:
  explicit ProgressThread(std::string name);
  ~ProgressThread();  // runs what is queued, then joins

  ProgressThread(const ProgressThread&) = delete;
  ProgressThread& operator=(const ProgressThread&) = delete;

  // Returns false (and drops the task) once Stop() was called.
  bool Enqueue(std::function<void()> task);
  // Lets queued tasks finish, then joins. Idempotent; must not be called from the thread itself.
  void Stop();
  bool OnThread() const { return std::this_thread::get_id() == thread_.get_id(); }

 private:
  void Loop();

  std::string name_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> tasks_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace mics
