// The units of phase 2: one per linear matrix of every decoder layer (DESIGN §2).
#pragma once

#include <vector>

#include "algo/method.h"
#include "model/llama_config.h"

namespace caldera::pipeline {

struct Unit {
  algo::UnitId id;
  model::LinearKind kind = model::LinearKind::kQ;
  model::LinearShape shape;  ///< (out, in) = (rows, cols) of W
};

/// Every (layer, linear) of the model, in layer-major order q, k, v, o, gate, up, down.
std::vector<Unit> enumerate_units(const model::LlamaConfig& config);

/// HF tensor-name prefix of a unit: "model.layers.<l>.<module>".
std::string unit_tensor_prefix(const Unit& unit);

}  // namespace caldera::pipeline
