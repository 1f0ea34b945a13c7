// SHA-256 (FIPS 180-4), our own implementation: file and run fingerprints, calibration provenance,
// whole-file hashes recorded when a result is published (DESIGN §3). No OpenSSL dependency.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>

namespace caldera::io {

/// Incremental SHA-256. Feed bytes with update() in any pieces, then call digest() once.
/// Not thread-safe; cheap to copy (the state is ~110 bytes).
class Sha256 {
 public:
  static constexpr std::size_t kDigestBytes = 32;
  using Digest = std::array<uint8_t, kDigestBytes>;

  Sha256() noexcept;
  /// Appends bytes to the message. Throws Error if called after digest().
  void update(std::span<const std::byte> bytes);
  void update(std::string_view text);
  /// Finishes the message and returns the 32-byte digest. Throws Error if called twice.
  Digest digest();
  /// digest() as 64 lowercase hex characters.
  std::string hex_digest();

 private:
  void compress(const uint8_t* block) noexcept;
  std::array<uint32_t, 8> state_;
  std::array<uint8_t, 64> buffer_{};
  std::size_t buffer_used_ = 0;
  uint64_t total_bytes_ = 0;
  bool finished_ = false;
};

/// Lowercase hex of any byte string ("00ff...").
std::string to_hex(std::span<const uint8_t> bytes);

/// SHA-256 of a byte range / string, as 64 lowercase hex characters.
std::string sha256_hex(std::span<const std::byte> bytes);
std::string sha256_hex(std::string_view text);
/// SHA-256 of a whole file's contents, read in 1 MiB pieces (constant memory).
/// Throws IoError naming the file if it cannot be opened or read.
std::string sha256_file(const std::filesystem::path& path);

}  // namespace caldera::io
