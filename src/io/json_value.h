// JsonValue: the project's JSON document type (run.json, logs, summaries, HF config files).
// nlohmann-json stays behind this facade, inside src/io (DESIGN §5). Objects keep insertion order,
// so documents written from the same values are byte-identical.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace caldera::io {

class JsonValue {
 public:
  using Array = std::vector<JsonValue>;
  using Object = std::vector<std::pair<std::string, JsonValue>>;

  JsonValue() = default;  // null
  JsonValue(std::nullptr_t) {}
  JsonValue(bool b) : v_(b) {}
  JsonValue(int v) : v_(static_cast<int64_t>(v)) {}
  JsonValue(int64_t v) : v_(v) {}
  JsonValue(uint64_t v) : v_(static_cast<int64_t>(v)) {}
  JsonValue(double v) : v_(v) {}
  JsonValue(const char* s) : v_(std::string(s)) {}
  JsonValue(std::string s) : v_(std::move(s)) {}
  JsonValue(std::string_view s) : v_(std::string(s)) {}
  JsonValue(Array a) : v_(std::move(a)) {}

  static JsonValue object() { JsonValue j; j.v_ = Object{}; return j; }
  static JsonValue array() { JsonValue j; j.v_ = Array{}; return j; }

  bool is_null() const { return std::holds_alternative<std::monostate>(v_); }
  bool is_bool() const { return std::holds_alternative<bool>(v_); }
  bool is_int() const { return std::holds_alternative<int64_t>(v_); }
  bool is_double() const { return std::holds_alternative<double>(v_); }
  bool is_number() const { return is_int() || is_double(); }
  bool is_string() const { return std::holds_alternative<std::string>(v_); }
  bool is_array() const { return std::holds_alternative<Array>(v_); }
  bool is_object() const { return std::holds_alternative<Object>(v_); }

  /// Typed accessors; throw caldera::Error naming the expected type when the value has another.
  bool as_bool() const;
  int64_t as_int() const;      ///< also accepts a double with an integral value
  double as_double() const;    ///< also accepts an int
  const std::string& as_string() const;
  const Array& as_array() const;
  Array& as_array();
  const Object& as_object() const;

  /// Object access. set() replaces an existing key in place or appends a new one.
  JsonValue& set(std::string key, JsonValue value);
  bool contains(std::string_view key) const;
  /// The member `key`; throws caldera::Error naming the key when absent.
  const JsonValue& at(std::string_view key) const;
  /// The member `key`, or nullptr.
  const JsonValue* find(std::string_view key) const;
  /// Array append.
  JsonValue& push_back(JsonValue value);
  size_t size() const;

  /// Serialises; indent < 0 gives one line. Doubles use the shortest round-trip form.
  std::string dump(int indent = -1) const;
  /// Parses text; throws IoError with the position on malformed input (`source` names the origin).
  static JsonValue parse(std::string_view text, std::string_view source = "<string>");
  /// Reads and parses a file; throws IoError naming the file.
  static JsonValue read_file(const std::filesystem::path& path);

  friend bool operator==(const JsonValue& a, const JsonValue& b) { return a.v_ == b.v_; }

 private:
  std::variant<std::monostate, bool, int64_t, double, std::string, Array, Object> v_;
};

}  // namespace caldera::io
