// Automatic mixed precision for one thread, for `src/model/autocast.rs`.
//
// Inside the region libtorch's autocast runs the ops of its lower-precision list
// (convolutions, linear layers, matrix products) in bfloat16 on weights it casts once per
// region (the cast cache), and the rest in their inputs' precision. tch 0.24 wraps only the
// deprecated CUDA-only switch, so the device-typed one is reached from here.
#include <ATen/autocast_mode.h>
#include <ATen/cpu/Utils.h>

#include "guarded.h"

extern "C" {

// Enters a bfloat16 autocast region on the CPU (`cuda` = 0) or on CUDA devices (`cuda` = 1)
// for the calling thread, writing the state to restore on exit. Returns 0 on success.
int lacuna_autocast_enter(int cuda, int* was_enabled, int* was_dtype, char** err) {
  const auto device = cuda != 0 ? at::kCUDA : at::kCPU;
  return lacuna::guarded(err, [&] {
           *was_enabled = at::autocast::is_autocast_enabled(device) ? 1 : 0;
           *was_dtype = static_cast<int>(at::autocast::get_autocast_dtype(device));
           at::autocast::set_autocast_dtype(device, at::kBFloat16);
           at::autocast::set_autocast_enabled(device, true);
           at::autocast::increment_nesting();
         })
             ? 0
             : 1;
}

// Leaves the region: restores the state written by the matching enter and, when the
// outermost region closes, drops the cached weight casts (the weights change between steps).
int lacuna_autocast_exit(int cuda, int was_enabled, int was_dtype, char** err) {
  const auto device = cuda != 0 ? at::kCUDA : at::kCPU;
  return lacuna::guarded(err, [&] {
           if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
           at::autocast::set_autocast_enabled(device, was_enabled != 0);
           at::autocast::set_autocast_dtype(device, static_cast<at::ScalarType>(was_dtype));
         })
             ? 0
             : 1;
}

// Whether this CPU has AMX-BF16 matrix units (libtorch's cpuinfo): 1, 0, or -1 on error.
int lacuna_cpu_has_amx_bf16(char** err) {
  int has = -1;
  lacuna::guarded(err, [&] {
    const auto caps = at::cpu::get_cpu_capabilities();
    const auto it = caps.find("amx_bf16");
    has = it != caps.end() && it->second.isBool() && it->second.toBool() ? 1 : 0;
  });
  return has;
}

void lacuna_autocast_free_error(char* err) { std::free(err); }

}  // extern "C"
