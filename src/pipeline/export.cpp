#include "pipeline/export.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "caldera/config.h"
#include "core/error.h"
#include "core/log.h"
#include "io/safetensors_writer.h"
#include "io/sha256.h"
#include "pipeline/task_file.h"
#include "pipeline/units.h"

namespace fs = std::filesystem;

namespace caldera::pipeline {
namespace {

constexpr const char* kAuxFiles[] = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                                     "tokenizer.model", "generation_config.json"};

/// A parameter value as JSON: numbers and booleans typed, everything else a string.
io::JsonValue parameter_value(const std::string& text) {
  if (text == "true") return true;
  if (text == "false") return false;
  if (!text.empty()) {
    char* end = nullptr;
    const long long i = std::strtoll(text.c_str(), &end, 10);
    if (end != nullptr && *end == '\0') return static_cast<int64_t>(i);
    const double d = std::strtod(text.c_str(), &end);
    if (end != nullptr && *end == '\0') return d;
  }
  return text;
}

/// Reads finished units one at a time, keeping the last one (the writer's fill callbacks ask for
/// the tensors of one unit consecutively).
class UnitReader {
 public:
  UnitReader(const Workdir& workdir, const algo::Method& method, uint64_t seed)
      : workdir_(workdir), method_(method), seed_(seed) {}
  const algo::CompressedUnit& get(const Unit& u) {
    if (current_ == u.id.name()) return unit_;
    // A method with an update pass exports the updated units (pipeline/update_pass.h).
    const fs::path path = method_.has_update_pass() ? workdir_.update_task_file(u.id.name())
                                                    : workdir_.task_file(u.id.name());
    auto loaded = load_task_file(path, unit_task_identity(u, method_, seed_));
    if (!loaded)
      raise<Error>("export: unit ", u.id.name(), " is not finished (", path.string(),
                   " is missing or does not verify); run `caldera-dist compress` first");
    unit_ = std::move(*loaded);
    current_ = u.id.name();
    return unit_;
  }

 private:
  const Workdir& workdir_;
  const algo::Method& method_;
  uint64_t seed_;
  std::string current_;
  algo::CompressedUnit unit_;
};

void copy_file_atomic(const fs::path& from, const fs::path& to) {
  io::publish_atomically(to, [&](const fs::path& tmp) {
    std::error_code ec;
    fs::copy_file(from, tmp, fs::copy_options::overwrite_existing, ec);
    if (ec) raise<IoError>(from.string(), ": cannot copy to ", tmp.string(), ": ", ec.message());
  });
}

void write_json_atomic(const fs::path& path, const io::JsonValue& json) {
  io::publish_atomically(path, [&](const fs::path& tmp) {
    std::ofstream out(tmp, std::ios::binary);
    out << json.dump(2) << "\n";
    if (!out.flush()) raise<IoError>(tmp.string(), ": write failed");
  });
}

/// Adds every tensor of the model that is not the weight of a compressed linear, bytes unchanged.
void add_untouched_tensors(io::SafetensorsWriter& writer, const io::HfModel& model, const std::set<std::string>& skip) {
  const io::SafetensorsSet& weights = model.weights();
  for (const std::string& name : weights.tensor_names()) {
    if (skip.count(name)) continue;
    if (name.find("rotary_emb.inv_freq") != std::string::npos) continue;
    if (name == "lm_head.weight" && model.config().tie_word_embeddings) continue;
    const io::TensorInfo& info = weights.info(name);
    writer.add_deferred(name, info.dtype, info.shape, [&weights, name](std::span<std::byte> out) {
      const auto bytes = weights.bytes(name);
      std::memcpy(out.data(), bytes.data(), out.size());
    });
  }
}

std::vector<io::PublishedFile> finish_directory(const fs::path& dir, const io::HfModel& model,
                                                const io::JsonValue& config, std::vector<io::PublishedFile> files) {
  for (const char* aux : kAuxFiles) {
    const fs::path src = model.dir() / aux;
    std::error_code ec;
    if (!fs::exists(src, ec)) continue;
    copy_file_atomic(src, dir / aux);
    files.push_back(io::PublishedFile{dir / aux, static_cast<int64_t>(fs::file_size(dir / aux)),
                                      io::sha256_file(dir / aux)});
  }
  write_json_atomic(dir / "config.json", config);
  files.push_back(io::PublishedFile{dir / "config.json", static_cast<int64_t>(fs::file_size(dir / "config.json")),
                                    io::sha256_file(dir / "config.json")});
  std::sort(files.begin(), files.end(), [](const auto& a, const auto& b) { return a.path.filename() < b.path.filename(); });
  io::JsonValue manifest = io::JsonValue::object();
  manifest.set("producer", std::string("caldera-dist ") + CALDERA_VERSION);
  io::JsonValue list = io::JsonValue::array();
  for (const auto& f : files) {
    io::JsonValue e = io::JsonValue::object();
    e.set("name", f.path.filename().string());
    e.set("size", f.size_bytes);
    e.set("sha256", f.sha256);
    list.push_back(e);
  }
  manifest.set("files", list);
  write_json_atomic(dir / "caldera_manifest.json", manifest);
  return files;
}

}  // namespace

