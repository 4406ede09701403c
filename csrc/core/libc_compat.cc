// The addon links libstdc++ statically (CMakeLists.txt, binding.gyp) so that it runs
// where the system's libstdc++ is older than the build machine's. The libstdc++.a of
// GCC 12 built on glibc 2.36 implements std::random_device with arc4random(), new in
// glibc 2.36, which alone would raise the addon's glibc floor from 2.34 to 2.36. This
// definition satisfies that reference inside the addon (hidden, and the static
// libraries' symbols are not exported), with getrandom(2) (glibc 2.25).
#include <sys/random.h>

#include <cerrno>
#include <cstdint>

extern "C" __attribute__((visibility("hidden"))) uint32_t arc4random(void) {
  uint32_t value = 0;
  for (;;) {
    ssize_t n = getrandom(&value, sizeof(value), 0);
    if (n == static_cast<ssize_t>(sizeof(value))) return value;
    if (n < 0 && errno != EINTR) return static_cast<uint32_t>(reinterpret_cast<uintptr_t>(&value));  // never seen: no entropy source
  }
}
