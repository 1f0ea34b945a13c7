// Read-only memory mapping of a whole file (mmap PROT_READ, MAP_SHARED). Pages are loaded on first
// touch and can be dropped again with release(), so a process that reads a 70B model one tensor at
// a time never holds more than what it is touching (DESIGN §2).
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>

namespace caldera::io {

class MappedFile {
 public:
  MappedFile() = default;
  /// Maps `path` read-only. The file descriptor is closed right away (the mapping stays valid).
  /// An empty file gives an empty mapping. Throws IoError naming the file if it cannot be opened,
  /// is not a regular file, or cannot be mapped.
  static MappedFile open(const std::filesystem::path& path);

  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();  ///< munmap; never throws

  /// The whole file; valid while this object lives. Touching a page after the file was truncated
  /// by another process raises SIGBUS (inherent to mmap): files are published atomically for this.
  std::span<const std::byte> bytes() const noexcept { return {data_, size_bytes_}; }
  std::size_t size_bytes() const noexcept { return size_bytes_; }
  const std::filesystem::path& path() const noexcept { return path_; }

  /// Drops the whole pages inside [offset, offset + length) from this process (MADV_DONTNEED);
  /// later reads fault them back in from the page cache or disk. Never throws; out-of-range parts
  /// are ignored.
  void release(std::size_t offset, std::size_t length) const noexcept;

 private:
  void unmap() noexcept;
  std::filesystem::path path_;
  const std::byte* data_ = nullptr;
  std::size_t size_bytes_ = 0;
};

}  // namespace caldera::io
