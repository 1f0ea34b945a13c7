#include "io/safetensors.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <mutex>
#include <numeric>

#include "core/error.h"
#include "io/json_util.h"

namespace caldera::io {
namespace {

using nlohmann::json;

std::string file_where(const std::filesystem::path& path) { return "safetensors file '" + path.string() + "'"; }

/// A non-negative JSON integer that fits int64, or nullopt.
std::optional<int64_t> as_nonnegative_int(const json& v) {
  if (v.is_number_unsigned()) {
    const auto u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(INT64_MAX)) return std::nullopt;
    return static_cast<int64_t>(u);
  }
  if (v.is_number_integer()) {
    const auto i = v.get<int64_t>();
    if (i < 0) return std::nullopt;
    return i;
  }
  return std::nullopt;
}

std::string supported_dtypes() {
  std::string s;
  for (DType t : {DType::kF64, DType::kF32, DType::kF16, DType::kBF16, DType::kI64, DType::kI32, DType::kI16,
                  DType::kI8, DType::kU8, DType::kBool}) {
    if (!s.empty()) s += ", ";
    s += dtype_name(t);
  }
  return s;
}

TensorInfo parse_entry(const std::string& name, const json& entry, const std::filesystem::path& path,
                       int64_t data_start, int64_t data_size) {
  const std::string where = file_where(path) + ": tensor '" + name + "'";
  if (name.empty()) raise<IoError>(file_where(path), ": a tensor has an empty name");
  if (!entry.is_object())
    raise<IoError>(where, ": expected an object {dtype, shape, data_offsets}, found ", detail::json_excerpt(entry));
  for (const auto& [key, value] : entry.items())
    if (key != "dtype" && key != "shape" && key != "data_offsets")
      raise<IoError>(where, ": unexpected field \"", key, "\"; expected only dtype, shape, data_offsets");
  for (const char* key : {"dtype", "shape", "data_offsets"})
    if (!entry.contains(key)) raise<IoError>(where, ": missing field \"", key, "\"");

  TensorInfo info;
  info.name = name;
  info.file = path;
  const json& dtype = entry.at("dtype");
  if (!dtype.is_string()) raise<IoError>(where, ": dtype must be a string, found ", detail::json_excerpt(dtype));
  if (!parse_dtype(dtype.get_ref<const std::string&>(), &info.dtype))
    raise<IoError>(where, ": unsupported dtype \"", dtype.get_ref<const std::string&>(), "\"; expected one of ",
                   supported_dtypes());

  const json& shape = entry.at("shape");
  if (!shape.is_array()) raise<IoError>(where, ": shape must be an array, found ", detail::json_excerpt(shape));
  int64_t numel = 1;
  for (const json& d : shape) {
    const auto dim = as_nonnegative_int(d);
    if (!dim) raise<IoError>(where, ": shape ", shape.dump(), " has ", detail::json_excerpt(d),
                             "; expected non-negative integers");
    info.shape.push_back(*dim);
    if (__builtin_mul_overflow(numel, *dim, &numel))
      raise<IoError>(where, ": shape ", shape.dump(), " has more elements than fit in 64 bits");
  }
  if (__builtin_mul_overflow(numel, dtype_size(info.dtype), &info.size_bytes))
    raise<IoError>(where, ": shape ", shape.dump(), " of ", dtype_name(info.dtype), " exceeds 2^63 bytes");

  const json& offsets = entry.at("data_offsets");
  if (!offsets.is_array() || offsets.size() != 2)
    raise<IoError>(where, ": data_offsets must be [begin, end], found ", detail::json_excerpt(offsets));
  const auto begin = as_nonnegative_int(offsets[0]);
  const auto end = as_nonnegative_int(offsets[1]);
  if (!begin || !end)
    raise<IoError>(where, ": data_offsets ", offsets.dump(), " must be non-negative integers");
  if (*end < *begin) raise<IoError>(where, ": data_offsets ", offsets.dump(), " end before begin");
  if (*end > data_size)
    raise<IoError>(where, ": data_offsets ", offsets.dump(), " run past the data section of ", data_size,
                   " bytes (file truncated or corrupt)");
  if (*end - *begin != info.size_bytes)
    raise<IoError>(where, ": data_offsets ", offsets.dump(), " span ", *end - *begin, " bytes but ",
                   dtype_name(info.dtype), " ", shape.dump(), " needs ", info.size_bytes, " bytes");
  info.offset_bytes = data_start + *begin;
  return info;
}

std::string where_tensor(const TensorInfo& info) {
  return file_where(info.file) + ": tensor '" + info.name + "'";
}

/// Converts `n` little-endian elements of `dtype` at `src` (any alignment) to fp32.
void convert_to_f32(DType dtype, const std::byte* src, int64_t n, float* dst) {
  switch (dtype) {
    case DType::kF32:
      std::memcpy(dst, src, static_cast<std::size_t>(n) * 4);
      return;
    case DType::kBF16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        dst[i] = bf16_to_f32(h);
      }
      return;
    case DType::kF16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        dst[i] = f16_to_f32(h);
      }
      return;
    case DType::kF64:
      for (int64_t i = 0; i < n; ++i) {
        double d;
        std::memcpy(&d, src + 8 * i, 8);
        // Out-of-range values become ±Inf (caught by the finiteness check), never UB.
        dst[i] = std::fabs(d) > 3.4028234663852886e38 && std::isfinite(d)
                     ? (d > 0 ? INFINITY : -INFINITY)
                     : static_cast<float>(d);
      }
      return;
    default:
      break;
  }
  raise<Error>("convert_to_f32: unsupported dtype ", dtype_name(dtype));
}

}  // namespace

