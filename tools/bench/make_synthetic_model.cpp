// make_synthetic_model: writes a Hugging Face Llama model directory with SYNTHETIC random weights,
// for benchmarks at shapes whose real checkpoints are not available (e.g. Llama-2-7B).
//
// Contract:
// - Output: DIR/config.json (model_type llama, silu, rope_theta 10000, rms_norm_eps 1e-5, no biases,
//   untied embeddings, bos 1 / eos 2, torch_dtype bfloat16) and DIR/model.safetensors (every tensor
//   of model::expected_tensors, BF16, metadata {"format": "pt"}), each published atomically. The
//   directory is re-opened with io::HfModel::open before exiting 0, so it loads with
//   `caldera-dist run --model DIR`.
// - Weights: model::SyntheticWeightSource(config, seed), rounded to bf16: linears (out, in) ~
//   N(0, 1/in) (std 0.0156 at hidden 4096, 0.0095 for down_proj at 11008), norms 1 + 0.1·N(0, 1),
//   embedding N(0, 1), lm_head N(0, 1/hidden). Activations stay O(1) through the layers, so the
//   forward pass does not overflow. Deterministic: the same options give byte-identical files.
//   NOT a trained model: independent normals, no structure, perplexity is meaningless.
// - Memory: tensors are produced while the file is written (one layer in fp32 at a time, plus the
//   current tensor's bf16 bytes), not the whole model.
// - Refuses a non-empty DIR unless --force (which replaces config.json and model.safetensors only).
// - No Boost: argv is parsed by hand (the GPU machine lacks Boost.Program_options).
//
// Usage: make_synthetic_model --out DIR [--hidden 256] [--intermediate 704] [--layers 2]
//          [--heads 4] [--kv-heads HEADS] [--vocab 32000] [--seed 2024] [--max-position 4096]
//          [--llama-2-7b-layers N] [--force]
//   --llama-2-7b-layers N: hidden 4096, intermediate 11008, heads 32, kv-heads 32, vocab 32000 and
//   N layers (options given after it override these).
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>

#include "core/dtype.h"
#include "core/error.h"
#include "io/atomic_file.h"
#include "io/hf_model.h"
#include "io/json_value.h"
#include "io/safetensors_writer.h"
#include "model/llama_config.h"
#include "model/synthetic_weights.h"

#include "bench_common.h"

namespace {

using namespace caldera;
namespace fs = std::filesystem;

struct Options {
  std::string out;
  int64_t hidden = 256, intermediate = 704, layers = 2, heads = 4, kv_heads = 0, vocab = 32000;
  int64_t max_position = 4096;
  int64_t seed = 2024;
  bool force = false;
};

constexpr const char* kUsage =
    "usage: make_synthetic_model --out DIR [--hidden N] [--intermediate N] [--layers N] [--heads N]\n"
    "         [--kv-heads N] [--vocab N] [--seed S] [--max-position N] [--llama-2-7b-layers N] [--force]\n"
    "  see the comment at the top of tools/bench/make_synthetic_model.cpp\n";

Options parse(int argc, char** argv) {
  Options o;
  std::map<std::string, int64_t*> ints = {
      {"--hidden", &o.hidden}, {"--intermediate", &o.intermediate}, {"--layers", &o.layers},
      {"--heads", &o.heads},   {"--kv-heads", &o.kv_heads},         {"--vocab", &o.vocab},
      {"--seed", &o.seed},     {"--max-position", &o.max_position}};
  for (int i = 1; i < argc; ++i) {
    const std::string key = argv[i];
    if (key == "--help" || key == "-h") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    }
    if (key == "--force") {
      o.force = true;
      continue;
    }
    CALDERA_CHECK_AS(ConfigError, i + 1 < argc, key, ": missing value\n", kUsage);
    const std::string value = argv[++i];
    if (key == "--out") {
      o.out = value;
    } else if (key == "--llama-2-7b-layers") {
      o.layers = bench::parse_int(key, value, 1);
      o.hidden = 4096;
      o.intermediate = 11008;
      o.heads = 32;
      o.kv_heads = 32;
      o.vocab = 32000;
    } else if (auto it = ints.find(key); it != ints.end()) {
      *it->second = bench::parse_int(key, value, 0);
    } else {
      raise<ConfigError>("unknown option ", key, "\n", kUsage);
    }
  }
  CALDERA_CHECK_AS(ConfigError, !o.out.empty(), "--out DIR is required\n", kUsage);
  CALDERA_CHECK_AS(ConfigError, o.seed >= 0, "--seed must be >= 0");
  if (o.kv_heads == 0) o.kv_heads = o.heads;
  return o;
}

