#include "io/json_value.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"

namespace caldera::io {
namespace {

using Ordered = nlohmann::ordered_json;

Ordered to_nlohmann(const JsonValue& j) {
  if (j.is_null()) return nullptr;
  if (j.is_bool()) return j.as_bool();
  if (j.is_int()) return j.as_int();
  if (j.is_double()) return j.as_double();
  if (j.is_string()) return j.as_string();
  if (j.is_array()) {
    Ordered a = Ordered::array();
    for (const auto& e : j.as_array()) a.push_back(to_nlohmann(e));
    return a;
  }
  Ordered o = Ordered::object();
  for (const auto& [k, v] : j.as_object()) o[k] = to_nlohmann(v);
  return o;
}

JsonValue from_nlohmann(const Ordered& n) {
  switch (n.type()) {
    case Ordered::value_t::null: return JsonValue();
    case Ordered::value_t::boolean: return JsonValue(n.get<bool>());
    case Ordered::value_t::number_integer: return JsonValue(n.get<int64_t>());
    case Ordered::value_t::number_unsigned: return JsonValue(static_cast<int64_t>(n.get<uint64_t>()));
    case Ordered::value_t::number_float: return JsonValue(n.get<double>());
    case Ordered::value_t::string: return JsonValue(n.get<std::string>());
    case Ordered::value_t::array: {
      JsonValue a = JsonValue::array();
      for (const auto& e : n) a.push_back(from_nlohmann(e));
      return a;
    }
    case Ordered::value_t::object: {
      JsonValue o = JsonValue::object();
      for (auto it = n.begin(); it != n.end(); ++it) o.set(it.key(), from_nlohmann(it.value()));
      return o;
    }
    default: raise<IoError>("json: unsupported value type");
  }
}

const char* type_name(const JsonValue& j) {
  if (j.is_null()) return "null";
  if (j.is_bool()) return "boolean";
  if (j.is_number()) return "number";
  if (j.is_string()) return "string";
  if (j.is_array()) return "array";
  return "object";
}

}  // namespace

bool JsonValue::as_bool() const {
  if (!is_bool()) raise<Error>("json: expected a boolean, found ", type_name(*this));
  return std::get<bool>(v_);
}
int64_t JsonValue::as_int() const {
  if (is_int()) return std::get<int64_t>(v_);
  if (is_double()) {
    const double d = std::get<double>(v_);
    if (static_cast<double>(static_cast<int64_t>(d)) == d) return static_cast<int64_t>(d);
  }
  raise<Error>("json: expected an integer, found ", is_double() ? "a fractional number" : type_name(*this));
}
double JsonValue::as_double() const {
  if (is_double()) return std::get<double>(v_);
  if (is_int()) return static_cast<double>(std::get<int64_t>(v_));
  raise<Error>("json: expected a number, found ", type_name(*this));
}
const std::string& JsonValue::as_string() const {
  if (!is_string()) raise<Error>("json: expected a string, found ", type_name(*this));
  return std::get<std::string>(v_);
}
const JsonValue::Array& JsonValue::as_array() const {
  if (!is_array()) raise<Error>("json: expected an array, found ", type_name(*this));
  return std::get<Array>(v_);
}
JsonValue::Array& JsonValue::as_array() {
  if (!is_array()) raise<Error>("json: expected an array, found ", type_name(*this));
  return std::get<Array>(v_);
}
const JsonValue::Object& JsonValue::as_object() const {
  if (!is_object()) raise<Error>("json: expected an object, found ", type_name(*this));
  return std::get<Object>(v_);
}

JsonValue& JsonValue::set(std::string key, JsonValue value) {
  if (is_null()) v_ = Object{};
  if (!is_object()) raise<Error>("json: set('", key, "') on a ", type_name(*this));
  auto& obj = std::get<Object>(v_);
  for (auto& [k, v] : obj)
    if (k == key) {
      v = std::move(value);
      return v;
    }
  obj.emplace_back(std::move(key), std::move(value));
  return obj.back().second;
}

bool JsonValue::contains(std::string_view key) const { return find(key) != nullptr; }

const JsonValue* JsonValue::find(std::string_view key) const {
  if (!is_object()) return nullptr;
  for (const auto& [k, v] : std::get<Object>(v_))
    if (k == key) return &v;
  return nullptr;
}

const JsonValue& JsonValue::at(std::string_view key) const {
  const JsonValue* v = find(key);
  if (v == nullptr) raise<Error>("json: key '", key, "' is missing");
  return *v;
}

JsonValue& JsonValue::push_back(JsonValue value) {
  if (is_null()) v_ = Array{};
  if (!is_array()) raise<Error>("json: push_back on a ", type_name(*this));
  auto& arr = std::get<Array>(v_);
  arr.push_back(std::move(value));
  return arr.back();
}

size_t JsonValue::size() const {
  if (is_array()) return std::get<Array>(v_).size();
  if (is_object()) return std::get<Object>(v_).size();
  return 0;
}

std::string JsonValue::dump(int indent) const { return to_nlohmann(*this).dump(indent); }

JsonValue JsonValue::parse(std::string_view text, std::string_view source) {
  try {
    return from_nlohmann(Ordered::parse(text.begin(), text.end()));
  } catch (const nlohmann::json::parse_error& e) {
    raise<IoError>(source, ": malformed JSON at byte ", e.byte, ": ", e.what());
  }
}

JsonValue JsonValue::read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) raise<IoError>(path.string(), ": cannot open for reading");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) raise<IoError>(path.string(), ": read error");
  return parse(ss.str(), path.string());
}

}  // namespace caldera::io
