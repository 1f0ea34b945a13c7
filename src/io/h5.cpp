#include "io/h5.h"

#include <hdf5.h>

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <utility>

#include "core/error.h"
#include "core/log.h"
#include "io/safetensors.h"  // shape_to_string
#include "io/sha256.h"

static_assert(std::is_same_v<hid_t, int64_t>, "io/h5.h stores hid_t as int64_t (HDF5 >= 1.10)");
static_assert(sizeof(hsize_t) == 8);

namespace caldera::io::h5 {
namespace {

constexpr int64_t kTargetChunkBytes = int64_t{1} << 20;
constexpr int64_t kVerifySlabBytes = int64_t{16} << 20;

/// Silences HDF5's automatic error printing while alive, restoring the previous handler after.
class ErrorPrintingGuard {
 public:
  ErrorPrintingGuard() noexcept {
    H5Eget_auto2(H5E_DEFAULT, &func_, &data_);
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  }
  ~ErrorPrintingGuard() { H5Eset_auto2(H5E_DEFAULT, func_, data_); }
  ErrorPrintingGuard(const ErrorPrintingGuard&) = delete;
  ErrorPrintingGuard& operator=(const ErrorPrintingGuard&) = delete;

 private:
  H5E_auto2_t func_ = nullptr;
  void* data_ = nullptr;
};

/// HDF5's error stack as one line (at most a few entries), then clears it.
std::string error_stack() {
  struct Acc {
    std::string text;
    int entries = 0;
  } acc;
  H5Ewalk2(
      H5E_DEFAULT, H5E_WALK_DOWNWARD,
      [](unsigned, const H5E_error2_t* err, void* data) -> herr_t {
        auto* a = static_cast<Acc*>(data);
        if (a->entries++ >= 4 || err == nullptr) return 0;
        if (!a->text.empty()) a->text += "; ";
        a->text += std::string(err->func_name ? err->func_name : "?") + ": " + (err->desc ? err->desc : "?");
        return 0;
      },
      &acc);
  H5Eclear2(H5E_DEFAULT);
  return acc.text.empty() ? "no HDF5 error details" : acc.text;
}

[[noreturn]] void fail(const std::string& where, const char* what) {
  raise<IoError>(where, ": ", what, " failed (", error_stack(), ")");
}
hid_t check_id(hid_t id, const std::string& where, const char* what) {
  if (id < 0) fail(where, what);
  return id;
}
void check(herr_t status, const std::string& where, const char* what) {
  if (status < 0) fail(where, what);
}

template <class T>
hid_t memory_type() {
  if constexpr (std::is_same_v<T, double>) return H5T_NATIVE_DOUBLE;
  if constexpr (std::is_same_v<T, float>) return H5T_NATIVE_FLOAT;
  if constexpr (std::is_same_v<T, int64_t>) return H5T_NATIVE_INT64;
  if constexpr (std::is_same_v<T, int32_t>) return H5T_NATIVE_INT32;
  if constexpr (std::is_same_v<T, uint16_t>) return H5T_NATIVE_UINT16;
  if constexpr (std::is_same_v<T, uint8_t>) return H5T_NATIVE_UINT8;
}
template <class T>
hid_t file_type() {
  if constexpr (std::is_same_v<T, double>) return H5T_IEEE_F64LE;
  if constexpr (std::is_same_v<T, float>) return H5T_IEEE_F32LE;
  if constexpr (std::is_same_v<T, int64_t>) return H5T_STD_I64LE;
  if constexpr (std::is_same_v<T, int32_t>) return H5T_STD_I32LE;
  if constexpr (std::is_same_v<T, uint16_t>) return H5T_STD_U16LE;
  if constexpr (std::is_same_v<T, uint8_t>) return H5T_STD_U8LE;
}
template <class T>
const char* type_name() {
  if constexpr (std::is_same_v<T, double>) return "float64";
  if constexpr (std::is_same_v<T, float>) return "float32";
  if constexpr (std::is_same_v<T, int64_t>) return "int64";
  if constexpr (std::is_same_v<T, int32_t>) return "int32";
  if constexpr (std::is_same_v<T, uint16_t>) return "uint16";
  if constexpr (std::is_same_v<T, uint8_t>) return "uint8";
}

/// "float32", "int16", "uint8", "string", ... for a stored type.
std::string describe_type(hid_t type) {
  const H5T_class_t cls = H5Tget_class(type);
  const std::size_t bits = H5Tget_size(type) * 8;
  if (cls == H5T_FLOAT) return "float" + std::to_string(bits);
  if (cls == H5T_INTEGER) return (H5Tget_sign(type) == H5T_SGN_NONE ? "uint" : "int") + std::to_string(bits);
  if (cls == H5T_STRING) return "string";
  return "HDF5 type class " + std::to_string(static_cast<int>(cls));
}

template <class T>
bool stored_type_matches(hid_t type) {
  const H5T_class_t cls = H5Tget_class(type);
  if (H5Tget_size(type) != sizeof(T)) return false;
  if constexpr (std::is_floating_point_v<T>) return cls == H5T_FLOAT;
  else return cls == H5T_INTEGER && (H5Tget_sign(type) == H5T_SGN_NONE) == std::is_unsigned_v<T>;
}

std::vector<int64_t> dataspace_shape(hid_t space, const std::string& where) {
  const int rank = H5Sget_simple_extent_ndims(space);
  if (rank < 0) fail(where, "H5Sget_simple_extent_ndims");
  std::vector<hsize_t> dims(static_cast<std::size_t>(rank));
  if (rank > 0) check(H5Sget_simple_extent_dims(space, dims.data(), nullptr), where, "H5Sget_simple_extent_dims");
  return {dims.begin(), dims.end()};
}

int64_t product(const std::vector<int64_t>& v, std::size_t from = 0) {
  int64_t n = 1;
  for (std::size_t i = from; i < v.size(); ++i) n *= v[i];
  return n;
}

/// Reads or writes [first, first+count) along dim 0 of dataset `ds` with memory type `mem`.
void transfer_slab(hid_t ds, hid_t mem, const std::vector<int64_t>& shape, int64_t first, int64_t count, void* buf,
                   bool write, const std::string& where) {
  if (count == 0 || product(shape, 1) == 0) return;
  H5Id fspace(check_id(H5Dget_space(ds), where, "H5Dget_space"));
  std::vector<hsize_t> start(shape.size(), 0), cnt(shape.begin(), shape.end());
  start[0] = static_cast<hsize_t>(first);
  cnt[0] = static_cast<hsize_t>(count);
  check(H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, start.data(), nullptr, cnt.data(), nullptr), where,
        "H5Sselect_hyperslab");
  H5Id mspace(check_id(H5Screate_simple(static_cast<int>(cnt.size()), cnt.data(), nullptr), where, "H5Screate_simple"));
  if (write)
    check(H5Dwrite(ds, mem, mspace.get(), fspace.get(), H5P_DEFAULT, buf), where, "H5Dwrite");
  else
    check(H5Dread(ds, mem, mspace.get(), fspace.get(), H5P_DEFAULT, buf), where, "H5Dread");
}

H5Id file_access_plist(const std::string& where) {
  H5Id fapl(check_id(H5Pcreate(H5P_FILE_ACCESS), where, "H5Pcreate(file access)"));
  check(H5Pset_file_locking(fapl.get(), false, true), where, "H5Pset_file_locking");
  check(H5Pset_fclose_degree(fapl.get(), H5F_CLOSE_STRONG), where, "H5Pset_fclose_degree");
  return fapl;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// H5Id

H5Id::H5Id(H5Id&& other) noexcept : id_(std::exchange(other.id_, -1)) {}
H5Id& H5Id::operator=(H5Id&& other) noexcept {
  if (this != &other) {
    reset();
    id_ = std::exchange(other.id_, -1);
  }
  return *this;
}
H5Id::~H5Id() { reset(); }
void H5Id::reset() noexcept {
  if (id_ >= 0) {
    ErrorPrintingGuard quiet;
    // A file closed with H5F_CLOSE_STRONG has already released its objects: their ids are invalid.
    if (H5Iis_valid(id_) > 0 && H5Idec_ref(id_) < 0) H5Eclear2(H5E_DEFAULT);
  }
  id_ = -1;
}
int64_t H5Id::release() noexcept { return std::exchange(id_, -1); }

// ---------------------------------------------------------------------------------------------
// H5Dataset

int64_t H5Dataset::num_elements() const noexcept { return product(shape_); }
std::string H5Dataset::describe() const { return "file '" + file_.string() + "', dataset '" + path_ + "'"; }

template <H5Element T>
void H5Dataset::write(std::span<const T> data) const {
  CALDERA_CHECK(static_cast<int64_t>(data.size()) == num_elements(), describe(), ": writing ", data.size(),
                " elements into shape ", shape_to_string(shape_));
  if (shape_.empty()) return;
  write_slab<T>(0, shape_[0], data);
}

template <H5Element T>
void H5Dataset::read(std::span<T> out) const {
  CALDERA_CHECK(static_cast<int64_t>(out.size()) == num_elements(), describe(), ": reading shape ",
                shape_to_string(shape_), " into ", out.size(), " elements");
  if (shape_.empty()) return;
  read_slab<T>(0, shape_[0], out);
}

template <H5Element T>
std::vector<T> H5Dataset::read() const {
  std::vector<T> out(static_cast<std::size_t>(num_elements()));
  read<T>(std::span<T>(out));
  return out;
}

template <H5Element T>
void H5Dataset::write_slab(int64_t first, int64_t count, std::span<const T> data) const {
  ErrorPrintingGuard quiet;
  CALDERA_CHECK(!shape_.empty() && first >= 0 && count >= 0 && first + count <= shape_[0], describe(), ": slab [",
                first, ", ", first + count, ") outside shape ", shape_to_string(shape_));
  CALDERA_CHECK(static_cast<int64_t>(data.size()) == count * product(shape_, 1), describe(), ": slab of ", count,
                " rows needs ", count * product(shape_, 1), " elements, got ", data.size());
  transfer_slab(id_.get(), memory_type<T>(), shape_, first, count, const_cast<T*>(data.data()), /*write=*/true,
                describe());
}

template <H5Element T>
void H5Dataset::read_slab(int64_t first, int64_t count, std::span<T> out) const {
  ErrorPrintingGuard quiet;
  CALDERA_CHECK(!shape_.empty() && first >= 0 && count >= 0 && first + count <= shape_[0], describe(), ": slab [",
                first, ", ", first + count, ") outside shape ", shape_to_string(shape_));
  CALDERA_CHECK(static_cast<int64_t>(out.size()) == count * product(shape_, 1), describe(), ": slab of ", count,
                " rows needs ", count * product(shape_, 1), " elements, got ", out.size());
  H5Id type(check_id(H5Dget_type(id_.get()), describe(), "H5Dget_type"));
  if (!stored_type_matches<T>(type.get()))
    raise<IoError>(describe(), ": stored as ", describe_type(type.get()), ", expected ", type_name<T>());
  transfer_slab(id_.get(), memory_type<T>(), shape_, first, count, out.data(), /*write=*/false, describe());
}

// ---------------------------------------------------------------------------------------------
// H5Group

std::string H5Group::describe() const { return "file '" + file_.string() + "', group '" + path_ + "'"; }

std::string H5Group::child_path(std::string_view name) const {
  return path_ == "/" ? "/" + std::string(name) : path_ + "/" + std::string(name);
}

H5Group H5Group::create_group(std::string_view name) const {
  ErrorPrintingGuard quiet;
  H5Group g;
  g.file_ = file_;
  g.path_ = child_path(name);
  const std::string n(name);
  g.id_ = H5Id(check_id(H5Gcreate2(id_.get(), n.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                        "file '" + file_.string() + "', group '" + g.path_ + "'", "H5Gcreate2"));
  return g;
}

H5Group H5Group::open_group(std::string_view name) const {
  ErrorPrintingGuard quiet;
  H5Group g;
  g.file_ = file_;
  g.path_ = child_path(name);
  if (!contains(name)) raise<IoError>(g.describe(), ": missing");
  const std::string n(name);
  g.id_ = H5Id(check_id(H5Gopen2(id_.get(), n.c_str(), H5P_DEFAULT), g.describe(), "H5Gopen2"));
  return g;
}

bool H5Group::contains(std::string_view name) const {
  ErrorPrintingGuard quiet;
  const std::string n(name);
  const htri_t r = H5Lexists(id_.get(), n.c_str(), H5P_DEFAULT);
  if (r < 0) fail(describe() + ", link '" + n + "'", "H5Lexists");
  return r > 0;
}

template <H5Element T>
H5Dataset H5Group::create_dataset(std::string_view name, const std::vector<int64_t>& shape) const {
  ErrorPrintingGuard quiet;
  H5Dataset d;
  d.file_ = file_;
  d.path_ = child_path(name);
  d.shape_ = shape;
  CALDERA_CHECK(!shape.empty(), d.describe(), ": rank-0 datasets are not supported (use an attribute)");
  for (int64_t s : shape) CALDERA_CHECK(s >= 0, d.describe(), ": negative dimension in ", shape_to_string(shape));
  const std::string where = d.describe();
  std::vector<hsize_t> dims(shape.begin(), shape.end());
  H5Id space(check_id(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), where, "H5Screate_simple"));
  H5Id dcpl(check_id(H5Pcreate(H5P_DATASET_CREATE), where, "H5Pcreate(dataset create)"));
  if (product(shape) > 0) {
    const int64_t row_bytes = product(shape, 1) * static_cast<int64_t>(sizeof(T));
    std::vector<hsize_t> chunk(dims);
    chunk[0] = static_cast<hsize_t>(std::clamp<int64_t>(kTargetChunkBytes / std::max<int64_t>(row_bytes, 1), 1, shape[0]));
    CALDERA_CHECK(static_cast<int64_t>(chunk[0]) * row_bytes < (int64_t{1} << 32), where,
                  ": a row of ", row_bytes, " bytes exceeds HDF5's 4 GiB chunk limit");
    check(H5Pset_chunk(dcpl.get(), static_cast<int>(chunk.size()), chunk.data()), where, "H5Pset_chunk");
    check(H5Pset_fletcher32(dcpl.get()), where, "H5Pset_fletcher32");
  }
  const std::string n(name);
  d.id_ = H5Id(check_id(H5Dcreate2(id_.get(), n.c_str(), file_type<T>(), space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT),
                        where, "H5Dcreate2"));
  return d;
}

template <H5Element T>
void H5Group::write_dataset(std::string_view name, std::span<const T> data, const std::vector<int64_t>& shape) const {
  create_dataset<T>(name, shape).template write<T>(data);
}

H5Dataset H5Group::open_dataset(std::string_view name) const {
  ErrorPrintingGuard quiet;
  H5Dataset d;
  d.file_ = file_;
  d.path_ = child_path(name);
  if (!contains(name)) raise<IoError>(d.describe(), ": missing");
  const std::string n(name);
  d.id_ = H5Id(check_id(H5Dopen2(id_.get(), n.c_str(), H5P_DEFAULT), d.describe(), "H5Dopen2 (not a dataset?)"));
  H5Id space(check_id(H5Dget_space(d.id_.get()), d.describe(), "H5Dget_space"));
  d.shape_ = dataspace_shape(space.get(), d.describe());
  if (d.shape_.empty()) raise<IoError>(d.describe(), ": scalar datasets are not supported; expected rank >= 1");
  return d;
}

template <H5Element T>
std::vector<T> H5Group::read_dataset(std::string_view name, const std::vector<int64_t>& expected_shape) const {
  const H5Dataset d = open_dataset(name);
  if (d.shape() != expected_shape)
    raise<IoError>(d.describe(), ": shape ", shape_to_string(d.shape()), ", expected ", shape_to_string(expected_shape));
  return d.read<T>();
}

namespace {

H5Id open_attribute(hid_t obj, std::string_view name, const std::string& where) {
  const std::string n(name);
  const htri_t exists = H5Aexists(obj, n.c_str());
  if (exists < 0) fail(where, "H5Aexists");
  if (exists == 0) raise<IoError>(where, ": attribute '", n, "' is missing");
  return H5Id(check_id(H5Aopen(obj, n.c_str(), H5P_DEFAULT), where, "H5Aopen"));
}

void write_attribute(hid_t obj, std::string_view name, hid_t type, const void* value, const std::string& where) {
  const std::string n(name);
  const htri_t exists = H5Aexists(obj, n.c_str());
  if (exists < 0) fail(where, "H5Aexists");
  if (exists > 0) check(H5Adelete(obj, n.c_str()), where, "H5Adelete");
  H5Id space(check_id(H5Screate(H5S_SCALAR), where, "H5Screate"));
  H5Id attr(check_id(H5Acreate2(obj, n.c_str(), type, space.get(), H5P_DEFAULT, H5P_DEFAULT), where, "H5Acreate2"));
  check(H5Awrite(attr.get(), type, value), where, "H5Awrite");
}

H5Id utf8_string_type(const std::string& where, std::size_t size) {
  H5Id t(check_id(H5Tcopy(H5T_C_S1), where, "H5Tcopy"));
  check(H5Tset_size(t.get(), size), where, "H5Tset_size");
  check(H5Tset_cset(t.get(), H5T_CSET_UTF8), where, "H5Tset_cset");
  return t;
}

}  // namespace

void H5Group::set_attribute(std::string_view name, int64_t value) const {
  ErrorPrintingGuard quiet;
  write_attribute(id_.get(), name, H5T_NATIVE_INT64, &value, describe() + ", attribute '" + std::string(name) + "'");
}

void H5Group::set_attribute(std::string_view name, double value) const {
  ErrorPrintingGuard quiet;
  write_attribute(id_.get(), name, H5T_NATIVE_DOUBLE, &value, describe() + ", attribute '" + std::string(name) + "'");
}

void H5Group::set_attribute(std::string_view name, std::string_view value) const {
  ErrorPrintingGuard quiet;
  const std::string where = describe() + ", attribute '" + std::string(name) + "'";
  const std::string copy(value);
  const char* ptr = copy.c_str();
  H5Id type = utf8_string_type(where, H5T_VARIABLE);
  write_attribute(id_.get(), name, type.get(), &ptr, where);
}

bool H5Group::has_attribute(std::string_view name) const {
  ErrorPrintingGuard quiet;
  const std::string n(name);
  const htri_t r = H5Aexists(id_.get(), n.c_str());
  if (r < 0) fail(describe(), "H5Aexists");
  return r > 0;
}

int64_t H5Group::attribute_int64(std::string_view name) const {
  ErrorPrintingGuard quiet;
  const std::string where = describe() + ", attribute '" + std::string(name) + "'";
  H5Id attr = open_attribute(id_.get(), name, describe());
  H5Id type(check_id(H5Aget_type(attr.get()), where, "H5Aget_type"));
  if (H5Tget_class(type.get()) != H5T_INTEGER)
    raise<IoError>(where, ": stored as ", describe_type(type.get()), ", expected an integer");
  int64_t v = 0;
  check(H5Aread(attr.get(), H5T_NATIVE_INT64, &v), where, "H5Aread");
  return v;
}

double H5Group::attribute_double(std::string_view name) const {
  ErrorPrintingGuard quiet;
  const std::string where = describe() + ", attribute '" + std::string(name) + "'";
  H5Id attr = open_attribute(id_.get(), name, describe());
  H5Id type(check_id(H5Aget_type(attr.get()), where, "H5Aget_type"));
  if (H5Tget_class(type.get()) != H5T_FLOAT)
    raise<IoError>(where, ": stored as ", describe_type(type.get()), ", expected a float");
  double v = 0;
  check(H5Aread(attr.get(), H5T_NATIVE_DOUBLE, &v), where, "H5Aread");
  return v;
}

std::string H5Group::attribute_string(std::string_view name) const {
  ErrorPrintingGuard quiet;
  const std::string where = describe() + ", attribute '" + std::string(name) + "'";
  H5Id attr = open_attribute(id_.get(), name, describe());
  H5Id type(check_id(H5Aget_type(attr.get()), where, "H5Aget_type"));
  if (H5Tget_class(type.get()) != H5T_STRING)
    raise<IoError>(where, ": stored as ", describe_type(type.get()), ", expected a string");
  const htri_t variable = H5Tis_variable_str(type.get());
  if (variable < 0) fail(where, "H5Tis_variable_str");
  if (variable > 0) {
    H5Id mem = utf8_string_type(where, H5T_VARIABLE);
    char* p = nullptr;
    check(H5Aread(attr.get(), mem.get(), &p), where, "H5Aread");
    std::string s = p ? p : "";
    H5free_memory(p);
    return s;
  }
  const std::size_t size = H5Tget_size(type.get());
  std::string s(size, '\0');
  H5Id mem = utf8_string_type(where, size);
  check(H5Tset_strpad(mem.get(), H5T_STR_NULLPAD), where, "H5Tset_strpad");
  check(H5Aread(attr.get(), mem.get(), s.data()), where, "H5Aread");
  s.resize(std::strlen(s.c_str()));
  return s;
}

// ---------------------------------------------------------------------------------------------
// H5File

H5File H5File::create(const std::filesystem::path& path) {
  ErrorPrintingGuard quiet;
  const std::string where = "HDF5 file '" + path.string() + "'";
  H5Id fapl = file_access_plist(where);
  H5File f;
  f.file_ = path;
  f.path_ = "/";
  f.id_ = H5Id(check_id(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get()), where, "H5Fcreate"));
  return f;
}

H5File H5File::open(const std::filesystem::path& path, FileMode mode) {
  ErrorPrintingGuard quiet;
  const std::string where = "HDF5 file '" + path.string() + "'";
  if (!std::filesystem::is_regular_file(path)) raise<IoError>(where, " does not exist");
  H5Id fapl = file_access_plist(where);
  H5File f;
  f.file_ = path;
  f.path_ = "/";
  f.id_ = H5Id(check_id(H5Fopen(path.c_str(), mode == FileMode::kReadOnly ? H5F_ACC_RDONLY : H5F_ACC_RDWR, fapl.get()),
                        where, "H5Fopen (not an HDF5 file, or corrupt)"));
  return f;
}

void H5File::flush() const {
  ErrorPrintingGuard quiet;
  check(H5Fflush(id_.get(), H5F_SCOPE_GLOBAL), "HDF5 file '" + file_.string() + "'", "H5Fflush");
}

void H5File::close() {
  if (!id_.valid()) return;
  ErrorPrintingGuard quiet;
  check(H5Fclose(id_.release()), "HDF5 file '" + file_.string() + "'", "H5Fclose");
}

std::vector<std::string> H5Group::member_names() const {
  ErrorPrintingGuard quiet;
  H5G_info_t info{};
  check(H5Gget_info(id_.get(), &info), describe(), "H5Gget_info");
  std::vector<std::string> names;
  names.reserve(static_cast<std::size_t>(info.nlinks));
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    const ssize_t len = H5Lget_name_by_idx(id_.get(), ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
    if (len < 0) fail(describe(), "H5Lget_name_by_idx");
    std::string name(static_cast<std::size_t>(len) + 1, '\0');
    if (H5Lget_name_by_idx(id_.get(), ".", H5_INDEX_NAME, H5_ITER_INC, i, name.data(), name.size(), H5P_DEFAULT) < 0)
      fail(describe(), "H5Lget_name_by_idx");
    name.resize(static_cast<std::size_t>(len));
    names.push_back(std::move(name));
  }
  return names;
}

// ---------------------------------------------------------------------------------------------
// Verification

namespace {

void verify_group(hid_t group, const std::string& group_path, const std::filesystem::path& file) {
  const std::string where = "HDF5 file '" + file.string() + "', group '" + group_path + "'";
  H5G_info_t info{};
  check(H5Gget_info(group, &info), where, "H5Gget_info");
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    const ssize_t len = H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
    if (len < 0) fail(where, "H5Lget_name_by_idx");
    std::string name(static_cast<std::size_t>(len) + 1, '\0');
    if (H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, name.data(), name.size(), H5P_DEFAULT) < 0)
      fail(where, "H5Lget_name_by_idx");
    name.resize(static_cast<std::size_t>(len));
    const std::string child = group_path == "/" ? "/" + name : group_path + "/" + name;
    const std::string cwhere = "HDF5 file '" + file.string() + "', object '" + child + "'";
    H5Id obj(check_id(H5Oopen(group, name.c_str(), H5P_DEFAULT), cwhere, "H5Oopen"));
    const H5I_type_t type = H5Iget_type(obj.get());
    if (type == H5I_GROUP) {
      verify_group(obj.get(), child, file);
      continue;
    }
    if (type != H5I_DATASET) continue;  // named datatypes carry no data
    H5Id dtype(check_id(H5Dget_type(obj.get()), cwhere, "H5Dget_type"));
    const H5T_class_t cls = H5Tget_class(dtype.get());
    if (cls == H5T_VLEN || (cls == H5T_STRING && H5Tis_variable_str(dtype.get()) > 0))
      raise<IoError>(cwhere, ": variable-length datasets cannot be verified (this project never writes them)");
    H5Id mem(check_id(H5Tget_native_type(dtype.get(), H5T_DIR_ASCEND), cwhere, "H5Tget_native_type"));
    const auto esize = static_cast<int64_t>(H5Tget_size(mem.get()));
    H5Id space(check_id(H5Dget_space(obj.get()), cwhere, "H5Dget_space"));
    const std::vector<int64_t> shape = dataspace_shape(space.get(), cwhere);
    std::vector<std::byte> buf;
    if (shape.empty()) {  // scalar dataset
      buf.resize(static_cast<std::size_t>(esize));
      check(H5Dread(obj.get(), mem.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data()), cwhere, "H5Dread");
      continue;
    }
    const int64_t row_bytes = std::max<int64_t>(product(shape, 1) * esize, 1);
    const int64_t rows_per_slab = std::max<int64_t>(kVerifySlabBytes / row_bytes, 1);
    for (int64_t first = 0; first < shape[0]; first += rows_per_slab) {
      const int64_t count = std::min(rows_per_slab, shape[0] - first);
      buf.resize(static_cast<std::size_t>(count * product(shape, 1) * esize));
      transfer_slab(obj.get(), mem.get(), shape, first, count, buf.data(), /*write=*/false, cwhere);
    }
  }
}

}  // namespace

