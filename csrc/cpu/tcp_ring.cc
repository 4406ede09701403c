#include "cpu/tcp_ring.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace mics {

namespace {

constexpr uint32_t kMagic = 0x5343494du;  // "MICS"
constexpr uint32_t kFrameSignature = 1;
constexpr uint32_t kFrameData = 2;
constexpr uint32_t kFrameAbort = 3;
constexpr std::size_t kChunkBytes = 256 * 1024;
constexpr std::size_t kMaxAbortText = 4096;

struct FrameHeader {
  uint32_t magic;
  uint32_t type;
  uint64_t length;
};
static_assert(sizeof(FrameHeader) == 16, "frame header is 16 bytes on the wire");

struct AbortPayload {
  int32_t code;
  int32_t culprit;
};

struct Hello {
  uint32_t magic;
  int32_t rank;
  char token[32];
};

}  // namespace

TcpRing::TcpRing(int rank, int size, std::string name, tcp::Listener listener, std::string token)
    : rank_(rank), size_(size), name_(std::move(name)), listener_(std::move(listener)),
      port_(listener_.port), token_(std::move(token)) {
  wakeFd_.reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wakeFd_.valid()) throw Error(ErrorCode::kSystem, SystemErrorText("eventfd", errno));
}

TcpRing::~TcpRing() = default;

Error TcpRing::MakeError(ErrorCode code, const std::string& message, int peer) const {
  return Error(code, message, rank_, name_, currentOp_, peer);
}

void TcpRing::Connect(const std::vector<PeerAddress>& peers, Deadline deadline) {
  const PeerAddress& rightPeer = peers[right()];
  sendFd_ = tcp::Connect(rightPeer.host, rightPeer.port, deadline);
  Hello hello{};
  hello.magic = kMagic;
  hello.rank = rank_;
  std::memcpy(hello.token, rightPeer.token.data(), std::min(rightPeer.token.size(), sizeof(hello.token)));
  tcp::SendAll(sendFd_.get(), &hello, sizeof(hello), deadline, "rank " + std::to_string(right()));
  // Accept until the left neighbour shows up with our token; strays are dropped.
  while (!recvFd_.valid()) {
    UniqueFd conn = tcp::Accept(listener_.fd.get(), deadline);
    if (!conn.valid()) {
      throw MakeError(ErrorCode::kTimeout,
                      "timed out waiting for rank " + std::to_string(left()) + " to connect in group '" + name_ + "'",
                      left());
    }
    Hello theirs{};
    try {
      tcp::RecvAll(conn.get(), &theirs, sizeof(theirs),
                   std::min(deadline, Clock::now() + std::chrono::seconds(5)), "incoming connection");
    } catch (const Error&) {
      continue;
    }
    std::string presented(theirs.token, strnlen(theirs.token, sizeof(theirs.token)));
    if (theirs.magic != kMagic || theirs.rank != left() || presented != token_) continue;
    char ack = 1;
    tcp::SendAll(conn.get(), &ack, 1, deadline, "rank " + std::to_string(left()));
    recvFd_ = std::move(conn);
  }
  char ack = 0;
  tcp::RecvAll(sendFd_.get(), &ack, 1, deadline, "rank " + std::to_string(right()));
  listener_.fd.reset();  // nobody else may connect
}

void TcpRing::WriteFramed(int fd, uint32_t type, const void* payload, std::size_t bytes, Deadline deadline) {
  FrameHeader header{kMagic, type, bytes};
  std::vector<char> frame(sizeof(header) + bytes);
  std::memcpy(frame.data(), &header, sizeof(header));
  if (bytes) std::memcpy(frame.data() + sizeof(header), payload, bytes);
  tcp::SendAll(fd, frame.data(), frame.size(), deadline, "rank " + std::to_string(right()));
}

