// Small TCP helpers for the CPU backend's setup phase: listen, connect with retry
// until a deadline, accept with a deadline, and whole-buffer send/recv that
// honour a deadline. All sockets are non-blocking; callers poll.
#pragma once

#include <cstddef>
#include <string>

#include "comm/collective.h"
#include "cpu/unique_fd.h"

namespace mics::tcp {

struct Listener {
  UniqueFd fd;
  int port = 0;
};

// Binds host:0 (an IPv4 or IPv6 literal) and listens.
Listener Listen(const std::string& host);
UniqueFd Connect(const std::string& host, int port, Deadline deadline);
// Returns an invalid fd if the deadline passes.
UniqueFd Accept(int listenFd, Deadline deadline);

// Block (with poll) until all bytes moved; throws Error(kTimeout / kPeerLost / kSystem).
void SendAll(int fd, const void* data, std::size_t bytes, Deadline deadline, const std::string& what);
void RecvAll(int fd, void* data, std::size_t bytes, Deadline deadline, const std::string& what);

void SetNonBlocking(int fd);
void SetNoDelay(int fd);
int RemainingMs(Deadline deadline);  // clamped to [0, INT_MAX]

}  // namespace mics::tcp
