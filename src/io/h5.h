// A small RAII layer over HDF5's C API (HighFive's patterns, our naming; style C10). No HDF5 header
// is included here: identifiers are held as int64_t (== hid_t since HDF5 1.10, checked in h5.cpp),
// so modules above io never see HDF5 types (DESIGN §5).
//
// Policy: files are serial, written by one process, opened with file locking disabled (Lustre and
// NFS refuse it; DESIGN §3). Datasets are chunked along their first dimension (~1 MiB chunks) with
// the Fletcher-32 checksum filter, so corruption is detected on read. Every HDF5 call is checked;
// failures throw IoError naming the file and the object ("/qkv/sum") with HDF5's own error
// description; HDF5's automatic error printing is silenced inside these functions.
// Not thread-safe (the serial HDF5 library is not): use from one thread at a time.
#pragma once

#include <concepts>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace caldera::io::h5 {

/// Owning HDF5 identifier (file, group, dataset, ...). Move-only; the destructor releases it and
/// never throws.
class H5Id {
 public:
  H5Id() = default;
  explicit H5Id(int64_t id) noexcept : id_(id) {}
  H5Id(H5Id&& other) noexcept;
  H5Id& operator=(H5Id&& other) noexcept;
  H5Id(const H5Id&) = delete;
  H5Id& operator=(const H5Id&) = delete;
  ~H5Id();

  int64_t get() const noexcept { return id_; }
  bool valid() const noexcept { return id_ >= 0; }
  /// Releases now (idempotent).
  void reset() noexcept;
  /// Gives up ownership without releasing; returns the id.
  int64_t release() noexcept;

 private:
  int64_t id_ = -1;
};

/// Element types datasets may hold: double, float, int64_t, int32_t, uint16_t, uint8_t.
template <class T>
concept H5Element = std::same_as<T, double> || std::same_as<T, float> || std::same_as<T, int64_t> ||
                    std::same_as<T, int32_t> || std::same_as<T, uint16_t> || std::same_as<T, uint8_t>;

/// An n-dimensional dataset (row-major). Reads check the stored element type against T exactly.
class H5Dataset {
 public:
  const std::vector<int64_t>& shape() const noexcept { return shape_; }
  int64_t num_elements() const noexcept;
  /// "file 'f.h5', dataset '/qkv/sum'".
  std::string describe() const;

  /// Whole dataset; data.size() must equal num_elements() (Error otherwise).
  template <H5Element T> void write(std::span<const T> data) const;
  template <H5Element T> void read(std::span<T> out) const;
  template <H5Element T> std::vector<T> read() const;
  /// Elements [first, first + count) along the first dimension (rows of a matrix, elements of a
  /// vector); data.size() must be count × (product of the other dimensions). Error if out of range.
  template <H5Element T> void write_slab(int64_t first, int64_t count, std::span<const T> data) const;
  template <H5Element T> void read_slab(int64_t first, int64_t count, std::span<T> out) const;

 private:
  friend class H5Group;
  H5Id id_;
  std::filesystem::path file_;
  std::string path_;
  std::vector<int64_t> shape_;
};

/// A group: a file's root ("/") or a subgroup. Attributes live on groups (and files).
class H5Group {
 public:
  H5Group create_group(std::string_view name) const;
  H5Group open_group(std::string_view name) const;
  /// Whether a link `name` exists in this group.
  bool contains(std::string_view name) const;
  /// Names of the group's members (groups and datasets), sorted by name.
  std::vector<std::string> member_names() const;

  /// Creates a chunked, Fletcher-32 dataset of `shape` (rank >= 1; zero-sized dimensions give an
  /// unchunked empty dataset), contents to be written with H5Dataset::write/write_slab.
  template <H5Element T> H5Dataset create_dataset(std::string_view name, const std::vector<int64_t>& shape) const;
  /// create_dataset + write.
  template <H5Element T>
  void write_dataset(std::string_view name, std::span<const T> data, const std::vector<int64_t>& shape) const;
  /// Opens a dataset; throws IoError naming file and object if it is missing or not a dataset.
  H5Dataset open_dataset(std::string_view name) const;
  /// Reads a whole dataset whose shape must equal `expected_shape` (IoError naming file, object,
  /// expected and found shape otherwise).
  template <H5Element T>
  std::vector<T> read_dataset(std::string_view name, const std::vector<int64_t>& expected_shape) const;

  /// Scalar attributes; setting replaces an existing one. Reading throws IoError naming file,
  /// object and attribute if it is missing or of another type.
  void set_attribute(std::string_view name, int64_t value) const;
  void set_attribute(std::string_view name, double value) const;
  void set_attribute(std::string_view name, std::string_view value) const;
  void set_attribute(std::string_view name, const char* value) const { set_attribute(name, std::string_view(value)); }
  bool has_attribute(std::string_view name) const;
  int64_t attribute_int64(std::string_view name) const;
  double attribute_double(std::string_view name) const;
  std::string attribute_string(std::string_view name) const;

  const std::filesystem::path& file_path() const noexcept { return file_; }
  /// "/" or "/qkv".
  const std::string& object_path() const noexcept { return path_; }
  /// "file 'f.h5', group '/qkv'".
  std::string describe() const;

 protected:
  friend void verify_h5_file(const std::filesystem::path& path, std::string_view expected_sha256);
  H5Group() = default;
  std::string child_path(std::string_view name) const;
  H5Id id_;
  std::filesystem::path file_;
  std::string path_;
};

enum class FileMode : uint8_t { kReadOnly, kReadWrite };

/// An open HDF5 file; as a group it is the root "/".
class H5File : public H5Group {
 public:
  /// Creates (truncating) `path` with file locking disabled. Throws IoError naming the file.
  static H5File create(const std::filesystem::path& path);
  /// Opens an existing file with file locking disabled. Throws IoError naming the file (missing,
  /// not HDF5, unreadable).
  static H5File open(const std::filesystem::path& path, FileMode mode = FileMode::kReadOnly);

  /// Flushes HDF5's buffers to the OS.
  void flush() const;
  /// Closes the file and every object still open in it (their handles become inert). Throws
  /// IoError if closing fails (e.g. the final write-back failed). Idempotent.
  void close();
};

/// Opens `path`, reads every dataset in full (in bounded slabs, so Fletcher-32 checks run on every
/// chunk) and, if `expected_sha256` is not empty, compares the whole-file SHA-256 with it. Throws
/// IoError naming the file (and the dataset) on any failure: the caller then recomputes that unit.
void verify_h5_file(const std::filesystem::path& path, std::string_view expected_sha256);

}  // namespace caldera::io::h5
