#include "io/safetensors_writer.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <set>

#include "core/error.h"
#include "io/json_util.h"
#include "io/safetensors.h"

namespace caldera::io {
namespace {

using nlohmann::json;

struct FileCloser {
  void operator()(std::FILE* f) const noexcept { std::fclose(f); }
};

void write_all(std::FILE* f, const void* data, std::size_t n, const std::filesystem::path& path) {
  if (n > 0 && std::fwrite(data, 1, n, f) != n)
    raise<IoError>("write to '", path.string(), "' failed (", n, " bytes): ", std::strerror(errno));
}

std::string shard_name(std::size_t k, std::size_t n) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "model-%05zu-of-%05zu.safetensors", k, n);
  return buf;
}

}  // namespace

int64_t SafetensorsWriter::check_new(const std::string& name, DType dtype, const std::vector<int64_t>& shape) {
  CALDERA_CHECK(!name.empty() && name != "__metadata__", "safetensors tensor name \"", name, "\" is not allowed");
  int64_t numel = 1;
  for (int64_t d : shape) {
    CALDERA_CHECK(d >= 0, "tensor '", name, "': negative dimension in ", shape_to_string(shape));
    CALDERA_CHECK(!__builtin_mul_overflow(numel, d, &numel), "tensor '", name, "': shape overflows");
  }
  int64_t bytes = 0;
  CALDERA_CHECK(!__builtin_mul_overflow(numel, dtype_size(dtype), &bytes), "tensor '", name, "': size overflows");
  CALDERA_CHECK(!names_.contains(name), "tensor '", name, "' added twice");
  return bytes;
}

void SafetensorsWriter::add(std::string name, DType dtype, std::vector<int64_t> shape, std::span<const std::byte> bytes) {
  const int64_t size = check_new(name, dtype, shape);
  CALDERA_CHECK(static_cast<int64_t>(bytes.size()) == size, "tensor '", name, "': ", bytes.size(), " bytes given, ",
                dtype_name(dtype), " ", shape_to_string(shape), " needs ", size);
  names_.insert(name);
  entries_.push_back({std::move(name), dtype, std::move(shape), size, std::vector<std::byte>(bytes.begin(), bytes.end()), {}});
}

void SafetensorsWriter::add_matrix(std::string name, MatrixView<const float> m, DType dtype, std::vector<int64_t> shape) {
  CALDERA_CHECK(dtype == DType::kF32 || dtype == DType::kF16 || dtype == DType::kBF16, "tensor '", name,
                "': add_matrix writes F32, F16 or BF16, not ", dtype_name(dtype));
  if (shape.empty()) shape = {m.rows, m.cols};
  const int64_t size = check_new(name, dtype, shape);
  CALDERA_CHECK(size == m.rows * m.cols * dtype_size(dtype), "tensor '", name, "': shape ", shape_to_string(shape),
                " does not hold a ", m.rows, "x", m.cols, " matrix");
  std::vector<std::byte> bytes(static_cast<std::size_t>(size));
  std::byte* out = bytes.data();
  for (int64_t i = 0; i < m.rows; ++i)
    for (int64_t j = 0; j < m.cols; ++j) {
      const float v = m(i, j);
      if (dtype == DType::kF32) {
        std::memcpy(out, &v, 4);
        out += 4;
      } else {
        const uint16_t h = dtype == DType::kBF16 ? f32_to_bf16(v) : f32_to_f16(v);
        std::memcpy(out, &h, 2);
        out += 2;
      }
    }
  names_.insert(name);
  entries_.push_back({std::move(name), dtype, std::move(shape), size, std::move(bytes), {}});
}

void SafetensorsWriter::add_deferred(std::string name, DType dtype, std::vector<int64_t> shape, Fill fill) {
  const int64_t size = check_new(name, dtype, shape);
  CALDERA_CHECK(static_cast<bool>(fill), "tensor '", name, "': empty fill function");
  names_.insert(name);
  entries_.push_back({std::move(name), dtype, std::move(shape), size, {}, std::move(fill)});
}

void SafetensorsWriter::set_metadata(std::map<std::string, std::string> metadata) { metadata_ = std::move(metadata); }