ExportFormat parse_export_format(std::string_view text) {
  if (text == "compressed") return ExportFormat::kCompressed;
  if (text == "dense") return ExportFormat::kDense;
  if (text == "peft") return ExportFormat::kPeft;
  raise<ConfigError>("--format: expected compressed, dense or peft, got '", text, "'");
}

io::JsonValue quantization_config_json(const algo::Method& method, double avg_bits, double mean_rel_error,
                                       const CalibrationInfo& calibration) {
  io::JsonValue q = io::JsonValue::object();
  q.set("quant_method", "caldera");
  q.set("format_version", 1);
  q.set("method", method.name());
  io::JsonValue params = io::JsonValue::object();
  for (const auto& [k, v] : method.parameters()) params.set(k, parameter_value(v));
  q.set("parameters", params);
  q.set("avg_bits", avg_bits);
  q.set("mean_rel_error", mean_rel_error);
  q.set("modules_to_not_convert", io::JsonValue(io::JsonValue::Array{io::JsonValue("lm_head")}));
  io::JsonValue cal = io::JsonValue::object();
  cal.set("tokens_sha256", calibration.tokens_sha256);
  cal.set("n_sequences", calibration.n_sequences);
  cal.set("seq_len", calibration.seq_len);
  cal.set("hessian_dtype", "float64");
  q.set("calibration", cal);
  q.set("producer", std::string("caldera-dist ") + CALDERA_VERSION);
  return q;
}

algo::MethodConfig method_config_from_quantization_config(const io::JsonValue& q, const std::string& where) {
  // Method::reconstruct() rebuilds a matrix from its tensors alone, so the method's kind is all
  // that is needed; the recorded parameters are provenance.
  const io::JsonValue* method = q.find("method");
  if (method == nullptr || !method->is_string())
    raise<ConfigError>(where, ": quantization_config needs a string \"method\"");
  try {
    return algo::MethodConfig::defaults(algo::parse_method_kind(method->as_string()));
  } catch (const ConfigError& e) {
    raise<ConfigError>(where, ": quantization_config: ", e.what());
  }
}

io::JsonValue read_quantization_config(const fs::path& dir) {
  const io::JsonValue config = io::JsonValue::read_file(dir / "config.json");
  const io::JsonValue* q = config.find("quantization_config");
  return q == nullptr ? io::JsonValue() : *q;
}