static_assert(std::endian::native == std::endian::little, "safetensors data is little-endian; big-endian hosts are not supported");

int64_t TensorInfo::numel() const noexcept {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string shape_to_string(std::span<const int64_t> shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) s += ", ";
    s += std::to_string(shape[i]);
  }
  s += "]";
  return s;
}

std::string TensorInfo::shape_string() const { return shape_to_string(shape); }

std::pair<int64_t, int64_t> matrix_shape(const TensorInfo& info) {
  switch (info.shape.size()) {
    case 0: return {1, 1};
    case 1: return {1, info.shape[0]};
    case 2: return {info.shape[0], info.shape[1]};
    default: break;
  }
  raise<IoError>(where_tensor(info), ": shape ", info.shape_string(), " has rank ", info.shape.size(),
                 "; expected a matrix (rank <= 2)");
}

// ---------------------------------------------------------------------------------------------
// SafetensorsFile

SafetensorsFile SafetensorsFile::open(const std::filesystem::path& path) {
  SafetensorsFile f;
  f.map_ = MappedFile::open(path);
  const std::string where = file_where(path);
  const auto file_size = static_cast<int64_t>(f.map_.size_bytes());
  if (file_size < 8)
    raise<IoError>(where, ": truncated: ", file_size, " bytes, expected at least the 8-byte header length");
  const auto bytes = f.map_.bytes();
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | static_cast<uint8_t>(bytes[static_cast<size_t>(i)]);
  if (header_len > static_cast<uint64_t>(kMaxSafetensorsHeaderBytes))
    raise<IoError>(where, ": header length ", header_len, " exceeds the limit of ", kMaxSafetensorsHeaderBytes,
                   " bytes (corrupt or not a safetensors file)");
  if (header_len > static_cast<uint64_t>(file_size - 8))
    raise<IoError>(where, ": header length ", header_len, " runs past the end of the file (", file_size,
                   " bytes): truncated or corrupt");
  f.header_bytes_ = static_cast<int64_t>(header_len);
  const std::string_view header_text(reinterpret_cast<const char*>(bytes.data()) + 8, header_len);
  const json header = detail::parse_json_strict(header_text, where + " header");
  if (!header.is_object())
    raise<IoError>(where, ": header must be a JSON object, found ", detail::json_excerpt(header));

  const int64_t data_start = 8 + f.header_bytes_;
  const int64_t data_size = file_size - data_start;
  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__") {
      if (!value.is_object())
        raise<IoError>(where, ": __metadata__ must be an object of strings, found ", detail::json_excerpt(value));
      for (const auto& [mk, mv] : value.items()) {
        if (!mv.is_string())
          raise<IoError>(where, ": __metadata__[\"", mk, "\"] must be a string, found ", detail::json_excerpt(mv));
        f.metadata_.emplace(mk, mv.get<std::string>());
      }
      continue;
    }
    f.tensors_.push_back(parse_entry(key, value, path, data_start, data_size));
  }
  std::sort(f.tensors_.begin(), f.tensors_.end(), [](const auto& a, const auto& b) { return a.name < b.name; });

  // No two tensors may share a byte: sort by offset and compare neighbours (empty tensors own none).
  std::vector<const TensorInfo*> by_offset;
  for (const auto& t : f.tensors_)
    if (t.size_bytes > 0) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const TensorInfo* a, const TensorInfo* b) { return a->offset_bytes < b->offset_bytes; });
  for (std::size_t i = 1; i < by_offset.size(); ++i) {
    const TensorInfo& prev = *by_offset[i - 1];
    const TensorInfo& cur = *by_offset[i];
    if (cur.offset_bytes < prev.offset_bytes + prev.size_bytes)
      raise<IoError>(where, ": tensor '", cur.name, "' (data_offsets [", cur.offset_bytes - data_start, ", ",
                     cur.offset_bytes - data_start + cur.size_bytes, ")) overlaps tensor '", prev.name,
                     "' (data_offsets [", prev.offset_bytes - data_start, ", ",
                     prev.offset_bytes - data_start + prev.size_bytes, "))");
  }
  return f;
}

