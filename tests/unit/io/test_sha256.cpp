// SHA-256 against the FIPS 180-4 / NIST CAVP example vectors, incremental feeding, and files.
#include <gtest/gtest.h>

#include "core/error.h"
#include "io/sha256.h"
#include "io_test_util.h"

namespace caldera::io {
namespace {

TEST(Sha256, NistVectors) {
  EXPECT_EQ(sha256_hex(std::string_view("")), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex(std::string_view("abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex(std::string_view("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(sha256_hex(std::string_view("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu")),
            "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
  EXPECT_EQ(sha256_hex(std::string(1000000, 'a')), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, PaddingBoundaries) {
  // Lengths around the 55/56/63/64-byte padding edges, fed whole and one byte at a time.
  for (std::size_t len : {55u, 56u, 57u, 63u, 64u, 65u, 119u, 120u, 128u}) {
    const std::string msg(len, 'x');
    Sha256 bytewise;
    for (char ch : msg) bytewise.update(std::string_view(&ch, 1));
    EXPECT_EQ(bytewise.hex_digest(), sha256_hex(msg)) << len;
  }
  // 64 x 'a' (a full block plus a padding block) from an independent implementation (Python hashlib).
  EXPECT_EQ(sha256_hex(std::string(64, 'a')), "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb");
}

TEST(Sha256, IncrementalInUnevenPieces) {
  std::string msg;
  for (int i = 0; i < 5000; ++i) msg.push_back(static_cast<char>(i * 131 % 251));
  Sha256 h;
  std::size_t pos = 0;
  for (std::size_t piece = 1; pos < msg.size(); piece = piece * 3 % 97 + 1) {
    const std::size_t n = std::min(piece, msg.size() - pos);
    h.update(std::string_view(msg).substr(pos, n));
    pos += n;
  }
  EXPECT_EQ(h.hex_digest(), sha256_hex(msg));
  EXPECT_THROW(h.update(std::string_view("more")), Error);
}

TEST(Sha256, Files) {
  test::TempDir dir("sha");
  test::write_text(dir / "f", "abc");
  EXPECT_EQ(sha256_file(dir / "f"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const std::string big(3 << 20, 'a');  // crosses the 1 MiB read size
  test::write_text(dir / "big", big);
  EXPECT_EQ(sha256_file(dir / "big"), sha256_hex(big));
  EXPECT_THROW(sha256_file(dir / "missing"), IoError);
}

}  // namespace
}  // namespace caldera::io