int64_t SafetensorsWriter::data_size_bytes() const noexcept {
  int64_t total = 0;
  for (const auto& e : entries_) total += e.size_bytes;
  return total;
}

void SafetensorsWriter::write_file(const std::filesystem::path& tmp, std::span<const Entry* const> entries) const {
  json header = json::object();
  int64_t offset = 0;
  for (const Entry* e : entries) {
    header[e->name] = {{"dtype", std::string(dtype_name(e->dtype))},
                       {"shape", e->shape},
                       {"data_offsets", {offset, offset + e->size_bytes}}};
    offset += e->size_bytes;
  }
  if (!metadata_.empty()) header["__metadata__"] = metadata_;
  std::string text = header.dump();
  text.append((8 - (8 + text.size()) % 8) % 8, ' ');  // data section starts 8-byte aligned

  std::unique_ptr<std::FILE, FileCloser> f(std::fopen(tmp.c_str(), "wb"));
  if (!f) raise<IoError>("cannot create '", tmp.string(), "': ", std::strerror(errno));
  unsigned char len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>((static_cast<uint64_t>(text.size()) >> (8 * i)) & 0xff);
  write_all(f.get(), len, 8, tmp);
  write_all(f.get(), text.data(), text.size(), tmp);
  std::vector<std::byte> buffer;
  for (const Entry* e : entries) {
    if (e->fill) {
      buffer.assign(static_cast<std::size_t>(e->size_bytes), std::byte{0});
      e->fill(std::span<std::byte>(buffer));
      write_all(f.get(), buffer.data(), buffer.size(), tmp);
    } else {
      write_all(f.get(), e->bytes.data(), e->bytes.size(), tmp);
    }
  }
  if (std::fflush(f.get()) != 0) raise<IoError>("flush of '", tmp.string(), "' failed: ", std::strerror(errno));
  std::FILE* raw = f.release();
  if (std::fclose(raw) != 0) raise<IoError>("close of '", tmp.string(), "' failed: ", std::strerror(errno));
}

PublishedFile SafetensorsWriter::write(const std::filesystem::path& path) const {
  std::vector<const Entry*> all;
  for (const auto& e : entries_) all.push_back(&e);
  return publish_atomically(path, [&](const std::filesystem::path& tmp) { write_file(tmp, all); });
}

ShardedWrite SafetensorsWriter::write_sharded(const std::filesystem::path& dir, int64_t max_shard_bytes) const {
  CALDERA_CHECK(max_shard_bytes > 0, "max_shard_bytes must be > 0, found ", max_shard_bytes);
  CALDERA_CHECK(!entries_.empty(), "write_sharded: no tensors were added");
  std::vector<std::vector<const Entry*>> shards(1);
  int64_t current = 0;
  for (const auto& e : entries_) {
    if (!shards.back().empty() && current + e.size_bytes > max_shard_bytes) {
      shards.emplace_back();
      current = 0;
    }
    shards.back().push_back(&e);
    current += e.size_bytes;
  }
  ShardedWrite out;
  json weight_map = json::object();
  for (std::size_t k = 0; k < shards.size(); ++k) {
    const std::string name = shard_name(k + 1, shards.size());
    out.shards.push_back(
        publish_atomically(dir / name, [&](const std::filesystem::path& tmp) { write_file(tmp, shards[k]); }));
    for (const Entry* e : shards[k]) weight_map[e->name] = name;
  }
  out.total_size_bytes = data_size_bytes();
  const json index = {{"metadata", {{"total_size", out.total_size_bytes}}}, {"weight_map", weight_map}};
  const std::string text = index.dump(2) + "\n";
  out.index = publish_atomically(dir / "model.safetensors.index.json", [&](const std::filesystem::path& tmp) {
    std::unique_ptr<std::FILE, FileCloser> f(std::fopen(tmp.c_str(), "wb"));
    if (!f) raise<IoError>("cannot create '", tmp.string(), "': ", std::strerror(errno));
    write_all(f.get(), text.data(), text.size(), tmp);
    std::FILE* raw = f.release();
    if (std::fclose(raw) != 0) raise<IoError>("close of '", tmp.string(), "' failed: ", std::strerror(errno));
  });
  return out;
}

}  // namespace caldera::io
