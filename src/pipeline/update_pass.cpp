#include "pipeline/update_pass.h"

#include "core/error.h"
#include "core/log.h"
#include "core/timer.h"
#include "pipeline/compress_phase.h"
#include "pipeline/task_file.h"
#include "pipeline/units.h"

namespace caldera::pipeline {
namespace {

/// The units of `layer`, in LinearKind order.
std::vector<Unit> layer_units(const model::LlamaConfig& config, int64_t layer) {
  std::vector<Unit> out;
  for (Unit& u : enumerate_units(config))
    if (u.id.layer == layer) out.push_back(std::move(u));
  return out;
}

/// The finished unit at `path` or an Error naming it and the step that should have produced it.
algo::CompressedUnit require_unit(const std::filesystem::path& path, const TaskIdentity& identity, const char* step) {
  auto unit = load_task_file(path, identity);
  if (!unit)
    raise<Error>("update pass: unit ", identity.unit, " is not finished (", path.string(),
                 " is missing or does not verify); ", step);
  return std::move(*unit);
}

}  // namespace

UpdatedModelSource::UpdatedModelSource(const HfWeightSource& original, const Workdir& workdir,
                                       const algo::Method& method, uint64_t seed, linalg::Backend& backend)
    : original_(original), workdir_(workdir), method_(method), seed_(seed), backend_(backend) {}

model::LayerHostWeights UpdatedModelSource::load_layer(int64_t layer) const {
  model::LayerHostWeights w = original_.load_layer_without_linears(layer);
  for (const Unit& u : layer_units(config(), layer)) {
    const algo::CompressedUnit unit = require_unit(workdir_.update_task_file(u.id.name()),
                                                   unit_task_identity(u, method_, seed_), "it is refitted first");
    w[u.kind] = method_.reconstruct(backend_, unit.tensors);
  }
  model::check_layer_shapes(config(), layer, w);
  return w;
}

int64_t refit_layer_units(comm::Communicator& world, linalg::Backend& backend, const io::HfModel& model,
                          const Workdir& workdir, const algo::Method& method, uint64_t seed, int64_t layer,
                          const io::HessianFileMeta& meta) {
  world.barrier();  // the writer rank has published the layer's statistics
  InputStatsCache stats(workdir.update_dir(), meta, "the update pass", "its own statistics pass");
  const std::vector<Unit> units = layer_units(model.config(), layer);
  int64_t refitted = 0;
  for (size_t i = 0; i < units.size(); ++i) {
    if (static_cast<int>(i % static_cast<size_t>(world.size())) != world.rank()) continue;
    const Unit& u = units[i];
    const TaskIdentity identity = unit_task_identity(u, method, seed);
    const std::filesystem::path out = workdir.update_task_file(u.id.name());
    if (load_task_file(out, identity)) continue;
    Stopwatch watch;
    const algo::CompressedUnit compressed =
        require_unit(workdir.task_file(u.id.name()), identity, "phase 2 (compress) must finish first");
    const HostMatrix<float> w = model.read_linear(u.id.layer, u.kind);
    const algo::CompressedUnit updated =
        method.update(backend, u.id, w.view(), compressed, stats.get(u.id.layer, model::hessian_input(u.kind)));
    std::filesystem::create_directories(out.parent_path());
    write_task_file(out, identity, updated);
    ++refitted;
    double before = -1, after = -1;
    for (const auto& [k, v] : updated.metrics.extra) {
      if (k == "update_output_error_before") before = v;
      if (k == "update_output_error_after") after = v;
    }
    if (before >= 0)
      log_info("update: ", u.id.name(), " refitted: relative output error on the compressed model's inputs ", before,
               " -> ", after, " (", watch.elapsed_s(), " s)");
    else
      log_info("update: ", u.id.name(), " unchanged (kept dense or not refittable)");
  }
  world.barrier();  // every unit of the layer is published before the activations move on
  return refitted;
}

}  // namespace caldera::pipeline
