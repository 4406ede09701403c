// The ranks of a communicator that spans nodes, connected in a ring over TCP: each
// rank sends to rank+1 and receives from rank-1. Data moves in framed chunks so
// that an ABORT frame can follow at any point: a failure anywhere travels around
// the ring in both directions with its original code, culprit rank and text.
//
// Rightward (to rank+1) go SIGNATURE, DATA and ABORT frames; leftward only control
// frames: ABORT and PROBE. A rank sees only its left neighbour's call, so when an
// op fails without local proof of who is to blame, it asks around the ring with a
// PROBE that travels leftward, each rank adding its own call:
//   - mismatch: a rank whose left neighbour called something else sends a census
//     probe; once it has come back around, the rank names the deviant from every
//     rank's call (SignatureCensus: the same verdict as over shared memory);
//   - timeout: a rank that timed out inside the op (its left neighbour did call)
//     sends a probe; the first rank that is still waiting for its left
//     neighbour's signature is the one with proof, names that neighbour, and its
//     ABORT frame reaches everyone with that culprit.
//
// RunPipeline() is the one engine behind every ring algorithm (ring_*.cc): it
// moves a sequence of send steps and receive steps concurrently with poll(),
// letting each step start as soon as the bytes it depends on have arrived.
#pragma once

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "comm/collective.h"
#include "core/error.h"
#include "cpu/peer_address.h"
#include "cpu/signature_census.h"
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
  // Where the stream from the left stands when an op stops reading it mid-way:
  // header bytes read so far, or payload bytes of the current frame still to come.
  struct LeftStream {
    char header[16] = {};
    std::size_t headerGot = 0;
    std::size_t payloadLeft = 0;
  };

  // One control frame from the right neighbour: a PROBE is handled (and we return),
  // an ABORT is thrown, a closed socket is kPeerLost.
  void HandleFromRight();
  // With nothing left to send in this op: true when the next frame from the right
  // is a PROBE (handle it); false when it is anything else, left for later.
  bool RightHasProbe();
  void OnProbe(const std::vector<char>& payload);
  void SendProbe(uint32_t kind);
  // Reads and drops what the left neighbour sends, without blocking, until an
  // ABORT frame (thrown) or a closed socket (kPeerLost).
  void DrainLeft(LeftStream& stream);
  [[noreturn]] void ResolveMismatch(const Signature& mine, const Signature& leftSig, Deadline deadline);
  [[noreturn]] void ResolveTimeout(LeftStream stream, int fallbackPeer);
  std::string NeverCalledText(int peer) const;
  bool LeftReadable() const;

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
  // RequestAbort may run on the JS thread while the progress thread waits: the
  // reason is written under the lock before the flag is released and read under it.
  std::atomic<bool> abortRequested_{false};
  mutable std::mutex reasonMutex_;
  std::string requestedReason_;
  std::string currentOp_ = "connect";
  // Bytes of a DATA frame still owed to the right neighbour when an op failed mid-frame.
  std::size_t sendFrameRemaining_ = 0;
  bool abortSent_ = false;
  // The op in progress (its signature, sent right), and whether we are still
  // waiting for the first byte of the left neighbour's signature: the proof a
  // timeout probe looks for.
  Signature currentSig_{};
  bool awaitingLeftSig_ = false;
  // While resolving a failure: the kind of probe we sent (0: none), what it has
  // learned, and whether it came back around.
  uint32_t resolving_ = 0;
  std::unique_ptr<SignatureCensus> census_;
  bool probeReturned_ = false;
};

}  // namespace mics
