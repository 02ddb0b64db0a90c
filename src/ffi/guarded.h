// Turning C++ exceptions into messages for the C interfaces that Rust calls (the c10d shim and
// the engine's own ops): nothing may unwind into Rust. A message is malloc'd; the Rust side
// frees it with the shim's `*_free_error`.
#pragma once

#include <c10/util/Exception.h>

#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>

namespace lacuna {

inline char* copy_message(const std::string& s) {
  char* out = static_cast<char*>(std::malloc(s.size() + 1));
  if (out != nullptr) std::memcpy(out, s.c_str(), s.size() + 1);
  return out;
}

// Runs `f`, turning an exception into a message in `*err`; returns whether `f` succeeded.
template <typename F>
bool guarded(char** err, F&& f) {
  try {
    f();
    return true;
  } catch (const c10::Error& e) {
    *err = copy_message(e.what_without_backtrace());
  } catch (const std::exception& e) {
    *err = copy_message(e.what());
  } catch (...) {
    *err = copy_message("unknown C++ exception");
  }
  return false;
}

}  // namespace lacuna
