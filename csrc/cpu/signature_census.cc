#include "cpu/signature_census.h"

#include <algorithm>

namespace mics {

namespace {

std::string RankList(const std::vector<int>& ranks) {
  std::string text = ranks.size() == 1 ? "rank " : "ranks ";
  for (std::size_t i = 0; i < ranks.size(); ++i) {
    if (i > 0) text += ", ";
    text += std::to_string(ranks[i]);
  }
  return text;
}

}  // namespace

SignatureCensus::SignatureCensus(int size) : signatures_(size), known_(size, false) {}

void SignatureCensus::Set(int rank, const Signature& signature) {
  signatures_[rank] = signature;
  known_[rank] = true;
}

bool SignatureCensus::Complete() const {
  return std::all_of(known_.begin(), known_.end(), [](bool k) { return k; });
}

void SignatureCensus::Merge(const SignatureCensus& other) {
  for (int r = 0; r < size() && r < other.size(); ++r) {
    if (!known_[r] && other.known_[r]) Set(r, other.signatures_[r]);
  }
}

std::vector<std::pair<Signature, std::vector<int>>> SignatureCensus::Calls() const {
  std::vector<std::pair<Signature, std::vector<int>>> calls;  // in order of their lowest rank
  for (int r = 0; r < size(); ++r) {
    if (!known_[r]) continue;
    auto it = std::find_if(calls.begin(), calls.end(), [&](const auto& c) { return c.first == signatures_[r]; });
    if (it == calls.end()) calls.push_back({signatures_[r], {r}});
    else it->second.push_back(r);
  }
  // Most ranks first; stable, so a tie keeps the call of the lowest rank first.
  std::stable_sort(calls.begin(), calls.end(),
                   [](const auto& a, const auto& b) { return a.second.size() > b.second.size(); });
  return calls;
}

int SignatureCensus::Deviant() const {
  const auto calls = Calls();
  if (calls.size() < 2) return -1;
  int deviant = -1;
  for (std::size_t i = 1; i < calls.size(); ++i) {
    const int lowest = calls[i].second.front();
    if (deviant < 0 || lowest < deviant) deviant = lowest;
  }
  return deviant;
}

std::string SignatureCensus::Describe(const std::string& group) const {
  const auto calls = Calls();
  const int deviant = Deviant();
  std::string text = "mismatched collectives in group '" + group + "': ";
  if (deviant < 0) {
    text += "every rank that answered called " + (calls.empty() ? std::string("nothing") : calls[0].first.Describe());
  } else {
    const Signature& odd = signatures_[deviant];
    std::vector<int> alike;  // other ranks that made the deviant's call
    for (int r = 0; r < size(); ++r) {
      if (known_[r] && r != deviant && signatures_[r] == odd) alike.push_back(r);
    }
    text += "rank " + std::to_string(deviant) + " called " + odd.Describe();
    if (!alike.empty()) text += " (as did " + RankList(alike) + ")";
    text += " but " + RankList(calls[0].second) + " called " + calls[0].first.Describe();
    for (std::size_t i = 1; i < calls.size(); ++i) {
      if (calls[i].first != odd) text += "; " + RankList(calls[i].second) + " called " + calls[i].first.Describe();
    }
  }
  std::vector<int> unknown;
  for (int r = 0; r < size(); ++r) {
    if (!known_[r]) unknown.push_back(r);
  }
  if (!unknown.empty()) text += "; " + RankList(unknown) + " did not report a call in time";
  return text;
}

}  // namespace mics
