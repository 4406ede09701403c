#include "nccl/nccl_config.h"

#include <cstring>

namespace mics::nccl {

Config MakeConfig(bool blocking) {
  Config config;
  std::memset(&config, 0, sizeof(config));
  config.size = sizeof(Config);
  config.magic = kConfigMagic;
  config.version = kConfigLayoutVersion;
  config.blocking = blocking ? 1 : 0;
  config.cgaClusterSize = kConfigUndefInt;
  config.minCTAs = kConfigUndefInt;
  config.maxCTAs = kConfigUndefInt;
  config.netName = nullptr;  // NCCL_CONFIG_UNDEF_PTR
  config.splitShare = kConfigUndefInt;
  return config;
}

}  // namespace mics::nccl