void TcpRing::ExchangeSignature(const Signature& mine, Deadline deadline) {
  if (abortRequested_.load()) ThrowAbortRequested();
  try {
    WriteFramed(sendFd_.get(), kFrameSignature, &mine, sizeof(mine), deadline);
  } catch (const Error& e) {
    if (e.code() == ErrorCode::kTimeout) {
      throw MakeError(ErrorCode::kTimeout,
                      "timed out in " + currentOp_ + " in group '" + name_ + "' sending to rank " + std::to_string(right()),
                      right());
    }
    ThrowFromNeighbor(sendFd_.get(), right());  // its ABORT frame, or a plain "closed"
  }
  struct {
    FrameHeader header;
    Signature sig;
  } in{};
  // Poll both neighbours and the wake fd: an ABORT from either side, a closed
  // socket or RequestAbort all end the wait.
  char* target = reinterpret_cast<char*>(&in);
  std::size_t got = 0;
  while (got < sizeof(in)) {
    pollfd fds[3] = {{recvFd_.get(), POLLIN, 0}, {sendFd_.get(), POLLIN, 0}, {wakeFd_.get(), POLLIN, 0}};
    int ready = poll(fds, 3, std::min(tcp::RemainingMs(deadline), 200));
    if (ready < 0 && errno != EINTR) throw MakeError(ErrorCode::kSystem, SystemErrorText("poll", errno), -1);
    if (fds[2].revents) ThrowAbortRequested();
    if (fds[1].revents) ThrowFromNeighbor(sendFd_.get(), right());
    if (fds[0].revents) {
      if (got < sizeof(FrameHeader)) {
        ssize_t n = recv(recvFd_.get(), target + got, sizeof(FrameHeader) - got, 0);
        if (n <= 0 && !(n < 0 && (errno == EAGAIN || errno == EINTR))) ThrowFromNeighbor(recvFd_.get(), left());
        if (n > 0) got += static_cast<std::size_t>(n);
        if (got == sizeof(FrameHeader) && (in.header.magic != kMagic || in.header.type != kFrameSignature ||
                                           in.header.length != sizeof(Signature))) {
          if (in.header.magic == kMagic && in.header.type == kFrameAbort) {
            ThrowAbortFrame(recvFd_.get(), &in.header, left());
          }
          throw MakeError(ErrorCode::kMismatch,
                          "protocol error in group '" + name_ + "': rank " + std::to_string(left()) +
                              " sent data while rank " + std::to_string(rank_) + " expected the signature of " +
                              mine.Describe() + " (the ranks called different collectives)",
                          left());
        }
      } else {
        ssize_t n = recv(recvFd_.get(), target + got, sizeof(in) - got, 0);
        if (n <= 0 && !(n < 0 && (errno == EAGAIN || errno == EINTR))) ThrowFromNeighbor(recvFd_.get(), left());
        if (n > 0) got += static_cast<std::size_t>(n);
      }
    }
    if (got < sizeof(in) && Clock::now() >= deadline) {
      throw MakeError(ErrorCode::kTimeout,
                      "timed out in " + currentOp_ + " in group '" + name_ + "' waiting for rank " +
                          std::to_string(left()),
                      left());
    }
  }
  if (in.sig != mine) {
    throw MakeError(ErrorCode::kMismatch,
                    "mismatched collectives in group '" + name_ + "': rank " + std::to_string(rank_) + " called " +
                        mine.Describe() + " but rank " + std::to_string(left()) + " called " + in.sig.Describe(),
                    left());
  }
}