void verify_h5_file(const std::filesystem::path& path, std::string_view expected_sha256) {
  if (!std::filesystem::is_regular_file(path)) raise<IoError>("HDF5 file '", path.string(), "' does not exist");
  if (!expected_sha256.empty()) {
    const std::string actual = sha256_file(path);
    if (actual != expected_sha256)
      raise<IoError>("HDF5 file '", path.string(), "' has SHA-256 ", actual, ", expected ", expected_sha256,
                     " (modified or corrupt)");
  }
  H5File f = H5File::open(path);
  ErrorPrintingGuard quiet;
  H5Id root(check_id(H5Gopen2(f.id_.get(), "/", H5P_DEFAULT), "HDF5 file '" + path.string() + "'", "H5Gopen2(/)"));
  verify_group(root.get(), "/", path);
}

// Explicit instantiations for the supported element types.
#define CALDERA_H5_INSTANTIATE(T)                                                                         \
  template void H5Dataset::write<T>(std::span<const T>) const;                                            \
  template void H5Dataset::read<T>(std::span<T>) const;                                                   \
  template std::vector<T> H5Dataset::read<T>() const;                                                     \
  template void H5Dataset::write_slab<T>(int64_t, int64_t, std::span<const T>) const;                     \
  template void H5Dataset::read_slab<T>(int64_t, int64_t, std::span<T>) const;                            \
  template H5Dataset H5Group::create_dataset<T>(std::string_view, const std::vector<int64_t>&) const;      \
  template void H5Group::write_dataset<T>(std::string_view, std::span<const T>, const std::vector<int64_t>&) const; \
  template std::vector<T> H5Group::read_dataset<T>(std::string_view, const std::vector<int64_t>&) const;
CALDERA_H5_INSTANTIATE(double)
CALDERA_H5_INSTANTIATE(float)
CALDERA_H5_INSTANTIATE(int64_t)
CALDERA_H5_INSTANTIATE(int32_t)
CALDERA_H5_INSTANTIATE(uint16_t)
CALDERA_H5_INSTANTIATE(uint8_t)
#undef CALDERA_H5_INSTANTIATE

}  // namespace caldera::io::h5
