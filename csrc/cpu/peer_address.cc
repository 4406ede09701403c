#include "cpu/peer_address.h"

#include <sstream>
#include <vector>

#include "core/error.h"

namespace mics {

namespace {
constexpr const char* kVersion = "mics-cpu-1";
}

std::string PeerAddress::Serialize() const {
  std::ostringstream out;
  out << kVersion << ';' << rank << ';' << node << ';' << pid << ';' << host << ';' << port << ';'
      << shm << ';' << token;
  return out.str();
}

PeerAddress PeerAddress::Parse(const std::string& text) {
  std::vector<std::string> parts;
  std::string part;
  std::istringstream in(text);
  while (std::getline(in, part, ';')) parts.push_back(part);
  if (parts.size() != 8 || parts[0] != kVersion) {
    throw Error(ErrorCode::kInvalidArgument, "malformed peer address '" + text + "' (expected " +
                                                 kVersion + ";rank;node;pid;host;port;shm;token)");
  }
  try {
    PeerAddress a;
    a.rank = std::stoi(parts[1]);
    a.node = std::stoi(parts[2]);
    a.pid = std::stoi(parts[3]);
    a.host = parts[4];
    a.port = std::stoi(parts[5]);
    a.shm = parts[6];
    a.token = parts[7];
    return a;
  } catch (const std::exception&) {
    throw Error(ErrorCode::kInvalidArgument, "malformed peer address '" + text + "'");
  }
}

}  // namespace mics
