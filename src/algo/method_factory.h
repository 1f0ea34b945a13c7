// Creating methods from typed configuration (style C9): the pipeline parses the command line and
// INI presets into a MethodConfig (option names are in each field's documentation), validates it
// once, and asks make_method() for the Method it runs on every unit.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "algo/caldera.h"
#include "algo/gptq.h"
#include "algo/method.h"
#include "algo/rtn.h"
#include "algo/spqr.h"

namespace caldera::algo {

/// [--method] which compression method runs.
enum class MethodKind : uint8_t {
  kCaldera,  ///< CALDERA (CalderaParams; paper recipe by default)
  kQuip,     ///< QuIP#: CalderaParams with rank 0 (start from CalderaParams::quip_sharp())
  kRtn,      ///< round-to-nearest baseline (RtnParams)
  kGptq,     ///< GPTQ baseline (GptqParams)
  kSpqr,     ///< SpQR (SpqrParams)
};
std::string_view to_string(MethodKind kind) noexcept;
/// "caldera" | "quip" | "rtn" | "gptq" | "spqr"; throws ConfigError naming --method and the accepted values.
[[nodiscard]] MethodKind parse_method_kind(std::string_view text);

/// Everything a method needs besides its inputs. The pipeline keys MethodContext::rng as
/// Rng(seed).stream({layer, matrix_index}) with seed = [--seed].
struct MethodConfig {
  MethodKind method = MethodKind::kCaldera;  ///< [--method caldera|quip|rtn|gptq|spqr]
  CalderaParams caldera;                     ///< used by caldera and quip
  RtnParams rtn;                             ///< used by rtn
  GptqParams gptq;                           ///< used by gptq
  SpqrParams spqr;                           ///< used by spqr

  /// Default configuration of `kind` (quip: CalderaParams::quip_sharp()).
  [[nodiscard]] static MethodConfig defaults(MethodKind kind);
  /// Every problem of the selected method's parameters, one message each naming the option
  /// (empty when valid). quip additionally requires --rank 0.
  [[nodiscard]] std::vector<std::string> problems() const;
  /// Throws ConfigError listing every problem at once.
  void validate() const;
};

/// Long names (without dashes) of every method option apply_method_option() accepts, with a
/// one-line description each: what the CLI registers for `compress` / `run` and presets may set.
[[nodiscard]] std::vector<std::pair<std::string, std::string>> method_option_names();

/// Sets the field of `config` that option `key` (a name from method_option_names(), e.g. "rank",
/// "bits-lr", "factor-scales") names, parsing `value`. "method" switches the method and resets the
/// parameters to that method's defaults, so apply it first. Throws ConfigError naming the option and
/// the accepted values when the key is unknown or the value does not parse. Range checks are left to
/// validate() so that every problem is reported at once.
void apply_method_option(MethodConfig& config, std::string_view key, std::string_view value);

/// The Method for `config` (validated first; throws ConfigError listing all problems).
[[nodiscard]] std::unique_ptr<Method> make_method(const MethodConfig& config);

}  // namespace caldera::algo
