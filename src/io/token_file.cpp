#include "io/token_file.h"

#include <cerrno>
#include <cstring>
#include <fstream>

#include "core/error.h"
#include "io/atomic_file.h"
#include "io/sha256.h"

namespace caldera::io {

TokenFile TokenFile::open(const std::filesystem::path& path, int64_t seq_len, int64_t vocab_size,
                          std::optional<int64_t> max_seqs) {
  CALDERA_CHECK(seq_len > 0, "seq_len must be > 0, found ", seq_len);
  CALDERA_CHECK(vocab_size > 0, "vocab_size must be > 0, found ", vocab_size);
  CALDERA_CHECK(!max_seqs || *max_seqs > 0, "max_seqs must be > 0, found ", max_seqs.value_or(0));
  const std::string where = "token file '" + path.string() + "'";
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) raise<IoError>("cannot read ", where, ": ", ec.message());
  const auto seq_bytes = static_cast<std::uintmax_t>(seq_len) * 4;
  if (size == 0 || size % seq_bytes != 0)
    raise<IoError>(where, ": size ", size, " bytes is not a positive multiple of 4 * seq_len = ", seq_bytes,
                   " (seq_len ", seq_len, "): wrong --seq-len, or a truncated file");

  TokenFile t;
  t.path_ = path;
  t.seq_len_ = seq_len;
  t.file_sequences_ = static_cast<int64_t>(size / seq_bytes);
  t.num_sequences_ = max_seqs ? std::min(*max_seqs, t.file_sequences_) : t.file_sequences_;
  t.tokens_.resize(static_cast<std::size_t>(t.num_sequences_ * seq_len));

  std::ifstream in(path, std::ios::binary);
  if (!in) raise<IoError>("cannot open ", where, ": ", std::strerror(errno));
  Sha256 hash;
  std::vector<unsigned char> buf(std::size_t{1} << 20);
  std::size_t token_index = 0;  // tokens decoded so far
  for (std::uintmax_t done = 0; done < size;) {
    const auto want = static_cast<std::streamsize>(std::min<std::uintmax_t>(buf.size(), size - done));
    in.read(reinterpret_cast<char*>(buf.data()), want);
    if (in.gcount() != want) raise<IoError>(where, ": short read at byte ", done, " of ", size);
    hash.update(std::as_bytes(std::span(buf.data(), static_cast<std::size_t>(want))));
    for (std::streamsize p = 0; p < want && token_index < t.tokens_.size(); p += 4, ++token_index) {
      const uint32_t id = static_cast<uint32_t>(buf[static_cast<std::size_t>(p)]) |
                          (static_cast<uint32_t>(buf[static_cast<std::size_t>(p + 1)]) << 8) |
                          (static_cast<uint32_t>(buf[static_cast<std::size_t>(p + 2)]) << 16) |
                          (static_cast<uint32_t>(buf[static_cast<std::size_t>(p + 3)]) << 24);
      if (static_cast<int64_t>(id) >= vocab_size) {
        const auto pos = static_cast<int64_t>(token_index);
        raise<IoError>(where, ": token id ", id, " at position ", pos, " (sequence ", pos / seq_len, ", offset ",
                       pos % seq_len, ") is not below vocab_size ", vocab_size);
      }
      t.tokens_[token_index] = id;
    }
    done += static_cast<std::uintmax_t>(want);
  }
  t.sha256_ = hash.hex_digest();
  return t;
}

MatrixView<const uint32_t> TokenFile::sequences() const noexcept {
  return MatrixView<const uint32_t>(tokens_.data(), num_sequences_, seq_len_);
}

MatrixView<const uint32_t> TokenFile::slice(int64_t begin, int64_t end) const {
  CALDERA_CHECK(0 <= begin && begin <= end && end <= num_sequences_, "slice [", begin, ", ", end, ") of ",
                num_sequences_, " sequences in '", path_.string(), "'");
  return MatrixView<const uint32_t>(tokens_.data() + begin * seq_len_, end - begin, seq_len_);
}

std::span<const uint32_t> TokenFile::sequence(int64_t index) const {
  CALDERA_CHECK(0 <= index && index < num_sequences_, "sequence ", index, " of ", num_sequences_, " in '",
                path_.string(), "'");
  return {tokens_.data() + index * seq_len_, static_cast<std::size_t>(seq_len_)};
}

std::string write_token_file(const std::filesystem::path& path, MatrixView<const uint32_t> tokens) {
  const PublishedFile f = publish_atomically(path, [&](const std::filesystem::path& tmp) {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) raise<IoError>("cannot create '", tmp.string(), "': ", std::strerror(errno));
    std::vector<unsigned char> row(static_cast<std::size_t>(tokens.cols) * 4);
    for (int64_t i = 0; i < tokens.rows; ++i) {
      for (int64_t j = 0; j < tokens.cols; ++j)
        for (int b = 0; b < 4; ++b) row[static_cast<std::size_t>(j * 4 + b)] = static_cast<unsigned char>(tokens(i, j) >> (8 * b));
      out.write(reinterpret_cast<const char*>(row.data()), static_cast<std::streamsize>(row.size()));
    }
    out.close();
    if (!out) raise<IoError>("write to '", tmp.string(), "' failed");
  });
  return f.sha256;
}

}  // namespace caldera::io