model::LlamaConfig make_config(const Options& o) {
  model::LlamaConfig c;
  c.model_type = model::ModelType::kLlama;
  c.hidden_size = o.hidden;
  c.intermediate_size = o.intermediate;
  c.num_hidden_layers = o.layers;
  c.num_attention_heads = o.heads;
  c.num_key_value_heads = o.kv_heads;
  c.head_dim = o.heads > 0 ? o.hidden / o.heads : 0;
  CALDERA_CHECK_AS(ConfigError, o.heads > 0 && o.hidden % o.heads == 0, "--hidden ", o.hidden,
                   " must be a multiple of --heads ", o.heads);
  c.vocab_size = o.vocab;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 10000.0;
  c.max_position_embeddings = o.max_position;
  c.bos_token_id = 1;
  c.eos_token_ids = {2};
  c.validate();  // throws ConfigError listing every problem
  return c;
}

io::JsonValue config_json(const model::LlamaConfig& c) {
  io::JsonValue j = io::JsonValue::object();
  io::JsonValue arch = io::JsonValue::array();
  arch.push_back("LlamaForCausalLM");
  j.set("architectures", arch);
  j.set("attention_bias", false);
  j.set("bos_token_id", *c.bos_token_id);
  j.set("eos_token_id", c.eos_token_ids.at(0));
  j.set("head_dim", c.head_dim);
  j.set("hidden_act", "silu");
  j.set("hidden_size", c.hidden_size);
  j.set("initializer_range", 0.02);
  j.set("intermediate_size", c.intermediate_size);
  j.set("max_position_embeddings", c.max_position_embeddings);
  j.set("mlp_bias", false);
  j.set("model_type", "llama");
  j.set("num_attention_heads", c.num_attention_heads);
  j.set("num_hidden_layers", c.num_hidden_layers);
  j.set("num_key_value_heads", c.num_key_value_heads);
  j.set("rms_norm_eps", c.rms_norm_eps);
  j.set("rope_scaling", nullptr);
  j.set("rope_theta", c.rope_theta);
  j.set("tie_word_embeddings", false);
  j.set("torch_dtype", "bfloat16");
  j.set("use_cache", true);
  j.set("vocab_size", c.vocab_size);
  return j;
}

void to_bf16(const HostMatrix<float>& m, std::span<std::byte> out) {
  CALDERA_CHECK(out.size() == static_cast<std::size_t>(m.size()) * 2, "bf16 buffer size mismatch");
  const float* p = m.data();
  auto* q = reinterpret_cast<unsigned char*>(out.data());
  for (int64_t i = 0; i < m.size(); ++i) {
    const uint16_t h = f32_to_bf16(p[i]);
    std::memcpy(q + 2 * i, &h, 2);
  }
}

