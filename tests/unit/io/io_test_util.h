// Helpers for the io tests: crafting (possibly malformed) safetensors files byte by byte, and
// checking that an error has the right type and names the right things.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace caldera::test {

/// Raw little-endian bytes.
using Bytes = std::vector<uint8_t>;

inline Bytes f32_bytes(std::initializer_list<float> values) {
  Bytes b;
  for (float v : values) {
    const uint32_t u = float_bits(v);
    for (int i = 0; i < 4; ++i) b.push_back(static_cast<uint8_t>(u >> (8 * i)));
  }
  return b;
}
inline Bytes u16_bytes(std::initializer_list<uint16_t> values) {
  Bytes b;
  for (uint16_t v : values) {
    b.push_back(static_cast<uint8_t>(v));
    b.push_back(static_cast<uint8_t>(v >> 8));
  }
  return b;
}

/// Writes a safetensors-like file: 8-byte LE `declared_header_len` (default: the real length), the
/// header text, then `data`.
inline void write_raw_safetensors(const std::filesystem::path& path, const std::string& header, const Bytes& data,
                                  int64_t declared_header_len = -1) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  const uint64_t n = declared_header_len < 0 ? header.size() : static_cast<uint64_t>(declared_header_len);
  for (int i = 0; i < 8; ++i) out.put(static_cast<char>((n >> (8 * i)) & 0xff));
  out.write(header.data(), static_cast<std::streamsize>(header.size()));
  out.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
  ASSERT_TRUE(out.good()) << "writing " << path;
}

/// One tensor for build_safetensors: its data bytes are appended in order; offsets computed.
struct CraftTensor {
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;
  Bytes data;
};

/// A well-formed safetensors file with the given tensors, back to back in the given order.
inline void build_safetensors(const std::filesystem::path& path, const std::vector<CraftTensor>& tensors,
                              const std::string& metadata_json = "") {
  std::string header = "{";
  Bytes data;
  for (const auto& t : tensors) {
    if (header.size() > 1) header += ",";
    header += "\"" + t.name + "\":{\"dtype\":\"" + t.dtype + "\",\"shape\":[";
    for (std::size_t i = 0; i < t.shape.size(); ++i) {
      if (i > 0) header += ",";
      header += std::to_string(t.shape[i]);
    }
    header += "],\"data_offsets\":[" + std::to_string(data.size()) + "," + std::to_string(data.size() + t.data.size()) + "]}";
    data.insert(data.end(), t.data.begin(), t.data.end());
  }
  if (!metadata_json.empty()) header += std::string(header.size() > 1 ? "," : "") + "\"__metadata__\":" + metadata_json;
  header += "}";
  write_raw_safetensors(path, header, data);
}

/// Runs `fn`, expects it to throw exactly E (or a subclass) whose message contains every needle.
template <class E>
void expect_error(const std::function<void()>& fn, std::initializer_list<std::string> needles) {
  try {
    fn();
  } catch (const E& e) {
    const std::string msg = e.what();
    if (std::getenv("CALDERA_TEST_PRINT_ERRORS") != nullptr) std::printf("    error: %s\n", msg.c_str());
    for (const auto& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << "message lacks \"" << n << "\": " << msg;
    return;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected " << typeid(E).name() << ", got another exception: " << e.what();
    return;
  }
  ADD_FAILURE() << "expected " << typeid(E).name() << ", nothing was thrown";
}

/// Truncates or copies a file.
inline void copy_prefix(const std::filesystem::path& from, const std::filesystem::path& to, std::uintmax_t bytes) {
  std::ifstream in(from, std::ios::binary);
  std::string buf(static_cast<std::size_t>(bytes), '\0');
  in.read(buf.data(), static_cast<std::streamsize>(bytes));
  std::ofstream out(to, std::ios::binary | std::ios::trunc);
  out.write(buf.data(), in.gcount());
}

inline std::string read_text(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}
inline void write_text(const std::filesystem::path& p, const std::string& s) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << s;
}

/// A temp directory removed at the end of the test.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix);
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

}  // namespace caldera::test
