// safetensors writer: one file or a Hugging Face sharded set, published atomically. Output loads
// with the Python `safetensors` package and with io::SafetensorsFile.
//
// Layout written: 8-byte LE header length, JSON header padded with spaces so that the data section
// starts at a multiple of 8 bytes, then the tensors back to back (no gaps, as the Python reference
// requires) in insertion order. The header's keys are sorted by name ("__metadata__" included), so
// the same tensors added in the same order give byte-identical files (DESIGN §3: deterministic
// outputs).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/matrix.h"
#include "io/atomic_file.h"

namespace caldera::io {

/// Result of SafetensorsWriter::write_sharded.
struct ShardedWrite {
  std::vector<PublishedFile> shards;  ///< model-0000k-of-0000n.safetensors, in order
  PublishedFile index;                ///< model.safetensors.index.json
  int64_t total_size_bytes = 0;       ///< sum of tensor sizes (the index's metadata.total_size)
};

/// Collects tensors, then writes them. Not thread-safe. Tensors are held in memory (owned bytes)
/// unless added with add_deferred, whose data is produced only while writing (for large exports).
class SafetensorsWriter {
 public:
  /// Fills exactly numel * dtype_size bytes (little-endian, row-major) of one tensor.
  using Fill = std::function<void(std::span<std::byte> out)>;

  /// Adds a tensor with a copy of `bytes` (little-endian, row-major). Throws Error if the name is
  /// empty, "__metadata__" or already added, or if bytes.size() != numel(shape) * dtype_size(dtype).
  void add(std::string name, DType dtype, std::vector<int64_t> shape, std::span<const std::byte> bytes);
  /// Adds a host matrix converted to `dtype` (kF32, kF16 or kBF16; round to nearest even). The shape
  /// is {rows, cols}, or `shape` if given (its element count must equal rows * cols; e.g. {n} for a
  /// 1×n norm weight). Throws Error otherwise.
  void add_matrix(std::string name, MatrixView<const float> m, DType dtype, std::vector<int64_t> shape = {});
  /// Adds a tensor whose bytes `fill` produces during write (called once per write, with a
  /// zero-initialised buffer of the tensor's size). Same name/shape rules as add().
  void add_deferred(std::string name, DType dtype, std::vector<int64_t> shape, Fill fill);
  /// The `__metadata__` string map (e.g. {"format": "pt"}, which transformers expects).
  void set_metadata(std::map<std::string, std::string> metadata);

  std::size_t num_tensors() const noexcept { return entries_.size(); }
  /// Sum of tensor sizes in bytes.
  int64_t data_size_bytes() const noexcept;

  /// Writes every tensor to `path` atomically (see publish_atomically). Throws IoError on
  /// filesystem errors, Error if a Fill throws (the file is then not published).
  PublishedFile write(const std::filesystem::path& path) const;
  /// Splits the tensors, in insertion order, into shards of at most `max_shard_bytes` of tensor
  /// data (a larger tensor gets a shard of its own), writes "<dir>/model-0000k-of-0000n.safetensors"
  /// (k from 1, 5 digits) and then "<dir>/model.safetensors.index.json" {"metadata": {"total_size":
  /// ...}, "weight_map": {...}}, each atomically, the index last. Always writes the index form,
  /// even for one shard. Every shard carries the metadata map. Older files in `dir` are not
  /// removed. Throws Error if max_shard_bytes <= 0 or nothing was added.
  ShardedWrite write_sharded(const std::filesystem::path& dir, int64_t max_shard_bytes) const;

 private:
  struct Entry {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    int64_t size_bytes;
    std::vector<std::byte> bytes;  // empty when deferred
    Fill fill;
  };
  int64_t check_new(const std::string& name, DType dtype, const std::vector<int64_t>& shape);
  void write_file(const std::filesystem::path& tmp, std::span<const Entry* const> entries) const;

  std::vector<Entry> entries_;
  std::set<std::string> names_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace caldera::io