/// Adds every tensor as a deferred fill, in the order the writer will call them: embedding, each
/// layer (drawn once, when its first tensor is written), final norm, lm_head.
void add_tensors(io::SafetensorsWriter& w, const std::shared_ptr<const model::SyntheticWeightSource>& src) {
  const model::LlamaConfig& c = src->config();
  auto tensor = [&](std::string name, std::vector<int64_t> shape, std::function<HostMatrix<float>()> make) {
    w.add_deferred(std::move(name), DType::kBF16, std::move(shape),
                   [make = std::move(make)](std::span<std::byte> out) { to_bf16(make(), out); });
  };
  tensor(std::string(model::kEmbeddingName), {c.vocab_size, c.hidden_size}, [src] { return src->load_embedding(); });
  struct Cache {
    int64_t layer = -1;
    model::LayerHostWeights w;
  };
  auto cache = std::make_shared<Cache>();
  auto layer_weights = [src, cache](int64_t layer) -> const model::LayerHostWeights& {
    if (cache->layer != layer) {
      cache->w = {};  // free the previous layer first
      cache->w = src->load_layer(layer);
      cache->layer = layer;
    }
    return cache->w;
  };
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    tensor(model::norm_weight_name(l, model::NormKind::kInput), {c.hidden_size},
           [=] { return layer_weights(l).input_norm; });
    for (model::LinearKind kind : model::kAllLinearKinds) {
      const model::LinearShape s = c.linear_shape(kind);
      tensor(model::linear_weight_name(l, kind), {s.out, s.in}, [=] { return layer_weights(l)[kind]; });
    }
    tensor(model::norm_weight_name(l, model::NormKind::kPostAttention), {c.hidden_size},
           [=] { return layer_weights(l).post_attention_norm; });
  }
  tensor(std::string(model::kFinalNormName), {c.hidden_size}, [src] { return src->load_final_norm(); });
  tensor(std::string(model::kLmHeadName), {c.vocab_size, c.hidden_size}, [src] { return src->load_lm_head(); });
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Options o = parse(argc, argv);
    const model::LlamaConfig config = make_config(o);
    const fs::path dir(o.out);
    std::error_code ec;
    if (fs::exists(dir, ec) && !fs::is_empty(dir, ec) && !o.force)
      raise<ConfigError>(dir.string(), ": exists and is not empty (use --force to overwrite config.json and "
                                       "model.safetensors)");
    fs::create_directories(dir, ec);
    if (ec) raise<IoError>(dir.string(), ": cannot create: ", ec.message());

    const auto t0 = std::chrono::steady_clock::now();
    const io::JsonValue cfg = config_json(config);
    io::publish_atomically(dir / "config.json", [&](const fs::path& tmp) {
      std::ofstream out(tmp, std::ios::binary);
      out << cfg.dump(2) << "\n";
      if (!out.flush()) raise<IoError>(tmp.string(), ": write failed");
    });

    auto src = std::make_shared<const model::SyntheticWeightSource>(config, static_cast<uint64_t>(o.seed));
    io::SafetensorsWriter writer;
    writer.set_metadata({{"format", "pt"}});
    add_tensors(writer, src);
    const io::PublishedFile file = writer.write(dir / "model.safetensors");
    const double write_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

    const io::HfModel check = io::HfModel::open(dir);  // config round trip + tensor names/shapes
    std::printf("make_synthetic_model: %s: %lld layers, hidden %lld, intermediate %lld, heads %lld/%lld, vocab %lld, "
                "seed %lld\n",
                dir.string().c_str(), static_cast<long long>(config.num_hidden_layers),
                static_cast<long long>(config.hidden_size), static_cast<long long>(config.intermediate_size),
                static_cast<long long>(config.num_attention_heads), static_cast<long long>(config.num_key_value_heads),
                static_cast<long long>(config.vocab_size), static_cast<long long>(o.seed));
    std::printf("  %zu tensors, %lld parameters, model.safetensors %lld bytes (%.3f GB), written in %.2f s\n",
                writer.num_tensors(), static_cast<long long>(config.num_parameters()),
                static_cast<long long>(file.size_bytes), static_cast<double>(file.size_bytes) / 1e9, write_s);
    std::printf("  sha256 %s; re-opened with HfModel: %zu tensors ok\n", file.sha256.c_str(),
                check.weights().tensor_names().size());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "make_synthetic_model: error: %s\n", e.what());
    return 1;
  }
}
