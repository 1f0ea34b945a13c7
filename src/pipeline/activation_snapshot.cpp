#include "pipeline/activation_snapshot.h"

#include <cstdio>

#include "core/error.h"
#include "core/log.h"
#include "io/atomic_file.h"
#include "io/h5.h"

namespace fs = std::filesystem;

namespace caldera::pipeline {
namespace {
constexpr const char* kFormat = "caldera-activations";
constexpr int64_t kFormatVersion = 1;
}  // namespace

fs::path snapshot_path(const fs::path& state_dir, int rank) {
  char name[48];
  std::snprintf(name, sizeof(name), "activations-rank-%04d.h5", rank);
  return state_dir / name;
}

void write_activation_snapshot(const fs::path& path, const SnapshotIdentity& id, int64_t next_layer,
                               MatrixView<const float> activations) {
  HostMatrix<float> host(activations);
  io::publish_atomically(path, [&](const fs::path& tmp) {
    io::h5::H5File f = io::h5::H5File::create(tmp);
    f.set_attribute("format", kFormat);
    f.set_attribute("format_version", kFormatVersion);
    f.set_attribute("world_size", static_cast<int64_t>(id.world_size));
    f.set_attribute("rank", static_cast<int64_t>(id.rank));
    f.set_attribute("model_fingerprint", id.model_fingerprint);
    f.set_attribute("calibration_sha256", id.calibration_sha256);
    f.set_attribute("seq_len", id.seq_len);
    f.set_attribute("next_layer", next_layer);
    f.write_dataset<float>("activations", std::span<const float>(host.data(), static_cast<size_t>(host.size())),
                           {host.rows(), host.cols()});
    f.close();
  });
}

std::optional<ActivationSnapshot> read_activation_snapshot(const fs::path& path, const SnapshotIdentity& id) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return std::nullopt;
  try {
    io::h5::verify_h5_file(path, "");
    io::h5::H5File f = io::h5::H5File::open(path);
    SnapshotIdentity found;
    if (f.attribute_string("format") != kFormat || f.attribute_int64("format_version") != kFormatVersion)
      raise<IoError>("not an activation snapshot of this version");
    found.world_size = static_cast<int>(f.attribute_int64("world_size"));
    found.rank = static_cast<int>(f.attribute_int64("rank"));
    found.model_fingerprint = f.attribute_string("model_fingerprint");
    found.calibration_sha256 = f.attribute_string("calibration_sha256");
    found.seq_len = f.attribute_int64("seq_len");
    if (!(found == id)) {
      log_info(path.string(), ": snapshot of another world size or input; replaying the forward pass instead");
      return std::nullopt;
    }
    ActivationSnapshot snap;
    snap.next_layer = f.attribute_int64("next_layer");
    const io::h5::H5Dataset d = f.open_dataset("activations");
    if (d.shape().size() != 2) raise<IoError>("activations is not a matrix");
    snap.activations = HostMatrix<float>(d.shape()[0], d.shape()[1]);
    d.read<float>(std::span<float>(snap.activations.data(), static_cast<size_t>(snap.activations.size())));
    return snap;
  } catch (const Error& e) {
    log_warn(path.string(), ": activation snapshot unusable, replaying the forward pass: ", e.what());
    return std::nullopt;
  }
}

}  // namespace caldera::pipeline
