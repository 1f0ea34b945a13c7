// Communicator: argument checks and the collectives built from the implementation hooks.
#include "comm/communicator.h"

#include <limits>
#include <numeric>

namespace caldera::comm {

std::string_view to_string(ReduceOp op) noexcept {
  switch (op) {
    case ReduceOp::kSum: return "sum";
    case ReduceOp::kMax: return "max";
    case ReduceOp::kMin: return "min";
  }
  return "?";
}

void CommOptions::validate() const {
  CALDERA_CHECK_AS(ConfigError, max_chunk_elements >= 1 && max_chunk_elements <= std::numeric_limits<int>::max(),
                   "comm option max_chunk_elements: expected a value in [1, ", std::numeric_limits<int>::max(),
                   "], got ", max_chunk_elements);
}

int64_t Communicator::elem_bytes(Elem elem) noexcept {
  switch (elem) {
    case Elem::kF64: return 8;
    case Elem::kF32: return 4;
    case Elem::kI64: return 8;
  }
  return 1;
}

void Communicator::check_root(int root, std::string_view what) const {
  CALDERA_CHECK_AS(CommError, root >= 0 && root < size(), what, ": root rank ", root, " is outside [0, ", size(),
                   ") on rank ", rank(), " (", host_name(), ")");
}

void Communicator::reduce_sum(std::span<double> data, int root) {
  check_root(root, "reduce_sum");
  do_reduce_sum(data.data(), static_cast<int64_t>(data.size()), root);
}

void Communicator::broadcast(std::span<std::byte> data, int root) {
  check_root(root, "broadcast");
  do_broadcast(data.data(), static_cast<int64_t>(data.size()), root);
}

void Communicator::broadcast(std::string& value, int root) {
  check_root(root, "broadcast");
  int64_t n = static_cast<int64_t>(value.size());
  do_broadcast(&n, sizeof n, root);
  value.resize(static_cast<size_t>(n));
  do_broadcast(value.data(), n, root);
}

std::vector<std::byte> Communicator::allgather(std::span<const std::byte> mine) {
  const auto n_bytes = static_cast<int64_t>(mine.size());
  // One allreduce tells every rank whether the sizes agree (max of s and of -s), so a mismatch
  // throws everywhere instead of corrupting memory on some ranks.
  int64_t extremes[2] = {n_bytes, -n_bytes};
  do_allreduce(extremes, 2, Elem::kI64, ReduceOp::kMax);
  CALDERA_CHECK_AS(CommError, extremes[0] == -extremes[1], "allgather: every rank must contribute the same size; ",
                   "sizes range over [", -extremes[1], ", ", extremes[0], "] bytes (rank ", rank(), " has ",
                   n_bytes, ")");
  std::vector<std::byte> out(static_cast<size_t>(n_bytes) * static_cast<size_t>(size()));
  do_allgather(mine.data(), n_bytes, out.data());
  return out;
}

std::vector<std::vector<std::byte>> Communicator::allgatherv(std::span<const std::byte> mine) {
  const auto sizes = allgather_value<int64_t>(static_cast<int64_t>(mine.size()));
  const int64_t total = std::accumulate(sizes.begin(), sizes.end(), int64_t{0});
  std::vector<std::byte> flat(static_cast<size_t>(total));
  do_allgatherv(mine.data(), sizes, flat.data());
  std::vector<std::vector<std::byte>> out(sizes.size());
  int64_t offset = 0;
  for (size_t r = 0; r < sizes.size(); ++r) {
    out[r].assign(flat.begin() + offset, flat.begin() + offset + sizes[r]);
    offset += sizes[r];
  }
  return out;
}

std::vector<std::string> Communicator::allgather_strings(std::string_view mine) {
  const auto blobs = allgatherv(std::as_bytes(std::span<const char>(mine.data(), mine.size())));
  std::vector<std::string> out;
  out.reserve(blobs.size());
  for (const auto& blob : blobs) out.emplace_back(reinterpret_cast<const char*>(blob.data()), blob.size());
  return out;
}

bool Communicator::any(bool flag) { return allreduce_value<int64_t>(flag ? 1 : 0, ReduceOp::kMax) != 0; }

bool Communicator::all(bool flag) { return allreduce_value<int64_t>(flag ? 1 : 0, ReduceOp::kMin) != 0; }

}  // namespace caldera::comm
