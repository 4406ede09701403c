// What one rank publishes through the store so that its peers can reach it.
#pragma once

#include <string>

namespace mics {

struct PeerAddress {
  int rank = -1;
  int node = -1;       // the launcher's node rank: locality never comes from hostnames
  int pid = 0;
  std::string host;    // where its TCP listener is bound
  int port = 0;
  std::string shm;     // its shared-memory control segment
  std::string token;   // random per endpoint: a connection must present it

  std::string Serialize() const;
  static PeerAddress Parse(const std::string& text);  // throws Error(kInvalidArgument)
};

}  // namespace mics
