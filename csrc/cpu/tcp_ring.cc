#include "cpu/tcp_ring.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

namespace mics {

namespace {

constexpr uint32_t kMagic = 0x5343494du;  // "MICS"
constexpr uint32_t kFrameSignature = 1;
constexpr uint32_t kFrameData = 2;
constexpr uint32_t kFrameAbort = 3;
constexpr uint32_t kFrameProbe = 4;  // leftward only
constexpr std::size_t kChunkBytes = 256 * 1024;
constexpr std::size_t kMaxAbortText = 4096;
constexpr uint32_t kProbeMismatch = 1;
constexpr uint32_t kProbeTimeout = 2;
// How long a rank that timed out without proof of who is to blame waits for the
// answer to its probe. An answer takes one trip around the ring (milliseconds);
// the wait ends early when the answer or the probe itself comes back.
constexpr auto kTimeoutProbeGrace = std::chrono::seconds(2);
// Bounds the blocking reads and writes of one small control frame.
constexpr auto kControlFrameTime = std::chrono::seconds(2);

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

// A PROBE's payload: this header, then one entry per rank of the group.
struct ProbeHeader {
  uint32_t kind;   // kProbeMismatch or kProbeTimeout
  int32_t origin;  // the rank that sent it; it stops there
  uint64_t seq;    // the op it asks about (Signature::seq)
};
struct ProbeEntry {
  uint32_t known;
  uint32_t reserved;
  Signature signature;
};
static_assert(sizeof(ProbeHeader) == 16 && sizeof(ProbeEntry) == 32, "probe layout is part of the wire format");

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
  tcp::SendAll(fd, frame.data(), frame.size(), deadline,
               "rank " + std::to_string(fd == sendFd_.get() ? right() : left()));
}

void TcpRing::ExchangeSignature(const Signature& mine, Deadline deadline) {
  if (abortRequested_.load()) ThrowAbortRequested();
  currentSig_ = mine;
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
  // Until the first byte arrives we hold the proof a timeout probe looks for.
  struct Awaiting {
    bool& flag;
    explicit Awaiting(bool& f) : flag(f) { flag = true; }
    ~Awaiting() { flag = false; }
  } awaiting(awaitingLeftSig_);
  // Poll both neighbours and the wake fd: an ABORT from either side, a closed
  // socket or RequestAbort all end the wait; a PROBE from the right is answered.
  char* target = reinterpret_cast<char*>(&in);
  std::size_t got = 0;
  while (got < sizeof(in)) {
    pollfd fds[3] = {{recvFd_.get(), POLLIN, 0}, {sendFd_.get(), POLLIN, 0}, {wakeFd_.get(), POLLIN, 0}};
    int ready = poll(fds, 3, std::min(tcp::RemainingMs(deadline), 200));
    if (ready < 0 && errno != EINTR) throw MakeError(ErrorCode::kSystem, SystemErrorText("poll", errno), -1);
    if (fds[2].revents) ThrowAbortRequested();
    // The left first: a probe asking whether our left neighbour called must see
    // its signature if it has arrived.
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
      if (got > 0) awaitingLeftSig_ = false;
    }
    if (fds[1].revents) HandleFromRight();
    if (got < sizeof(in) && Clock::now() >= deadline) {
      // Our left neighbour has not (fully) called: we are the rank that knows.
      throw MakeError(ErrorCode::kTimeout, NeverCalledText(left()), left());
    }
  }
  if (in.sig != mine) ResolveMismatch(mine, in.sig, deadline);
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
  bool rightQuiet = false;  // see the poll below

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
    // closed (normal destroy): its close or ABORT must not fail us, so once we
    // have nothing left to send we only take PROBEs from the right (they must
    // travel on), and stop watching it at anything else.
    const bool needLeft = rStep < plan.recvSteps, needRight = sStep < plan.sendSteps;
    const bool watchRight = needRight || !rightQuiet;
    pollfd fds[3] = {{needLeft ? recvFd_.get() : -1, static_cast<short>(rBusy ? POLLIN : 0), 0},
                     {watchRight ? sendFd_.get() : -1, static_cast<short>(POLLIN | (sBusy ? POLLOUT : 0)), 0},
                     {wakeFd_.get(), POLLIN, 0}};
    int ready = poll(fds, 3, std::min(tcp::RemainingMs(deadline), 200));
    if (ready < 0 && errno != EINTR) throw MakeError(ErrorCode::kSystem, SystemErrorText("poll", errno), -1);
    if (fds[2].revents) ThrowAbortRequested();
    if (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) {
      if (needRight || RightHasProbe()) HandleFromRight();
      else rightQuiet = true;
    }
    if (!rBusy && (fds[0].revents & (POLLHUP | POLLERR))) ThrowFromNeighbor(recvFd_.get(), left());
    if (ready == 0 && Clock::now() >= deadline) {
      // We are inside the op, so our left neighbour called it: who is to blame is
      // found by asking around the ring. The left stream may stop mid-frame.
      LeftStream stream;
      if (rBusy && rDone < sizeof(FrameHeader)) {
        std::memcpy(stream.header, &rHeader, rDone);
        stream.headerGot = rDone;
      } else if (rBusy) {
        stream.payloadLeft = sizeof(FrameHeader) + rLen - rDone;
      }
      ResolveTimeout(stream, rBusy ? left() : right());
    }
  }
  sendFrameRemaining_ = 0;
}

