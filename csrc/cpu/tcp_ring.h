// The ranks of a communicator that spans nodes, connected in a ring over TCP: each
// rank sends to rank+1 and receives from rank-1. Data moves in framed chunks so
// that an ABORT frame can follow at any point: a failure anywhere travels around
// the ring in both directions with its original code, culprit rank and text.
//
// RunPipeline() is the one engine behind every ring algorithm (ring_*.cc): it
// moves a sequence of send steps and receive steps concurrently with poll(),
// letting each step start as soon as the bytes it depends on have arrived.
#pragma once

#include <atomic>
#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "comm/collective.h"
#include "core/error.h"
#include "cpu/peer_address.h"
#include "cpu/socket.h"
#include "cpu/unique_fd.h"

namespace mics {

struct PipelinePlan {
  int sendSteps = 0;
  int recvSteps = 0;
  std::function<std::size_t(int)> sendBytes;
  std::function<const char*(int)> sendData;
  std::function<std::size_t(int)> recvBytes;
  std::function<char*(int)> recvTarget;                           // raw bytes land here
  std::function<void(int, std::size_t, std::size_t)> onReceived;  // (step, offset, length), optional
  // Send step t may send bytes [o, o+len) once receive step t-sendLag has processed
  // them (ring: 1, chain: 0; -1: no dependency).
  int sendLag = -1;
  // Receive step t may land bytes [o, o+len) once send step t-recvLag has sent them
  // (double-buffered reductions: 1; 0: no dependency).
  int recvLag = 0;
};

class TcpRing {
 public:
  TcpRing(int rank, int size, std::string name, tcp::Listener listener, std::string token);
  ~TcpRing();

  int port() const { return port_; }
  void Connect(const std::vector<PeerAddress>& peers, Deadline deadline);

  // Sends our signature right, receives the left one, throws kMismatch on a difference.
  void ExchangeSignature(const Signature& mine, Deadline deadline);
  void RunPipeline(const PipelinePlan& plan, Deadline deadline);

  int rank() const { return rank_; }
  int size() const { return size_; }
  int left() const { return (rank_ + size_ - 1) % size_; }
  int right() const { return (rank_ + 1) % size_; }
  void SetCurrentOp(std::string description) { currentOp_ = std::move(description); }

  // Thread-safe: wakes a running pipeline. Frames are sent by SendAbort.
  void RequestAbort(const Error& error);
  // Progress thread (or after it stopped): tells both neighbours, then closes.
  void SendAbort(const Error& error);
  bool abortRequested() const { return abortRequested_.load(); }

 private:
  [[noreturn]] void ThrowFromNeighbor(int fd, int neighbor);
  [[noreturn]] void ThrowAbortFrame(int fd, const void* header, int neighbor);
  [[noreturn]] void ThrowAbortRequested();
  void WriteFramed(int fd, uint32_t type, const void* payload, std::size_t bytes, Deadline deadline);
  Error MakeError(ErrorCode code, const std::string& message, int peer) const;

  int rank_;
  int size_;
  std::string name_;
  tcp::Listener listener_;
  int port_;
  std::string token_;
  UniqueFd sendFd_;  // to right
  UniqueFd recvFd_;  // from left
  UniqueFd wakeFd_;  // eventfd: RequestAbort wakes poll()
  std::atomic<bool> abortRequested_{false};
  std::string requestedReason_;
  std::string currentOp_ = "connect";
  // Bytes of a DATA frame still owed to the right neighbour when an op failed mid-frame.
  std::size_t sendFrameRemaining_ = 0;
  bool abortSent_ = false;
};

}  // namespace mics