std::span<const std::byte> SafetensorsFile::header_bytes() const noexcept {
  return map_.bytes().subspan(8, static_cast<std::size_t>(header_bytes_));
}

const TensorInfo* SafetensorsFile::find(std::string_view name) const noexcept {
  auto it = std::lower_bound(tensors_.begin(), tensors_.end(), name,
                             [](const TensorInfo& t, std::string_view n) { return t.name < n; });
  return it != tensors_.end() && it->name == name ? &*it : nullptr;
}

const TensorInfo& SafetensorsFile::info(std::string_view name) const {
  const TensorInfo* t = find(name);
  if (t == nullptr) raise<IoError>(file_where(path()), ": tensor '", name, "' not found");
  return *t;
}

std::span<const std::byte> SafetensorsFile::bytes(std::string_view name) const { return bytes(info(name)); }

std::span<const std::byte> SafetensorsFile::bytes(const TensorInfo& info) const {
  CALDERA_CHECK(info.file == path() && info.offset_bytes + info.size_bytes <= file_size_bytes(),
                "tensor '", info.name, "' does not belong to ", file_where(path()));
  return map_.bytes().subspan(static_cast<std::size_t>(info.offset_bytes), static_cast<std::size_t>(info.size_bytes));
}

HostMatrix<float> SafetensorsFile::read_f32(std::string_view name) const {
  const TensorInfo& t = info(name);
  const auto [rows, cols] = matrix_shape(t);
  HostMatrix<float> out(rows, cols);
  read_f32_into(name, out.view());
  return out;
}

void SafetensorsFile::read_f32_into(std::string_view name, MatrixView<float> out) const {
  const TensorInfo& t = info(name);
  const auto [rows, cols] = matrix_shape(t);
  if (t.dtype != DType::kF32 && t.dtype != DType::kF16 && t.dtype != DType::kBF16 && t.dtype != DType::kF64)
    raise<IoError>(where_tensor(t), ": dtype ", dtype_name(t.dtype), " is not a floating-point type; expected BF16, F16, F32 or F64");
  CALDERA_CHECK(out.rows == rows && out.cols == cols && (out.ld >= cols || rows <= 1), "read_f32_into: ",
                where_tensor(t), " is ", rows, "x", cols, " but the destination is ", out.rows, "x", out.cols,
                " (ld ", out.ld, ")");
  const auto src = bytes(t);
  const int64_t esz = dtype_size(t.dtype);
  int64_t bad = 0, first_row = -1, first_col = -1;
  float first_value = 0;
  for (int64_t i = 0; i < rows; ++i) {
    float* row = out.row(i);
    convert_to_f32(t.dtype, src.data() + i * cols * esz, cols, row);
    for (int64_t j = 0; j < cols; ++j)
      if (!std::isfinite(row[j])) {
        if (bad++ == 0) {
          first_row = i;
          first_col = j;
          first_value = row[j];
        }
      }
  }
  release(t);
  if (bad > 0)
    raise<IoError>(where_tensor(t), ": ", bad, " non-finite value", bad == 1 ? "" : "s", " (first: ", first_value,
                   " at row ", first_row, ", column ", first_col, " of ", rows, "x", cols,
                   "); expected finite weights");
}

