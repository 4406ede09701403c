// The ncclConfig_t we pass to ncclCommInitRankConfig and ncclCommSplit. Compiled in
// every build (no CUDA, no NCCL needed), so its bytes can be checked anywhere.
#pragma once

#include "nccl/nccl_abi.h"

namespace mics::nccl {

// Every byte set: zero first (padding included, since NCCL copies whole bytes),
// then size, magic, the layout's version, `blocking` (0: non-blocking, ops may
// answer InProgress) and NCCL's "undefined" for the rest, so NCCL's defaults and
// NCCL_* environment variables decide them.
Config MakeConfig(bool blocking);

}  // namespace mics::nccl
