// What every rank of a group called for one op, as far as it is known, and the
// verdict on a mismatch. Both transports use it so that a mismatch names the same
// rank on every rank and on either transport: shared memory fills it from every
// rank's posted signature, the TCP ring from a probe sent around the ring.
//
// The deviant: the reference call is the one made by the most ranks (a tie goes
// to the call of the lowest rank among the tied ones); the deviant is the lowest
// rank whose call differs from it. With one rank out of line that is that rank,
// whichever rank it is; with two ranks, rank 1.
#pragma once

#include <string>
#include <vector>

#include "comm/collective.h"

namespace mics {

class SignatureCensus {
 public:
  explicit SignatureCensus(int size);

  int size() const { return static_cast<int>(known_.size()); }
  void Set(int rank, const Signature& signature);
  bool Has(int rank) const { return known_[rank]; }
  const Signature& Get(int rank) const { return signatures_[rank]; }
  bool Complete() const;
  // Takes every entry `other` knows and this one does not.
  void Merge(const SignatureCensus& other);

  // -1 when every known call agrees.
  int Deviant() const;
  // "mismatched collectives in group 'g': rank 1 called allReduce(count=9, ...) #4
  // but ranks 0, 2, 3 called allReduce(count=8, ...) #4", then any further
  // calls, then the ranks whose call is not known.
  std::string Describe(const std::string& group) const;

 private:
  // Distinct known calls, each with its ranks in increasing order; the reference first.
  std::vector<std::pair<Signature, std::vector<int>>> Calls() const;

  std::vector<Signature> signatures_;
  std::vector<bool> known_;
};

}  // namespace mics
