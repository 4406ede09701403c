#include "core/error.h"

#include <cstring>

namespace mics {
namespace {

// A code received from a peer: true and *code set when `value` is one of ours.
bool ErrorCodeFromWire(int32_t value, ErrorCode* code) {
  if (value < static_cast<int32_t>(ErrorCode::kInvalidArgument) || value > static_cast<int32_t>(ErrorCode::kInternal)) {
    return false;
  }
  *code = static_cast<ErrorCode>(value);
  return true;
}

}  // namespace

const char* ErrorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument: return "MICS_INVALID_ARGUMENT";
    case ErrorCode::kTimeout: return "MICS_TIMEOUT";
    case ErrorCode::kPeerLost: return "MICS_PEER_LOST";
    case ErrorCode::kMismatch: return "MICS_MISMATCH";
    case ErrorCode::kAborted: return "MICS_ABORTED";
    case ErrorCode::kSystem: return "MICS_SYSTEM";
    case ErrorCode::kUnavailable: return "MICS_UNAVAILABLE";
    case ErrorCode::kInternal: return "MICS_INTERNAL";
  }
  return "MICS_INTERNAL";
}

std::string SystemErrorText(const std::string& what, int err) {
  char buf[256];
  // GNU strerror_r returns the message pointer (which may not be buf).
  const char* text = strerror_r(err, buf, sizeof(buf));
  return what + ": " + text;
}

std::string RelayedErrorText(std::string text, int peer) {
  if (text.find(" (reported by rank ") == std::string::npos) text += " (reported by rank " + std::to_string(peer) + ")";
  return text;
}

Error RelayedError(int32_t wireCode, int32_t wireCulprit, std::string text, int peer, int groupSize, int rank,
                   std::string group, std::string op) {
  ErrorCode code = ErrorCode::kAborted;
  if (!ErrorCodeFromWire(wireCode, &code)) {
    text += " [rank " + std::to_string(peer) + " sent an invalid error code " + std::to_string(wireCode) + "]";
  }
  const int culprit = wireCulprit >= -1 && wireCulprit < groupSize ? wireCulprit : peer;
  return Error(code, RelayedErrorText(std::move(text), peer), rank, std::move(group), std::move(op), culprit);
}

}  // namespace mics
