// Stand-in for Gloo's header (see ../README.md): opaque types, used through pointers only.
#pragma once

namespace gloo {
namespace transport {
class Device;
class UnboundBuffer;
}  // namespace transport
}  // namespace gloo
