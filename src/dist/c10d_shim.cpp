// A C interface to libtorch's c10d collectives (TCPStore rendezvous + ProcessGroupGloo), for
// `src/dist/mod.rs`. tch binds none of c10d; torch-sys's own wrapper is compiled the same way.
//
// Every entry point catches C++ exceptions and returns them as a malloc'd message in `*err`
// (freed by `lacuna_c10d_free_error`), so nothing unwinds into Rust. Tensors arrive as the
// `at::Tensor*` that a tch `Tensor` wraps (`Tensor::as_ptr`).
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "guarded.h"

#include <cstdlib>
#include <string>
#include <vector>

struct lacuna_pg {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::Backend> backend;
};

namespace {

using lacuna::guarded;

bool is_loopback(const std::string& host) {
  return host == "localhost" || host.rfind("127.", 0) == 0 || host == "::1";
}

}  // namespace

extern "C" {

// Rendezvous at `host:port` (rank 0 serves the store) and build a Gloo group of `world`
// ranks. `iface`, when non-empty, names the network interface Gloo binds (GLOO_SOCKET_IFNAME);
// otherwise a loopback master binds loopback and any other binds this host's own address.
lacuna_pg* lacuna_c10d_gloo(const char* host, uint16_t port, int rank, int world, int64_t timeout_ms,
                            const char* iface, char** err) {
  lacuna_pg* pg = nullptr;
  guarded(err, [&] {
    auto timeout = std::chrono::milliseconds(timeout_ms);
    c10d::TCPStoreOptions o;
    o.port = port;
    o.isServer = rank == 0;
    o.numWorkers = world;
    o.timeout = timeout;
    auto store = c10::make_intrusive<c10d::TCPStore>(std::string(host), o);
    auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
    std::string name(iface == nullptr ? "" : iface);
    if (!name.empty()) {
      opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(name));
    } else if (is_loopback(host)) {
      opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(host));
    } else {
      opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    }
    auto backend = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, world, opts);
    pg = new lacuna_pg{store, backend};
  });
  return pg;
}

// In-place sum over the group of each tensor (contiguous, same shape on every rank).
int lacuna_c10d_all_reduce_sum(lacuna_pg* pg, at::Tensor* const* tensors, int n, char** err) {
  return guarded(err, [&] {
    for (int i = 0; i < n; i++) {
      std::vector<at::Tensor> one{*tensors[i]};
      c10d::AllreduceOptions opts;
      opts.reduceOp = c10d::ReduceOp::SUM;
      pg->backend->allreduce(one, opts)->wait();
    }
  }) ? 0 : 1;
}

// In place: every rank's tensors take the values of rank `root`'s.
int lacuna_c10d_broadcast(lacuna_pg* pg, at::Tensor* const* tensors, int n, int root, char** err) {
  return guarded(err, [&] {
    for (int i = 0; i < n; i++) {
      std::vector<at::Tensor> one{*tensors[i]};
      c10d::BroadcastOptions opts;
      opts.rootRank = root;
      pg->backend->broadcast(one, opts)->wait();
    }
  }) ? 0 : 1;
}

int lacuna_c10d_barrier(lacuna_pg* pg, char** err) {
  return guarded(err, [&] { pg->backend->barrier()->wait(); }) ? 0 : 1;
}

void lacuna_c10d_free(lacuna_pg* pg) {
  char* err = nullptr;
  guarded(&err, [&] { delete pg; });
  std::free(err);
}

void lacuna_c10d_free_error(char* err) { std::free(err); }

}  // extern "C"