void TcpRing::ThrowFromNeighbor(int fd, int neighbor) {
  for (;;) {
    FrameHeader header{};
    try {
      tcp::RecvAll(fd, &header, sizeof(header), Clock::now() + kControlFrameTime, "rank " + std::to_string(neighbor));
    } catch (const Error&) {
      throw MakeError(ErrorCode::kPeerLost,
                      "rank " + std::to_string(neighbor) + " closed its connection during " + currentOp_ +
                          " in group '" + name_ + "' (process exited or aborted)",
                      neighbor);
    }
    if (header.magic == kMagic && header.type == kFrameAbort) ThrowAbortFrame(fd, &header, neighbor);
    // A probe still in the stream before the reason: nobody waits for it now.
    if (fd == sendFd_.get() && header.magic == kMagic && header.type == kFrameProbe &&
        header.length == sizeof(ProbeHeader) + sizeof(ProbeEntry) * static_cast<std::size_t>(size_)) {
      std::vector<char> skip(header.length);
      try {
        tcp::RecvAll(fd, skip.data(), skip.size(), Clock::now() + kControlFrameTime, "rank " + std::to_string(neighbor));
        continue;
      } catch (const Error&) {
        continue;  // the next header read reports the close
      }
    }
    throw MakeError(ErrorCode::kInternal,
                    "protocol error in group '" + name_ + "': unexpected frame from rank " + std::to_string(neighbor),
                    neighbor);
  }
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
  text.resize(strnlen(text.c_str(), text.size()));
  throw RelayedError(info.code, info.culprit, std::move(text), neighbor, size_, rank_, name_, currentOp_);
}

std::string TcpRing::NeverCalledText(int peer) const {
  return "timed out in " + currentOp_ + " in group '" + name_ + "' waiting for rank " + std::to_string(peer) +
         ", which has not called it";
}

bool TcpRing::LeftReadable() const {
  pollfd p{recvFd_.get(), POLLIN, 0};
  return poll(&p, 1, 0) > 0;
}

bool TcpRing::RightHasProbe() {
  FrameHeader header{};
  ssize_t n = recv(sendFd_.get(), &header, sizeof(header), MSG_PEEK | MSG_DONTWAIT);
  if (n > 0 && static_cast<std::size_t>(n) < sizeof(header)) return true;  // rare split header: read it whole
  return n == static_cast<ssize_t>(sizeof(header)) && header.magic == kMagic && header.type == kFrameProbe;
}

void TcpRing::HandleFromRight() {
  const std::string who = "rank " + std::to_string(right());
  FrameHeader header{};
  try {
    tcp::RecvAll(sendFd_.get(), &header, sizeof(header), Clock::now() + kControlFrameTime, who);
  } catch (const Error&) {
    throw MakeError(ErrorCode::kPeerLost,
                    who + " closed its connection during " + currentOp_ + " in group '" + name_ +
                        "' (process exited or aborted)",
                    right());
  }
  if (header.magic == kMagic && header.type == kFrameAbort) ThrowAbortFrame(sendFd_.get(), &header, right());
  const std::size_t probeBytes = sizeof(ProbeHeader) + sizeof(ProbeEntry) * static_cast<std::size_t>(size_);
  if (header.magic != kMagic || header.type != kFrameProbe || header.length != probeBytes) {
    throw MakeError(ErrorCode::kInternal,
                    "protocol error in group '" + name_ + "' during " + currentOp_ + ": unexpected frame from " + who,
                    right());
  }
  std::vector<char> payload(probeBytes);
  try {
    tcp::RecvAll(sendFd_.get(), payload.data(), payload.size(), Clock::now() + kControlFrameTime, who);
  } catch (const Error&) {
    throw MakeError(ErrorCode::kPeerLost,
                    who + " closed its connection during " + currentOp_ + " in group '" + name_ +
                        "' (process exited or aborted)",
                    right());
  }
  OnProbe(payload);
}