void TcpRing::RunPipeline(const PipelinePlan& plan, Deadline deadline) {
  int sStep = 0, rStep = 0;
  std::size_t sOff = 0, rOff = 0;  // bytes completed in the current step
  // Outgoing frame in progress.
  bool sBusy = false;
  FrameHeader sHeader{};
  std::size_t sLen = 0, sDone = 0;  // sDone counts header + payload bytes written
  // Incoming frame in progress.
  bool rBusy = false;
  FrameHeader rHeader{};
  std::size_t rLen = 0, rDone = 0;

  auto sendAllowed = [&](int t, std::size_t end) {
    if (plan.sendLag < 0) return true;
    int s = t - plan.sendLag;
    return s < 0 || rStep > s || (rStep == s && rOff >= end);
  };
  auto recvAllowed = [&](int t, std::size_t end) {
    if (plan.recvLag <= 0) return true;
    int s = t - plan.recvLag;
    return s < 0 || sStep > s || (sStep == s && sOff >= end);
  };

  for (;;) {
    bool progressed = true;
    while (progressed) {
      progressed = false;
      while (sStep < plan.sendSteps && !sBusy && plan.sendBytes(sStep) == 0) ++sStep;
      while (rStep < plan.recvSteps && !rBusy && plan.recvBytes(rStep) == 0) ++rStep;
      if (!sBusy && sStep < plan.sendSteps) {
        std::size_t len = std::min(kChunkBytes, plan.sendBytes(sStep) - sOff);
        if (sendAllowed(sStep, sOff + len)) {
          sBusy = true;
          sHeader = FrameHeader{kMagic, kFrameData, len};
          sLen = len;
          sDone = 0;
        }
      }
      if (sBusy) {
        iovec iov[2];
        int count = 0;
        if (sDone < sizeof(FrameHeader)) {
          iov[count++] = {reinterpret_cast<char*>(&sHeader) + sDone, sizeof(FrameHeader) - sDone};
          iov[count++] = {const_cast<char*>(plan.sendData(sStep) + sOff), sLen};
        } else {
          std::size_t payloadDone = sDone - sizeof(FrameHeader);
          iov[count++] = {const_cast<char*>(plan.sendData(sStep) + sOff + payloadDone), sLen - payloadDone};
        }
        msghdr msg{};
        msg.msg_iov = iov;
        msg.msg_iovlen = count;
        ssize_t n = sendmsg(sendFd_.get(), &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno != EAGAIN && errno != EINTR) {
          sendFrameRemaining_ = 0;  // the socket is gone: nothing to pad
          // The neighbour may have aborted (and said why) before closing: report that.
          ThrowFromNeighbor(sendFd_.get(), right());
        }
        if (n > 0) {
          sDone += static_cast<std::size_t>(n);
          progressed = true;
          sendFrameRemaining_ = sizeof(FrameHeader) + sLen - sDone;
          if (sDone == sizeof(FrameHeader) + sLen) {
            sBusy = false;
            sOff += sLen;
            if (sOff == plan.sendBytes(sStep)) {
              ++sStep;
              sOff = 0;
            }
          }
        }
      }
      if (!rBusy && rStep < plan.recvSteps) {
        std::size_t len = std::min(kChunkBytes, plan.recvBytes(rStep) - rOff);
        if (recvAllowed(rStep, rOff + len)) {
          rBusy = true;
          rLen = len;
          rDone = 0;
        }
      }
      if (rBusy) {
        ssize_t n;
        if (rDone < sizeof(FrameHeader)) {
          n = recv(recvFd_.get(), reinterpret_cast<char*>(&rHeader) + rDone, sizeof(FrameHeader) - rDone, MSG_DONTWAIT);
        } else {
          std::size_t payloadDone = rDone - sizeof(FrameHeader);
          n = recv(recvFd_.get(), plan.recvTarget(rStep) + rOff + payloadDone, rLen - payloadDone, MSG_DONTWAIT);
        }
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
          throw MakeError(ErrorCode::kPeerLost,
                          "rank " + std::to_string(left()) + " closed its connection during " + currentOp_ +
                              " in group '" + name_ + "' (process exited or aborted)",
                          left());
        }
        if (n > 0) {
          progressed = true;
          std::size_t before = rDone;
          rDone += static_cast<std::size_t>(n);
          if (before < sizeof(FrameHeader) && rDone == sizeof(FrameHeader)) {
            if (rHeader.magic != kMagic || rHeader.type != kFrameData || rHeader.length != rLen) {
              if (rHeader.magic == kMagic && rHeader.type == kFrameAbort) {
                ThrowAbortFrame(recvFd_.get(), &rHeader, left());
              }
              throw MakeError(ErrorCode::kInternal,
                              "protocol error in group '" + name_ + "' during " + currentOp_ + ": unexpected frame from rank " +
                                  std::to_string(left()),
                              left());
            }
          }
          if (rDone == sizeof(FrameHeader) + rLen) {
            rBusy = false;
            if (plan.onReceived) plan.onReceived(rStep, rOff, rLen);
            rOff += rLen;
            if (rOff == plan.recvBytes(rStep)) {
              ++rStep;
              rOff = 0;
            }
          }
        }
      }
    }
    while (sStep < plan.sendSteps && !sBusy && plan.sendBytes(sStep) == 0) ++sStep;
    while (rStep < plan.recvSteps && !rBusy && plan.recvBytes(rStep) == 0) ++rStep;
    if (sStep >= plan.sendSteps && rStep >= plan.recvSteps) break;

    // A neighbour we no longer need for this op may already have finished and
    // closed (normal destroy): only watch the sides that still have work.
    const bool needLeft = rStep < plan.recvSteps, needRight = sStep < plan.sendSteps;
    pollfd fds[3] = {{needLeft ? recvFd_.get() : -1, static_cast<short>(rBusy ? POLLIN : 0), 0},
                     {needRight ? sendFd_.get() : -1, static_cast<short>(POLLIN | (sBusy ? POLLOUT : 0)), 0},
                     {wakeFd_.get(), POLLIN, 0}};
    int ready = poll(fds, 3, std::min(tcp::RemainingMs(deadline), 200));
    if (ready < 0 && errno != EINTR) throw MakeError(ErrorCode::kSystem, SystemErrorText("poll", errno), -1);
    if (fds[2].revents) ThrowAbortRequested();
    if (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) ThrowFromNeighbor(sendFd_.get(), right());
    if (!rBusy && (fds[0].revents & (POLLHUP | POLLERR))) ThrowFromNeighbor(recvFd_.get(), left());
    if (ready == 0 && Clock::now() >= deadline) {
      int waitingFor = rBusy ? left() : right();
      throw MakeError(ErrorCode::kTimeout,
                      "timed out in " + currentOp_ + " in group '" + name_ + "' waiting for rank " +
                          std::to_string(waitingFor),
                      waitingFor);
    }
  }
  sendFrameRemaining_ = 0;
}