ExportReport export_model(linalg::Backend& backend, const io::HfModel& model, const Workdir& workdir,
                          const algo::Method& method, const ExportOptions& options) {
  const std::vector<Unit> units = enumerate_units(model.config());
  ExportReport report;
  report.dir = options.out_dir.empty() ? workdir.output_dir() : options.out_dir;
  CALDERA_CHECK_AS(ConfigError, options.format == ExportFormat::kCompressed || !options.out_dir.empty(),
                   "export --format dense|peft needs --out DIR (the compressed model stays in <workdir>/output)");
  std::error_code ec;
  fs::create_directories(report.dir, ec);
  if (ec) raise<IoError>(report.dir.string(), ": cannot create directory: ", ec.message());

  // Summary figures from the finished units (also proves every unit is there before writing).
  UnitReader reader(workdir, method, options.seed);
  double bits = 0, weights = 0, err = 0, outliers = 0;
  for (const Unit& u : units) {
    const algo::CompressedUnit& r = reader.get(u);
    bits += r.metrics.bits;
    for (const auto& [key, value] : r.metrics.extra)
      if (key == "outliers") outliers += value;
    weights += static_cast<double>(u.shape.out) * static_cast<double>(u.shape.in);
    err += r.metrics.rel_error;
  }
  report.units = static_cast<int64_t>(units.size());
  report.avg_bits = weights > 0 ? bits / weights : 0;
  report.mean_rel_error = units.empty() ? 0 : err / static_cast<double>(units.size());
  report.outlier_rate = weights > 0 ? outliers / weights : 0;

  io::SafetensorsWriter writer;
  writer.set_metadata({{"format", "pt"}});
  io::SafetensorsWriter adapter;
  adapter.set_metadata({{"format", "pt"}});
  std::set<std::string> linear_weights;
  int64_t lora_rank = -1;
  for (const Unit& u : units) {
    const std::string prefix = unit_tensor_prefix(u);
    linear_weights.insert(prefix + ".weight");
    if (options.format == ExportFormat::kCompressed) {
      for (const auto& [name, t] : reader.get(u).tensors) {
        writer.add_deferred(prefix + "." + name, t.dtype, t.shape, [&reader, u, name](std::span<std::byte> out) {
          const Tensor& tensor = reader.get(u).tensors.at(name);
          std::memcpy(out.data(), tensor.bytes.data(), out.size());
        });
      }
      continue;
    }
    const std::vector<int64_t> shape = {u.shape.out, u.shape.in};
    if (options.format == ExportFormat::kDense) {
      writer.add_deferred(prefix + ".weight", DType::kBF16, shape, [&, u](std::span<std::byte> out) {
        const HostMatrix<float> w = method.reconstruct(backend, reader.get(u).tensors);
        for (int64_t i = 0; i < w.size(); ++i) {
          const uint16_t h = f32_to_bf16(w.data()[i]);
          std::memcpy(out.data() + 2 * i, &h, 2);
        }
      });
      continue;
    }
    // PEFT: base weight without the low-rank term, and the factors in the adapter.
    auto split = method.split_low_rank(backend, reader.get(u).tensors);
    if (!split)
      raise<ConfigError>("export --format peft: method ", method.name(), " has no low-rank term to export as LoRA");
    const int64_t r = split->lora_a.rows();
    CALDERA_CHECK_AS(ConfigError, lora_rank < 0 || lora_rank == r, "export --format peft: units have different ranks (",
                     lora_rank, " and ", r, ")");
    lora_rank = r;
    writer.add_matrix(prefix + ".weight", split->base.view(), DType::kBF16);
    adapter.add_matrix("base_model.model." + prefix + ".lora_A.weight", split->lora_a.view(), DType::kBF16);
    adapter.add_matrix("base_model.model." + prefix + ".lora_B.weight", split->lora_b.view(), DType::kBF16);
  }
  add_untouched_tensors(writer, model, linear_weights);

  const io::ShardedWrite shards = writer.write_sharded(report.dir, options.max_shard_bytes);
  std::vector<io::PublishedFile> files = shards.shards;
  files.push_back(shards.index);

  io::JsonValue config = io::JsonValue::read_file(model.dir() / "config.json");
  if (options.format == ExportFormat::kCompressed) {
    config.set("quantization_config", quantization_config_json(method, report.avg_bits, report.mean_rel_error,
                                                               options.calibration));
  } else {
    config.set("torch_dtype", "bfloat16");
    if (config.contains("dtype")) config.set("dtype", "bfloat16");
  }
  report.files = finish_directory(report.dir, model, config, files);

  if (options.format == ExportFormat::kPeft) {
    const fs::path adir = report.dir / "adapter";
    fs::create_directories(adir, ec);
    adapter.write(adir / "adapter_model.safetensors");
    io::JsonValue cfg = io::JsonValue::object();
    cfg.set("peft_type", "LORA");
    cfg.set("task_type", "CAUSAL_LM");
    cfg.set("base_model_name_or_path", report.dir.filename().string());
    cfg.set("r", lora_rank);
    cfg.set("lora_alpha", lora_rank);
    cfg.set("lora_dropout", 0.0);
    cfg.set("bias", "none");
    cfg.set("fan_in_fan_out", false);
    cfg.set("inference_mode", true);
    io::JsonValue targets = io::JsonValue::array();
    for (model::LinearKind k : model::kAllLinearKinds) targets.push_back(std::string(model::to_string(k)));
    cfg.set("target_modules", targets);
    write_json_atomic(adir / "adapter_config.json", cfg);
  }
  log_info("export: wrote ", report.dir.string(), " (", report.units, " units, ", report.avg_bits, " bits/weight)");
  return report;
}

}  // namespace caldera::pipeline
