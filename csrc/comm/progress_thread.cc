#include "comm/progress_thread.h"

#include <pthread.h>

namespace mics {

ProgressThread::ProgressThread(std::string name) : name_(std::move(name)) {
  thread_ = std::thread([this] { Loop(); });
  // Visible in top/gdb; Linux limits thread names to 15 characters.
  pthread_setname_np(thread_.native_handle(), name_.substr(0, 15).c_str());
}

ProgressThread::~ProgressThread() { Stop(); }

bool ProgressThread::Enqueue(std::function<void()> task) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) return false;
    tasks_.push_back(std::move(task));
  }
  wake_.notify_one();
  return true;
}

void ProgressThread::Finish(std::function<void()> last) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
    last_ = std::move(last);
  }
  wake_.notify_one();
}

void ProgressThread::Join() {
  std::lock_guard<std::mutex> lock(joinMutex_);
  if (thread_.joinable()) thread_.join();
}

void ProgressThread::Loop() {
  // A task that throws must not take the process down (std::terminate): tasks
  // report their own errors, so whatever still escapes is dropped here.
  auto run = [](std::function<void()>& task) {
    try {
      task();
    } catch (...) {
    }
  };
  for (;;) {
    std::function<void()> task;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !tasks_.empty(); });
      if (tasks_.empty()) {  // stopping and drained
        task = std::move(last_);
        lock.unlock();
        if (task) run(task);
        return;
      }
      task = std::move(tasks_.front());
      tasks_.pop_front();
    }
    run(task);
  }
}

}  // namespace mics
