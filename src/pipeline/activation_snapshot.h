// Phase-1 activation snapshots (DESIGN §3 "state/"): the activations of this rank's calibration
// slice entering a layer, so that a killed phase 1 continues from its last snapshot instead of
// replaying the forward pass from the embeddings. One file per rank,
// state/activations-rank-RRRR.h5, replaced atomically; it records the world size, rank, layer and
// the model/calibration identity, and is used only when all of them match (a resume on another
// world size replays the forward pass instead, which gives the same result).
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include "core/matrix.h"

namespace caldera::pipeline {

struct SnapshotIdentity {
  int world_size = 1;
  int rank = 0;
  std::string model_fingerprint;
  std::string calibration_sha256;
  int64_t seq_len = 0;
  friend bool operator==(const SnapshotIdentity&, const SnapshotIdentity&) = default;
};

struct ActivationSnapshot {
  int64_t next_layer = 0;
  HostMatrix<float> activations;
};

std::filesystem::path snapshot_path(const std::filesystem::path& state_dir, int rank);

/// Writes (atomically, replacing the previous one) the activations entering `next_layer`.
void write_activation_snapshot(const std::filesystem::path& path, const SnapshotIdentity& identity,
                               int64_t next_layer, MatrixView<const float> activations);

/// The snapshot at `path` if it exists, verifies and matches `identity`; else std::nullopt (logged).
std::optional<ActivationSnapshot> read_activation_snapshot(const std::filesystem::path& path,
                                                           const SnapshotIdentity& identity);

}  // namespace caldera::pipeline
