// Errors that cross from the core up to JavaScript. Every error carries a stable
// code (becomes Error.code in JS) and, where known, the rank, group and op, so a
// user reading one line of a log on one rank knows what failed where.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

namespace mics {

enum class ErrorCode {
  kInvalidArgument,  // bad input from the caller: names the value and what is valid
  kTimeout,          // an op did not complete before its deadline
  kPeerLost,         // a peer exited or disconnected during an op
  kMismatch,         // ranks called different collectives (op, count, dtype, root)
  kAborted,          // the communicator was aborted (by us, a peer or the user)
  kSystem,           // an OS call failed (errno text included)
  kUnavailable,      // a backend or library is not present on this machine
  kInternal,         // keep last: RelayedError accepts kInvalidArgument..kInternal
};

const char* ErrorCodeName(ErrorCode code);  // "MICS_TIMEOUT", ...

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message, int rank = -1, std::string group = "",
        std::string op = "", int peer = -1)
      : std::runtime_error(message),
        code_(code), rank_(rank), peer_(peer), group_(std::move(group)), op_(std::move(op)) {}

  ErrorCode code() const { return code_; }
  int rank() const { return rank_; }
  int peer() const { return peer_; }
  const std::string& group() const { return group_; }
  const std::string& op() const { return op_; }

 private:
  ErrorCode code_;
  int rank_;
  int peer_;
  std::string group_;
  std::string op_;
};

// errno text with the call that failed: "connect(10.0.0.2:4000): Connection refused".
std::string SystemErrorText(const std::string& what, int err);

// The text of an error a peer relayed to this rank, ending "(reported by rank <peer>)";
// a text relayed further keeps the first rank that reported it (one "reported by").
std::string RelayedErrorText(std::string text, int peer);

// An error `peer` relayed (through shared memory or an ABORT frame), with the code and
// culprit it sent. Both come off the wire and are checked: an invalid code becomes
// kAborted with a note in the text, a culprit outside -1..groupSize-1 becomes `peer`.
// Every rank then reports the original cause, not "aborted by rank <peer>".
Error RelayedError(int32_t wireCode, int32_t wireCulprit, std::string text, int peer, int groupSize, int rank,
                   std::string group, std::string op);

}  // namespace mics
