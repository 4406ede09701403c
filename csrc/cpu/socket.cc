#include "cpu/socket.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <thread>

#include "core/error.h"

namespace mics::tcp {

namespace {

sockaddr_storage Resolve(const std::string& host, int port, socklen_t* len) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* result = nullptr;
  std::string service = std::to_string(port);
  int rc = getaddrinfo(host.c_str(), service.c_str(), &hints, &result);
  if (rc != 0 || !result) {
    throw Error(ErrorCode::kInvalidArgument,
                "cannot resolve host '" + host + "': " + gai_strerror(rc));
  }
  sockaddr_storage addr{};
  std::memcpy(&addr, result->ai_addr, result->ai_addrlen);
  *len = result->ai_addrlen;
  freeaddrinfo(result);
  return addr;
}

}  // namespace

int RemainingMs(Deadline deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  if (left <= 0) return 0;
  return left > INT_MAX ? INT_MAX : static_cast<int>(left);
}

void SetNonBlocking(int fd) {
  int flags = fcntl(fd, F_GETFL, 0);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
    throw Error(ErrorCode::kSystem, SystemErrorText("fcntl(O_NONBLOCK)", errno));
  }
}

void SetNoDelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

Listener Listen(const std::string& host) {
  socklen_t len = 0;
  sockaddr_storage addr = Resolve(host, 0, &len);
  UniqueFd fd(socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) throw Error(ErrorCode::kSystem, SystemErrorText("socket", errno));
  int one = 1;
  setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0) {
    throw Error(ErrorCode::kSystem, SystemErrorText("bind(" + host + ":0)", errno));
  }
  if (listen(fd.get(), 128) != 0) throw Error(ErrorCode::kSystem, SystemErrorText("listen", errno));
  SetNonBlocking(fd.get());
  sockaddr_storage bound{};
  socklen_t boundLen = sizeof(bound);
  getsockname(fd.get(), reinterpret_cast<sockaddr*>(&bound), &boundLen);
  Listener listener;
  listener.port = ntohs(bound.ss_family == AF_INET6
                            ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                            : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  listener.fd = std::move(fd);
  return listener;
}

UniqueFd Connect(const std::string& host, int port, Deadline deadline) {
  socklen_t len = 0;
  sockaddr_storage addr = Resolve(host, port, &len);
  const std::string where = host + ":" + std::to_string(port);
  int lastErr = 0;
  auto backoff = std::chrono::milliseconds(5);
  do {
    UniqueFd fd(socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd.valid()) throw Error(ErrorCode::kSystem, SystemErrorText("socket", errno));
    int rc = connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), len);
    if (rc != 0 && errno == EINPROGRESS) {
      pollfd p{fd.get(), POLLOUT, 0};
      int ready = poll(&p, 1, std::min(RemainingMs(deadline), 1000));
      if (ready > 0) {
        int err = 0;
        socklen_t errLen = sizeof(err);
        getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &errLen);
        rc = err == 0 ? 0 : -1;
        errno = err;
      } else {
        errno = ETIMEDOUT;
      }
    }
    if (rc == 0) {
      SetNoDelay(fd.get());
      return fd;
    }
    lastErr = errno;
    // The peer may not be listening yet only if it has not reached setup; retry.
    std::this_thread::sleep_for(backoff);
    backoff = std::min(backoff * 2, std::chrono::milliseconds(200));
  } while (Clock::now() < deadline);
  throw Error(ErrorCode::kTimeout, SystemErrorText("connect(" + where + ")", lastErr));
}

UniqueFd Accept(int listenFd, Deadline deadline) {
  for (;;) {
    pollfd p{listenFd, POLLIN, 0};
    int ready = poll(&p, 1, RemainingMs(deadline));
    if (ready == 0) return UniqueFd();
    if (ready < 0 && errno != EINTR) throw Error(ErrorCode::kSystem, SystemErrorText("poll(accept)", errno));
    int fd = accept4(listenFd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd >= 0) {
      SetNoDelay(fd);
      return UniqueFd(fd);
    }
    if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
      throw Error(ErrorCode::kSystem, SystemErrorText("accept", errno));
    }
  }
}

void SendAll(int fd, const void* data, std::size_t bytes, Deadline deadline, const std::string& what) {
  const char* p = static_cast<const char*>(data);
  while (bytes > 0) {
    ssize_t n = send(fd, p, bytes, MSG_NOSIGNAL);
    if (n > 0) {
      p += n;
      bytes -= static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno != EAGAIN && errno != EINTR) {
      throw Error(ErrorCode::kPeerLost, SystemErrorText("send to " + what, errno));
    }
    pollfd pfd{fd, POLLOUT, 0};
    if (poll(&pfd, 1, RemainingMs(deadline)) == 0) {
      throw Error(ErrorCode::kTimeout, "timed out sending to " + what);
    }
  }
}

void RecvAll(int fd, void* data, std::size_t bytes, Deadline deadline, const std::string& what) {
  char* p = static_cast<char*>(data);
  while (bytes > 0) {
    ssize_t n = recv(fd, p, bytes, 0);
    if (n > 0) {
      p += n;
      bytes -= static_cast<std::size_t>(n);
      continue;
    }
    if (n == 0) throw Error(ErrorCode::kPeerLost, what + " closed the connection");
    if (errno != EAGAIN && errno != EINTR) {
      throw Error(ErrorCode::kPeerLost, SystemErrorText("recv from " + what, errno));
    }
    pollfd pfd{fd, POLLIN, 0};
    if (poll(&pfd, 1, RemainingMs(deadline)) == 0) {
      throw Error(ErrorCode::kTimeout, "timed out receiving from " + what);
    }
  }
}

}  // namespace mics::tcp
