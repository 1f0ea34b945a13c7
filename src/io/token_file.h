// Token files: little-endian uint32 token ids, a whole number of sequences of seq_len tokens, no
// header (tests/data/calib.u32, eval.u32; tools/tokenize.py writes them). Used for calibration
// (phase 1, sequences sharded over ranks by slice()) and evaluation.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/matrix.h"

namespace caldera::io {

/// A validated token file held in memory (4 bytes per token: 256 × 4096 tokens are 4 MiB).
class TokenFile {
 public:
  /// Reads `path` as sequences of `seq_len` tokens. The file size must be a positive multiple of
  /// 4 * seq_len and every id must be < vocab_size (IoError naming the file and, respectively, the
  /// size and seq_len, or the sequence, position and id). With `max_seqs`, only the first
  /// min(max_seqs, available) sequences are kept (and checked); sha256() still covers the whole
  /// file. Throws Error if seq_len, vocab_size or max_seqs is not positive.
  static TokenFile open(const std::filesystem::path& path, int64_t seq_len, int64_t vocab_size,
                        std::optional<int64_t> max_seqs = std::nullopt);

  const std::filesystem::path& path() const noexcept { return path_; }
  int64_t seq_len() const noexcept { return seq_len_; }
  /// Sequences kept (after max_seqs).
  int64_t num_sequences() const noexcept { return num_sequences_; }
  /// Sequences in the whole file.
  int64_t file_sequences() const noexcept { return file_sequences_; }
  int64_t file_size_bytes() const noexcept { return file_sequences_ * seq_len_ * 4; }
  /// SHA-256 of the whole file (lowercase hex): calibration provenance in run.json / Hessian files.
  const std::string& sha256() const noexcept { return sha256_; }

  /// All kept sequences: num_sequences × seq_len, row-major host view valid while this object lives.
  MatrixView<const uint32_t> sequences() const noexcept;
  /// Sequences [begin, end) (0 <= begin <= end <= num_sequences; Error otherwise).
  MatrixView<const uint32_t> slice(int64_t begin, int64_t end) const;
  /// One sequence (Error if out of range).
  std::span<const uint32_t> sequence(int64_t index) const;

 private:
  std::filesystem::path path_;
  int64_t seq_len_ = 0;
  int64_t num_sequences_ = 0;
  int64_t file_sequences_ = 0;
  std::string sha256_;
  std::vector<uint32_t> tokens_;
};

/// Writes `tokens` (num_sequences × seq_len) as a token file, atomically; returns its SHA-256.
/// For tests and tools; tools/tokenize.py is the usual producer. Throws IoError on failure.
std::string write_token_file(const std::filesystem::path& path, MatrixView<const uint32_t> tokens);

}  // namespace caldera::io
