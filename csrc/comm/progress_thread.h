// A communicator's "stream": one thread that runs its tasks in the order they
// were queued. Blocking collectives run here, never on libuv's pool, so ops on
// two communicators that wait on each other cannot starve a shared pool.
//
// Ending it never has to block the caller: Finish() lets the queued tasks and one
// last task run on the thread itself, and the thread is joined later (Join(), or
// the destructor) once it has, or is about to, end.
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
  ~ProgressThread();  // Finish(), then Join()

  ProgressThread(const ProgressThread&) = delete;
  ProgressThread& operator=(const ProgressThread&) = delete;

  // Returns false (and drops the task) once Finish() or Stop() was called.
  bool Enqueue(std::function<void()> task);
  // Takes no more tasks; the queued ones run, then `last` (if any), then the thread
  // ends. Returns at once. Only the first call counts.
  void Finish(std::function<void()> last = {});
  // Waits for the thread to end (after Finish). Idempotent; not from the thread itself.
  void Join();
  // Finish() and Join().
  void Stop() {
    Finish();
    Join();
  }
  bool OnThread() const { return std::this_thread::get_id() == thread_.get_id(); }

 private:
  void Loop();

  std::string name_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> tasks_;
  std::function<void()> last_;
  bool stopping_ = false;
  std::mutex joinMutex_;  // Join() may race with the destructor's
  std::thread thread_;
};

}  // namespace mics
