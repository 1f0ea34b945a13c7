// Finished units (tasks/<unit>.h5) and mid-unit checkpoints (tasks/<unit>.partial.h5), DESIGN §3.
//
// A task file is published atomically; its whole-file SHA-256 is then written, also atomically, to
// `<file>.sha256` — that sidecar is the completion marker. A unit counts as done only when the
// sidecar exists, the file's hash matches it, every dataset passes its Fletcher-32 check and the
// recorded identity (unit, method, parameters, shape, seed) equals the current one; anything else
// is recomputed, never loaded.
//
// Layout: / attributes format = "caldera-task", format_version, unit, method, parameters, rows,
// cols, seed, metrics (JSON text); /tensors: the unit's TensorMap (pipeline/tensor_store.h).
// A checkpoint has format "caldera-checkpoint" and the method's state under /state.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "algo/method.h"
#include "io/atomic_file.h"
#include "pipeline/units.h"

namespace caldera::pipeline {

inline constexpr int64_t kTaskFormatVersion = 1;

/// What a unit's result depends on; stored in its files and compared before reuse.
struct TaskIdentity {
  std::string unit;        ///< UnitId::name()
  std::string method;      ///< Method::name()
  std::string parameters;  ///< Method::parameters() as "k=v;k=v"
  int64_t rows = 0;
  int64_t cols = 0;
  uint64_t seed = 0;
  friend bool operator==(const TaskIdentity&, const TaskIdentity&) = default;
};

/// The identity of `unit`'s result under `method` and `seed` (phase 2, the update pass, export).
TaskIdentity unit_task_identity(const Unit& unit, const algo::Method& method, uint64_t seed);

/// "k=v;k=v" in the order given.
std::string parameters_text(const std::vector<std::pair<std::string, std::string>>& parameters);

/// Writes the task file and then its sidecar; returns the published task file.
io::PublishedFile write_task_file(const std::filesystem::path& path, const TaskIdentity& identity,
                                  const algo::CompressedUnit& unit);

/// The unit stored at `path` if it is finished, verified and of `expected` identity; otherwise
/// std::nullopt, after logging why at info level (missing files are silent).
std::optional<algo::CompressedUnit> load_task_file(const std::filesystem::path& path, const TaskIdentity& expected);

/// Sidecar path: `<path>.sha256`.
std::filesystem::path task_hash_path(const std::filesystem::path& path);

/// Checkpoints of one unit in `<unit>.partial.h5`: save() publishes atomically (a crash leaves the
/// previous checkpoint intact); load() returns the state only when the file reads cleanly and its
/// identity matches. remove() deletes the file once the unit is finished.
class H5CheckpointStore final : public algo::CheckpointStore {
 public:
  H5CheckpointStore(std::filesystem::path path, TaskIdentity identity);
  std::optional<TensorMap> load() override;
  void save(const TensorMap& state) override;
  void remove() noexcept;
  int saves() const noexcept { return saves_; }

 private:
  std::filesystem::path path_;
  TaskIdentity identity_;
  int saves_ = 0;
};

}  // namespace caldera::pipeline
