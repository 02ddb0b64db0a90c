// Stand-in for Gloo's header (see README.md): declared, never defined or called by the shim.
#pragma once
#include <chrono>

namespace gloo {
class Context {
 public:
  void setTimeout(std::chrono::milliseconds timeout);
};
}  // namespace gloo