void TcpRing::ThrowFromNeighbor(int fd, int neighbor) {
  FrameHeader header{};
  try {
    tcp::RecvAll(fd, &header, sizeof(header), Clock::now() + std::chrono::seconds(2), "rank " + std::to_string(neighbor));
  } catch (const Error&) {
    throw MakeError(ErrorCode::kPeerLost,
                    "rank " + std::to_string(neighbor) + " closed its connection during " + currentOp_ +
                        " in group '" + name_ + "' (process exited or aborted)",
                    neighbor);
  }
  if (header.magic == kMagic && header.type == kFrameAbort) ThrowAbortFrame(fd, &header, neighbor);
  throw MakeError(ErrorCode::kInternal,
                  "protocol error in group '" + name_ + "': unexpected frame from rank " + std::to_string(neighbor), neighbor);
}

void TcpRing::ThrowAbortFrame(int fd, const void* headerRaw, int neighbor) {
  const auto& header = *static_cast<const FrameHeader*>(headerRaw);
  std::size_t len = std::min<std::size_t>(header.length, kMaxAbortText);
  std::vector<char> body(len);
  try {
    tcp::RecvAll(fd, body.data(), len, Clock::now() + std::chrono::seconds(2), "rank " + std::to_string(neighbor));
  } catch (const Error&) {
    body.clear();
  }
  AbortPayload info{static_cast<int32_t>(ErrorCode::kAborted), neighbor};
  std::memcpy(&info, body.data(), std::min(body.size(), sizeof(info)));
  std::string text(body.begin() + std::min(body.size(), sizeof(info)), body.end());
  // Keep the original code and culprit: every rank reports the real cause.
  throw MakeError(static_cast<ErrorCode>(info.code), text + " (reported by rank " + std::to_string(neighbor) + ")",
                  info.culprit);
}

void TcpRing::ThrowAbortRequested() {
  throw MakeError(ErrorCode::kAborted, "communicator aborted: " + requestedReason_, -1);
}

void TcpRing::RequestAbort(const Error& error) {
  if (abortRequested_.exchange(true)) return;
  requestedReason_ = error.what();
  uint64_t one = 1;
  if (write(wakeFd_.get(), &one, sizeof(one)) < 0) {
    // Nothing to do: the flag alone ends the next wait.
  }
}

void TcpRing::SendAbort(const Error& error) {
  if (abortSent_) return;
  abortSent_ = true;
  AbortPayload info{static_cast<int32_t>(error.code()), error.peer()};
  std::string text = error.what();
  if (text.size() > kMaxAbortText - sizeof(info)) text.resize(kMaxAbortText - sizeof(info));
  std::vector<char> body(sizeof(info) + text.size());
  std::memcpy(body.data(), &info, sizeof(info));
  std::memcpy(body.data() + sizeof(info), text.data(), text.size());
  Deadline quick = Clock::now() + std::chrono::milliseconds(500);
  // Best effort: a neighbour that is gone or not reading must not delay us.
  try {
    if (sendFd_.valid()) {
      if (sendFrameRemaining_ > 0) {
        std::vector<char> pad(sendFrameRemaining_, 0);
        tcp::SendAll(sendFd_.get(), pad.data(), pad.size(), quick, "right");
      }
      WriteFramed(sendFd_.get(), kFrameAbort, body.data(), body.size(), quick);
    }
  } catch (const Error&) {
  }
  try {
    if (recvFd_.valid()) WriteFramed(recvFd_.get(), kFrameAbort, body.data(), body.size(), quick);
  } catch (const Error&) {
  }
  if (sendFd_.valid()) shutdown(sendFd_.get(), SHUT_RDWR);
  if (recvFd_.valid()) shutdown(recvFd_.get(), SHUT_RDWR);
}

}  // namespace mics