namespace {

std::vector<char> EncodeProbe(uint32_t kind, int origin, uint64_t seq, const SignatureCensus& census) {
  std::vector<char> payload(sizeof(ProbeHeader) + sizeof(ProbeEntry) * static_cast<std::size_t>(census.size()));
  ProbeHeader header{kind, origin, seq};
  std::memcpy(payload.data(), &header, sizeof(header));
  for (int r = 0; r < census.size(); ++r) {
    ProbeEntry entry{};
    if (census.Has(r)) {
      entry.known = 1;
      entry.signature = census.Get(r);
    }
    std::memcpy(payload.data() + sizeof(header) + sizeof(entry) * static_cast<std::size_t>(r), &entry, sizeof(entry));
  }
  return payload;
}

}  // namespace

void TcpRing::OnProbe(const std::vector<char>& payload) {
  ProbeHeader header{};
  std::memcpy(&header, payload.data(), sizeof(header));
  if ((header.kind != kProbeMismatch && header.kind != kProbeTimeout) || header.origin < 0 || header.origin >= size_) {
    throw MakeError(ErrorCode::kInternal,
                    "protocol error in group '" + name_ + "': malformed probe from rank " + std::to_string(right()),
                    right());
  }
  SignatureCensus table(size_);
  for (int r = 0; r < size_; ++r) {
    ProbeEntry entry{};
    std::memcpy(&entry, payload.data() + sizeof(header) + sizeof(entry) * static_cast<std::size_t>(r), sizeof(entry));
    if (entry.known) table.Set(r, entry.signature);
  }
  const bool sameOp = header.seq == currentSig_.seq;
  if (header.origin == rank_) {
    // Ours, back around the ring with every rank's answer; an older one is dropped.
    if (census_ && resolving_ == header.kind && sameOp) {
      census_->Merge(table);
      probeReturned_ = true;
    }
    return;
  }
  // A rank still in an earlier op leaves its entry empty rather than report a
  // call that is not the one asked about.
  if (sameOp) {
    table.Set(rank_, currentSig_);
    if (census_ && resolving_ != 0) {
      table.Merge(*census_);
      census_->Merge(table);
    }
  }
  if (header.kind == kProbeTimeout && sameOp && awaitingLeftSig_ && !LeftReadable()) {
    // Someone timed out inside this op, and we are still waiting for our left
    // neighbour to call it: that rank is the one everybody waits for.
    throw MakeError(ErrorCode::kTimeout, NeverCalledText(left()), left());
  }
  const std::vector<char> forward = EncodeProbe(header.kind, header.origin, header.seq, table);
  try {
    WriteFramed(recvFd_.get(), kFrameProbe, forward.data(), forward.size(), Clock::now() + kControlFrameTime);
  } catch (const Error&) {
    // Best effort: a left neighbour that is gone is reported by whoever reads from it.
  }
}

void TcpRing::SendProbe(uint32_t kind) {
  const std::vector<char> payload = EncodeProbe(kind, rank_, currentSig_.seq, *census_);
  try {
    WriteFramed(recvFd_.get(), kFrameProbe, payload.data(), payload.size(), Clock::now() + kControlFrameTime);
  } catch (const Error&) {
    // Best effort, as above: the wait for an answer is bounded anyway.
  }
}

