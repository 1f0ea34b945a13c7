#include "comm/self_communicator.h"

#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace caldera::comm {

std::string local_host_name() {
  std::array<char, 256> buf{};
  if (gethostname(buf.data(), buf.size() - 1) != 0 || buf[0] == '\0') return "unknown-host";
  return std::string(buf.data());
}

SelfCommunicator::SelfCommunicator() : host_name_(local_host_name()) {}

void SelfCommunicator::abort(int exit_code, std::string_view message) noexcept {
  std::fprintf(stderr, "caldera: rank 0 of 1 on %s aborts (exit code %d): %.*s\n", host_name_.c_str(), exit_code,
               static_cast<int>(message.size()), message.data());
  std::fflush(stderr);
  std::fflush(stdout);
  std::_Exit(exit_code);
}

// A reduction over a single rank leaves the data as it is.
void SelfCommunicator::do_allreduce(void*, int64_t, Elem, ReduceOp) {}

void SelfCommunicator::do_reduce_sum(double*, int64_t, int) {}

void SelfCommunicator::do_broadcast(void*, int64_t, int) {}

void SelfCommunicator::do_allgather(const void* mine, int64_t n_bytes, void* out) {
  if (n_bytes > 0) std::memcpy(out, mine, static_cast<size_t>(n_bytes));
}

void SelfCommunicator::do_allgatherv(const void* mine, std::span<const int64_t> sizes, void* out) {
  if (sizes[0] > 0) std::memcpy(out, mine, static_cast<size_t>(sizes[0]));
}

}  // namespace caldera::comm
