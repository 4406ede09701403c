// The interface every backend implements. Run() executes one collective to
// completion on the calling thread, which is always the communicator's own
// progress thread (see ProgressThread); Abort() may be called from any thread and
// makes a running or later Run() fail promptly.
#pragma once

#include <string>

#include "comm/collective.h"

namespace mics {

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual const std::string& name() const = 0;  // the group's name, used in every error

  // Throws mics::Error with rank, group and op filled in.
  virtual void Run(const Collective& collective, Deadline deadline) = 0;

  // Idempotent; the first reason is kept and reported by every later call.
  virtual void Abort(const std::string& reason) = 0;
  virtual bool aborted() const = 0;
};

}  // namespace mics