void TcpRing::DrainLeft(LeftStream& stream) {
  const std::string who = "rank " + std::to_string(left());
  auto lost = [&] {
    return MakeError(ErrorCode::kPeerLost,
                     who + " closed its connection during " + currentOp_ + " in group '" + name_ +
                         "' (process exited or aborted)",
                     left());
  };
  char scratch[16384];
  for (;;) {
    ssize_t n;
    if (stream.payloadLeft > 0) {
      n = recv(recvFd_.get(), scratch, std::min(stream.payloadLeft, sizeof(scratch)), MSG_DONTWAIT);
    } else {
      n = recv(recvFd_.get(), stream.header + stream.headerGot, sizeof(stream.header) - stream.headerGot, MSG_DONTWAIT);
    }
    if (n == 0) throw lost();
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
      throw lost();
    }
    if (stream.payloadLeft > 0) {
      stream.payloadLeft -= static_cast<std::size_t>(n);
      continue;
    }
    stream.headerGot += static_cast<std::size_t>(n);
    if (stream.headerGot < sizeof(stream.header)) continue;
    FrameHeader header{};
    std::memcpy(&header, stream.header, sizeof(header));
    stream.headerGot = 0;
    if (header.magic == kMagic && header.type == kFrameAbort) ThrowAbortFrame(recvFd_.get(), &header, left());
    const bool data = header.type == kFrameData && header.length <= kChunkBytes;
    const bool signature = header.type == kFrameSignature && header.length == sizeof(Signature);
    if (header.magic != kMagic || !(data || signature)) {
      throw MakeError(ErrorCode::kInternal,
                      "protocol error in group '" + name_ + "' during " + currentOp_ + ": unexpected frame from " + who,
                      left());
    }
    stream.payloadLeft = header.length;  // dropped: this op has failed
  }
}

namespace {

// Clears the resolution state however the wait ends.
struct ResolvingScope {
  uint32_t& kind;
  ResolvingScope(uint32_t& k, uint32_t value) : kind(k) { kind = value; }
  ~ResolvingScope() { kind = 0; }
};

}  // namespace

void TcpRing::ResolveMismatch(const Signature& mine, const Signature& leftSig, Deadline deadline) {
  census_ = std::make_unique<SignatureCensus>(size_);
  census_->Set(rank_, mine);
  census_->Set(left(), leftSig);
  probeReturned_ = false;
  ResolvingScope scope(resolving_, kProbeMismatch);
  SendProbe(kProbeMismatch);
  // Until our probe is back with every rank's call (a rank that has not called
  // yet holds it until it does), or an ABORT brings another rank's verdict.
  LeftStream stream;
  while (!probeReturned_ && Clock::now() < deadline) {
    pollfd fds[3] = {{recvFd_.get(), POLLIN, 0}, {sendFd_.get(), POLLIN, 0}, {wakeFd_.get(), POLLIN, 0}};
    int ready = poll(fds, 3, std::min(tcp::RemainingMs(deadline), 200));
    if (ready < 0 && errno != EINTR) throw MakeError(ErrorCode::kSystem, SystemErrorText("poll", errno), -1);
    if (fds[2].revents) ThrowAbortRequested();
    if (fds[1].revents) HandleFromRight();
    if (fds[0].revents) DrainLeft(stream);
  }
  const int deviant = census_->Deviant();
  throw MakeError(ErrorCode::kMismatch, census_->Describe(name_), deviant >= 0 ? deviant : left());
}

void TcpRing::ResolveTimeout(LeftStream stream, int fallbackPeer) {
  census_ = std::make_unique<SignatureCensus>(size_);
  census_->Set(rank_, currentSig_);
  probeReturned_ = false;
  ResolvingScope scope(resolving_, kProbeTimeout);
  SendProbe(kProbeTimeout);
  // The rank with proof answers with an ABORT that reaches us from the left; our
  // probe coming back means nobody had proof (every rank called: a slow op).
  const Deadline until = Clock::now() + kTimeoutProbeGrace;
  while (!probeReturned_ && Clock::now() < until) {
    pollfd fds[3] = {{recvFd_.get(), POLLIN, 0}, {sendFd_.get(), POLLIN, 0}, {wakeFd_.get(), POLLIN, 0}};
    int ready = poll(fds, 3, std::min(tcp::RemainingMs(until), 200));
    if (ready < 0 && errno != EINTR) throw MakeError(ErrorCode::kSystem, SystemErrorText("poll", errno), -1);
    if (fds[2].revents) ThrowAbortRequested();
    if (fds[1].revents) HandleFromRight();
    if (fds[0].revents) DrainLeft(stream);
  }
  throw MakeError(ErrorCode::kTimeout,
                  "timed out in " + currentOp_ + " in group '" + name_ + "' waiting for rank " +
                      std::to_string(fallbackPeer),
                  fallbackPeer);
}

void TcpRing::ThrowAbortRequested() {
  std::string reason;
  {
    std::lock_guard<std::mutex> lock(reasonMutex_);
    reason = requestedReason_;
  }
  throw MakeError(ErrorCode::kAborted, "communicator aborted: " + reason, -1);
}

void TcpRing::RequestAbort(const Error& error) {
  {
    std::lock_guard<std::mutex> lock(reasonMutex_);
    if (abortRequested_.load()) return;
    requestedReason_ = error.what();
    abortRequested_.store(true);
  }
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
