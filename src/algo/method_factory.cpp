#include "algo/method_factory.h"

#include "core/error.h"

namespace caldera::algo {

std::string_view to_string(MethodKind kind) noexcept {
  switch (kind) {
    case MethodKind::kCaldera: return "caldera";
    case MethodKind::kQuip: return "quip";
    case MethodKind::kRtn: return "rtn";
  }
  return "?";
}

MethodKind parse_method_kind(std::string_view text) {
  for (MethodKind k : {MethodKind::kCaldera, MethodKind::kQuip, MethodKind::kRtn})
    if (text == to_string(k)) return k;
  raise<ConfigError>("--method: expected caldera, quip or rtn, got '", text, "'");
}

MethodConfig MethodConfig::defaults(MethodKind kind) {
  MethodConfig c;
  c.method = kind;
  if (kind == MethodKind::kQuip) c.caldera = CalderaParams::quip_sharp();
  return c;
}

std::vector<std::string> MethodConfig::problems() const {
  switch (method) {
    case MethodKind::kCaldera: return caldera.problems();
    case MethodKind::kQuip: {
      auto p = caldera.problems();
      if (caldera.rank != 0) p.push_back(caldera::detail::concat("--rank must be 0 for --method quip, got ", caldera.rank));
      return p;
    }
    case MethodKind::kRtn: return rtn.problems();
  }
  return {"--method: unknown method"};
}

void MethodConfig::validate() const {
  const auto p = problems();
  if (p.empty()) return;
  std::string msg = "invalid configuration for --method ";
  msg += to_string(method);
  msg += ":";
  for (const auto& s : p) msg += "\n  " + s;
  throw ConfigError(msg);
}

std::unique_ptr<Method> make_method(const MethodConfig& config) {
  config.validate();
  switch (config.method) {
    case MethodKind::kCaldera: return std::make_unique<CalderaMethod>(config.caldera, "caldera");
    case MethodKind::kQuip: return std::make_unique<CalderaMethod>(config.caldera, "quip");
    case MethodKind::kRtn: return std::make_unique<RtnMethod>(config.rtn);
  }
  raise<ConfigError>("--method: unknown method");
}

}  // namespace caldera::algo
