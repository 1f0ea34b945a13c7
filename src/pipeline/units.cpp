#include "pipeline/units.h"

namespace caldera::pipeline {

std::vector<Unit> enumerate_units(const model::LlamaConfig& config) {
  std::vector<Unit> units;
  for (int64_t layer = 0; layer < config.num_hidden_layers; ++layer) {
    for (model::LinearKind kind : model::kAllLinearKinds) {
      Unit u;
      u.kind = kind;
      u.id.layer = static_cast<int>(layer);
      u.id.matrix = std::string(model::hf_module_name(kind));
      u.id.matrix_index = static_cast<int>(kind);
      u.shape = config.linear_shape(kind);
      units.push_back(std::move(u));
    }
  }
  return units;
}

std::string unit_tensor_prefix(const Unit& unit) {
  return "model.layers." + std::to_string(unit.id.layer) + "." + unit.id.matrix;
}

}  // namespace caldera::pipeline
