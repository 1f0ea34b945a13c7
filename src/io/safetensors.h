// safetensors reader: one file, or a Hugging Face set of shards with model.safetensors.index.json.
//
// Format (https://github.com/huggingface/safetensors): 8-byte little-endian header length N, N bytes
// of JSON {"<tensor>": {"dtype": "BF16", "shape": [r, c], "data_offsets": [begin, end)}, ...,
// "__metadata__": {"k": "v"}}, then the data section; offsets are relative to the data section,
// tensors are row-major, little-endian. Every file is untrusted input (style C10): the header
// length is bounded, the JSON is parsed strictly, dtypes, shapes, offsets, sizes and overlaps are
// checked when the file is opened, so a bad file is rejected before any tensor is read. Errors are
// IoError and name the file and, where there is one, the tensor.
//
// Files are mapped read-only (mmap, MAP_SHARED): opening costs only the header pages, reading a
// tensor touches only its bytes, and read_f32 drops those pages again afterwards, so a 70B model
// can be read one tensor at a time with bounded memory.
//
// Accepted leniently (the Python reference refuses them, nothing here depends on them): gaps
// between tensors and bytes after the last tensor. Tensors of zero elements are accepted.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"
#include "core/matrix.h"
#include "io/mapped_file.h"

namespace caldera::io {

/// Largest header accepted (the Python reference uses the same bound).
inline constexpr int64_t kMaxSafetensorsHeaderBytes = 100'000'000;

/// One tensor of a safetensors file, as validated at open.
struct TensorInfo {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;  ///< row-major; empty for a scalar
  std::filesystem::path file;  ///< the file holding it
  int64_t offset_bytes = 0;    ///< absolute offset of the first byte in `file`
  int64_t size_bytes = 0;      ///< == numel() * dtype_size(dtype)

  int64_t numel() const noexcept;
  /// "[4096, 11008]".
  std::string shape_string() const;
};

/// Shape as text: "[4096, 11008]".
std::string shape_to_string(std::span<const int64_t> shape);

/// One mapped and validated safetensors file. Move-only; spans it returns stay valid while it lives.
/// All const members are thread-safe.
class SafetensorsFile {
 public:
  /// Maps and validates `path` (header length, JSON, every entry; see the file comment).
  /// Throws IoError naming the file (and tensor) on any violation.
  static SafetensorsFile open(const std::filesystem::path& path);

  const std::filesystem::path& path() const noexcept { return map_.path(); }
  int64_t file_size_bytes() const noexcept { return static_cast<int64_t>(map_.size_bytes()); }
  /// The raw JSON header bytes (for fingerprints).
  std::span<const std::byte> header_bytes() const noexcept;

  /// Tensors sorted by name.
  const std::vector<TensorInfo>& tensors() const noexcept { return tensors_; }
  /// nullptr if absent.
  const TensorInfo* find(std::string_view name) const noexcept;
  /// Throws IoError naming file and tensor if absent.
  const TensorInfo& info(std::string_view name) const;
  /// The `__metadata__` string map (empty if absent).
  const std::map<std::string, std::string>& metadata() const noexcept { return metadata_; }

  /// Zero-copy little-endian bytes of a tensor, host memory, valid while this object lives.
  std::span<const std::byte> bytes(std::string_view name) const;
  std::span<const std::byte> bytes(const TensorInfo& info) const;

  /// The tensor as a row-major fp32 host matrix: 2-D [r, c] -> r×c, 1-D [n] -> 1×n, scalar -> 1×1.
  /// Converts BF16, F16, F32 and F64 exactly (F64 rounds to nearest). Throws IoError naming file
  /// and tensor if the tensor has another dtype or rank > 2, or if any converted value is NaN/±Inf.
  HostMatrix<float> read_f32(std::string_view name) const;
  /// Same, into a caller-owned host view of exactly the matrix shape above (ld may exceed cols).
  /// On a NaN/Inf error `out` holds partial data.
  void read_f32_into(std::string_view name, MatrixView<float> out) const;

  /// Drops the mapped pages of a tensor from this process (see MappedFile::release).
  void release(const TensorInfo& info) const noexcept;

 private:
  MappedFile map_;
  int64_t header_bytes_ = 0;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
};

/// Rows × cols of the fp32 matrix read_f32 returns for `info` (throws IoError for rank > 2).
std::pair<int64_t, int64_t> matrix_shape(const TensorInfo& info);

/// A model's weights: one safetensors file, or shards listed by model.safetensors.index.json.
///
/// Sharded sets: the index's weight_map is authoritative. Every listed shard must exist when the
/// set is opened (IoError naming the shard and a tensor mapped to it); shard names must be plain
/// file names in the same directory. Shards are opened lazily, on first use of one of their
/// tensors, and kept open. When a shard is opened, every tensor the index maps to it must be in it
/// (IoError naming tensor and shard), and every tensor in it must be mapped to it by the index: a
/// tensor the index does not list, or lists under another shard (a tensor stored in two shards),
/// is an IoError naming tensor and both files. open_all() runs these checks on every shard.
/// Thread-safe.
class SafetensorsSet {
 public:
  /// `path`: a directory (model.safetensors.index.json if present, else model.safetensors), an
  /// index file (*.json), or one *.safetensors file. Throws IoError naming what is missing/invalid.
  static SafetensorsSet open(const std::filesystem::path& path);

  SafetensorsSet(SafetensorsSet&&) noexcept;
  SafetensorsSet& operator=(SafetensorsSet&&) noexcept;
  ~SafetensorsSet();

  /// Every tensor name, sorted (from the index for a sharded set).
  const std::vector<std::string>& tensor_names() const noexcept;
  bool contains(std::string_view name) const noexcept;
  /// Shard files (absolute or as given), sorted by name; one entry for a single file.
  const std::vector<std::filesystem::path>& files() const noexcept;
  /// The index file, or empty for a single-file set.
  const std::filesystem::path& index_file() const noexcept;

  /// Opens (once) and returns the shard file at files()[i].
  const SafetensorsFile& file(std::size_t i) const;
  /// Opens every shard and runs all cross-shard checks. Throws IoError as described above.
  void open_all() const;

  /// Throws IoError naming the tensor (and the index) if it is not in the set.
  const TensorInfo& info(std::string_view name) const;
  std::span<const std::byte> bytes(std::string_view name) const;
  /// See SafetensorsFile::read_f32 / read_f32_into.
  HostMatrix<float> read_f32(std::string_view name) const;
  void read_f32_into(std::string_view name, MatrixView<float> out) const;

 private:
  struct Impl;
  explicit SafetensorsSet(std::unique_ptr<Impl> impl);
  const SafetensorsFile& file_of(std::string_view name) const;
  std::unique_ptr<Impl> impl_;
};

}  // namespace caldera::io