void SafetensorsFile::release(const TensorInfo& info) const noexcept {
  map_.release(static_cast<std::size_t>(info.offset_bytes), static_cast<std::size_t>(info.size_bytes));
}

// ---------------------------------------------------------------------------------------------
// SafetensorsSet

struct SafetensorsSet::Impl {
  std::filesystem::path index_path;
  std::vector<std::filesystem::path> files;
  std::vector<std::string> names;                         // sorted
  std::map<std::string, std::size_t, std::less<>> shard_of;  // tensor -> index into files
  std::mutex mutex;
  std::vector<std::unique_ptr<SafetensorsFile>> opened;   // parallel to files; guarded by mutex

  std::string source() const {
    return index_path.empty() ? file_where(files.front()) : "index '" + index_path.string() + "'";
  }
};

SafetensorsSet::SafetensorsSet(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SafetensorsSet::SafetensorsSet(SafetensorsSet&&) noexcept = default;
SafetensorsSet& SafetensorsSet::operator=(SafetensorsSet&&) noexcept = default;
SafetensorsSet::~SafetensorsSet() = default;

SafetensorsSet SafetensorsSet::open(const std::filesystem::path& path) {
  namespace fs = std::filesystem;
  auto impl = std::make_unique<Impl>();
  fs::path index_path, single_path;
  if (fs::is_directory(path)) {
    if (fs::exists(path / "model.safetensors.index.json"))
      index_path = path / "model.safetensors.index.json";
    else if (fs::exists(path / "model.safetensors"))
      single_path = path / "model.safetensors";
    else
      raise<IoError>("model directory '", path.string(),
                     "' has neither model.safetensors.index.json nor model.safetensors");
  } else if (path.extension() == ".json") {
    index_path = path;
  } else {
    single_path = path;
  }

  if (!single_path.empty()) {
    auto file = std::make_unique<SafetensorsFile>(SafetensorsFile::open(single_path));
    impl->files.push_back(single_path);
    for (const auto& t : file->tensors()) {
      impl->names.push_back(t.name);
      impl->shard_of.emplace(t.name, 0);
    }
    impl->opened.push_back(std::move(file));
    return SafetensorsSet(std::move(impl));
  }

  impl->index_path = index_path;
  const std::string where = "index '" + index_path.string() + "'";
  const json index = detail::read_json_file(index_path);
  if (!index.is_object()) raise<IoError>(where, ": expected a JSON object, found ", detail::json_excerpt(index));
  if (!index.contains("weight_map") || !index.at("weight_map").is_object())
    raise<IoError>(where, ": expected an object \"weight_map\" {tensor: shard file}");
  if (index.contains("metadata") && !index.at("metadata").is_object() && !index.at("metadata").is_null())
    raise<IoError>(where, ": \"metadata\" must be an object, found ", detail::json_excerpt(index.at("metadata")));
  const json& weight_map = index.at("weight_map");
  if (weight_map.empty()) raise<IoError>(where, ": weight_map lists no tensors");

  const fs::path dir = index_path.parent_path();
  std::map<std::string, std::size_t> shard_ids;
  for (const auto& [tensor, shard] : weight_map.items()) {
    if (tensor.empty()) raise<IoError>(where, ": weight_map has an empty tensor name");
    if (!shard.is_string())
      raise<IoError>(where, ": weight_map[\"", tensor, "\"] must be a file name, found ", detail::json_excerpt(shard));
    const auto& shard_name = shard.get_ref<const std::string&>();
    if (shard_name.empty() || shard_name == "." || shard_name == ".." || shard_name.find('/') != std::string::npos ||
        shard_name.find('\0') != std::string::npos)
      raise<IoError>(where, ": tensor '", tensor, "' maps to \"", shard_name,
                     "\"; expected a plain file name in the index's directory");
    shard_ids.emplace(shard_name, 0);
  }
  for (auto& [shard_name, id] : shard_ids) {
    const fs::path shard_path = dir / shard_name;
    if (!fs::is_regular_file(shard_path)) {
      std::string example;
      for (const auto& [tensor, shard] : weight_map.items())
        if (shard.get_ref<const std::string&>() == shard_name) {
          example = tensor;
          break;
        }
      raise<IoError>(where, ": tensor '", example, "' maps to shard '", shard_name, "', but '",
                     shard_path.string(), "' does not exist");
    }
    id = impl->files.size();
    impl->files.push_back(shard_path);
  }
  for (const auto& [tensor, shard] : weight_map.items()) {
    impl->names.push_back(tensor);
    impl->shard_of.emplace(tensor, shard_ids.at(shard.get_ref<const std::string&>()));
  }
  std::sort(impl->names.begin(), impl->names.end());
  impl->opened.resize(impl->files.size());
  return SafetensorsSet(std::move(impl));
}

const std::vector<std::string>& SafetensorsSet::tensor_names() const noexcept { return impl_->names; }
bool SafetensorsSet::contains(std::string_view name) const noexcept { return impl_->shard_of.contains(name); }
const std::vector<std::filesystem::path>& SafetensorsSet::files() const noexcept { return impl_->files; }
const std::filesystem::path& SafetensorsSet::index_file() const noexcept { return impl_->index_path; }

const SafetensorsFile& SafetensorsSet::file(std::size_t i) const {
  CALDERA_CHECK(i < impl_->files.size(), "shard ", i, " of ", impl_->files.size());
  std::lock_guard lock(impl_->mutex);
  if (impl_->opened[i]) return *impl_->opened[i];
  auto file = std::make_unique<SafetensorsFile>(SafetensorsFile::open(impl_->files[i]));
  const std::string where = impl_->source();
  for (const auto& t : file->tensors()) {
    auto it = impl_->shard_of.find(t.name);
    if (it == impl_->shard_of.end())
      raise<IoError>(where, ": shard '", impl_->files[i].string(), "' holds tensor '", t.name,
                     "', which the index does not list");
    if (it->second != i)
      raise<IoError>(where, ": tensor '", t.name, "' is stored in shard '", impl_->files[i].string(),
                     "' but the index maps it to '", impl_->files[it->second].string(),
                     "' (a tensor in two shards, or a stale index)");
  }
  for (const auto& [name, shard] : impl_->shard_of)
    if (shard == i && file->find(name) == nullptr)
      raise<IoError>(where, ": tensor '", name, "' is mapped to shard '", impl_->files[i].string(),
                     "', which does not contain it");
  impl_->opened[i] = std::move(file);
  return *impl_->opened[i];
}

void SafetensorsSet::open_all() const {
  for (std::size_t i = 0; i < impl_->files.size(); ++i) file(i);
}

const SafetensorsFile& SafetensorsSet::file_of(std::string_view name) const {
  auto it = impl_->shard_of.find(name);
  if (it == impl_->shard_of.end()) raise<IoError>(impl_->source(), ": tensor '", name, "' not found");
  return file(it->second);
}

const TensorInfo& SafetensorsSet::info(std::string_view name) const { return file_of(name).info(name); }
std::span<const std::byte> SafetensorsSet::bytes(std::string_view name) const { return file_of(name).bytes(name); }
HostMatrix<float> SafetensorsSet::read_f32(std::string_view name) const { return file_of(name).read_f32(name); }
void SafetensorsSet::read_f32_into(std::string_view name, MatrixView<float> out) const {
  file_of(name).read_f32_into(name, out);
}

}  // namespace caldera::io
