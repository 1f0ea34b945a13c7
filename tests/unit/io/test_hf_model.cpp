// HfModel: the bundled minillama-tiny read and checked against facts obtained independently
// (Python/numpy decoding of the same files), and config/weights contradictions on small
// synthetic models.
#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "io/hf_config.h"
#include "io/hf_model.h"
#include "io_test_util.h"
#include "test_util.h"

namespace caldera::io {
namespace {

using model::LinearKind;
using model::NormKind;
using test::expect_error;

TEST(HfModel, BundledTinyModel) {
  const auto m = HfModel::open(test::tiny_model_dir());
  const auto& c = m.config();
  EXPECT_EQ(c.num_hidden_layers, 4);
  EXPECT_EQ(m.storage_dtype(), DType::kBF16);

  const auto q = m.read_linear(0, LinearKind::kQ);
  EXPECT_EQ(q.rows(), 256);
  EXPECT_EQ(q.cols(), 256);
  const auto k = m.read_linear(0, LinearKind::kK);
  ASSERT_EQ(k.rows(), 128);
  ASSERT_EQ(k.cols(), 256);
  // Values decoded independently with numpy from the bf16 bytes (tests/data/README.md fixture).
  EXPECT_EQ(k(0, 0), -0.13671875f);
  EXPECT_EQ(k(0, 1), -0.01544189453125f);
  EXPECT_EQ(k(0, 2), 0.349609375f);
  EXPECT_EQ(k(127, 255), 0.022705078125f);
  float kmax = 0;
  for (int64_t i = 0; i < k.size(); ++i) kmax = std::max(kmax, std::fabs(k.data()[i]));
  EXPECT_EQ(kmax, 1.1875f);

  const auto gate = m.read_linear(3, LinearKind::kGate);
  EXPECT_EQ(gate.rows(), 704);
  EXPECT_EQ(gate.cols(), 256);
  const auto down = m.read_linear(3, LinearKind::kDown);
  EXPECT_EQ(down.rows(), 256);
  EXPECT_EQ(down.cols(), 704);
  for (int64_t i = 0; i < down.size(); ++i) ASSERT_TRUE(std::isfinite(down.data()[i]));

  const auto norm = m.read_norm(0, NormKind::kInput);
  ASSERT_EQ(norm.rows(), 1);
  ASSERT_EQ(norm.cols(), 256);
  EXPECT_EQ(norm(0, 0), 0.2392578125f);
  EXPECT_EQ(norm(0, 1), 0.1904296875f);
  EXPECT_EQ(norm(0, 2), 0.158203125f);
  EXPECT_EQ(norm(0, 3), 0.2041015625f);
  double sum = 0;
  for (int64_t j = 0; j < 256; ++j) sum += norm(0, j);
  EXPECT_NEAR(sum, 47.87451171875, 1e-9);  // exact in double: 256 bf16 values
  const auto final_norm = m.read_final_norm();
  EXPECT_EQ(final_norm(0, 0), 1.828125f);
  EXPECT_EQ(final_norm(0, 3), 1.6328125f);

  const auto emb = m.read_embedding();
  EXPECT_EQ(emb.rows(), 4096);
  EXPECT_EQ(emb.cols(), 256);
  const auto head = m.read_lm_head();
  EXPECT_EQ(head.rows(), 4096);
  EXPECT_GT(test::rel_diff(head, emb), 0.1);  // untied: a different matrix
  EXPECT_THROW(m.read_linear(4, LinearKind::kQ), Error);
  EXPECT_THROW(m.read_linear_bias(0, LinearKind::kQ), Error);  // no biases in this model
}

TEST(HfModel, FingerprintIsStableAndLocationIndependent) {
  const auto a = HfModel::open(test::tiny_model_dir()).fingerprint();
  const auto b = fingerprint_model_dir(test::tiny_model_dir());
  EXPECT_EQ(a, b);
  ASSERT_EQ(a.files.size(), 4u);  // config.json, index, two shards
  EXPECT_EQ(a.files[0].name, "config.json");
  EXPECT_EQ(a.digest().size(), 64u);

  test::TempDir dir("fp");
  for (const auto& e : std::filesystem::directory_iterator(test::tiny_model_dir()))
    std::filesystem::copy_file(e.path(), dir / e.path().filename().string());
  EXPECT_EQ(fingerprint_model_dir(dir.path()).digest(), a.digest());
  // Any byte of config.json changes it.
  std::string cfg = test::read_text(dir / "config.json");
  cfg.replace(cfg.find("1e-05"), 5, "1e-06");
  test::write_text(dir / "config.json", cfg);
  EXPECT_NE(fingerprint_model_dir(dir.path()).digest(), a.digest());
}

/// A model directory whose shards are symlinks to the bundled tiny model and whose config.json is
/// the tiny one with `from` replaced by `to`.
void tiny_with_config_edit(const std::filesystem::path& dir, const std::string& from, const std::string& to) {
  for (const auto& e : std::filesystem::directory_iterator(test::tiny_model_dir())) {
    if (e.path().filename() == "config.json") continue;
    std::filesystem::create_symlink(e.path(), dir / e.path().filename());
  }
  std::string cfg = test::read_text(test::tiny_model_dir() / "config.json");
  const auto pos = cfg.find(from);
  ASSERT_NE(pos, std::string::npos) << from;
  cfg.replace(pos, from.size(), to);
  test::write_text(dir / "config.json", cfg);
}

TEST(HfModel, ConfigContradictingTensorShapes) {
  test::TempDir dir("contra");
  tiny_with_config_edit(dir.path(), "\"intermediate_size\": 704", "\"intermediate_size\": 700");
  expect_error<IoError>([&] { HfModel::open(dir.path()); },
                        {dir.path().string(), "model.layers.0.mlp.gate_proj.weight", "[704, 256]", "[700, 256]",
                         "model.layers.3.mlp.down_proj.weight"});
}

TEST(HfModel, ConfigWithMoreLayersThanTheWeights) {
  test::TempDir dir("layers");
  tiny_with_config_edit(dir.path(), "\"num_hidden_layers\": 4", "\"num_hidden_layers\": 5");
  expect_error<IoError>([&] { HfModel::open(dir.path()); }, {"model.layers.4.self_attn.q_proj.weight", "missing"});
}

TEST(HfModel, TiedConfigWithStoredLmHeadIsAccepted) {
  test::TempDir dir("tied");
  tiny_with_config_edit(dir.path(), "\"tie_word_embeddings\": false", "\"tie_word_embeddings\": true");
  const auto m = HfModel::open(dir.path());
  EXPECT_EQ(test::rel_diff(m.read_lm_head(), m.read_embedding()), 0.0);
}

TEST(HfModel, ConfigDeclaringBiasesTheWeightsLack) {
  test::TempDir dir("bias");
  tiny_with_config_edit(dir.path(), "\"attention_bias\": false", "\"attention_bias\": true");
  expect_error<IoError>([&] { HfModel::open(dir.path()); }, {"model.layers.0.self_attn.q_proj.bias", "[256]", "missing"});
}

/// A one-layer synthetic llama (hidden 8, 2 heads / 1 kv head, intermediate 16, vocab 10) written
/// as one model.safetensors, fp32 values 0.01 * k, plus `extra` tensors; `poison` gets a NaN.
void write_synthetic(const std::filesystem::path& dir, const std::vector<test::CraftTensor>& extra,
                     const std::string& poison = "") {
  const std::string cfg = R"({"model_type":"llama","hidden_size":8,"intermediate_size":16,"num_hidden_layers":1,)"
                          R"("num_attention_heads":2,"num_key_value_heads":1,"vocab_size":10,"rms_norm_eps":1e-5,)"
                          R"("max_position_embeddings":64,"hidden_act":"silu","rope_theta":10000.0})";
  test::write_text(dir / "config.json", cfg);
  std::vector<test::CraftTensor> tensors;
  for (const auto& e : model::expected_tensors(parse_hf_config(cfg, "synthetic"))) {
    int64_t n = 1;
    for (int64_t d : e.shape) n *= d;
    test::Bytes data;
    for (int64_t i = 0; i < n; ++i) {
      const float v = (e.name == poison && i == n - 1) ? NAN : 0.01f * static_cast<float>(i % 100);
      const auto b = test::f32_bytes({v});
      data.insert(data.end(), b.begin(), b.end());
    }
    tensors.push_back({e.name, "F32", e.shape, data});
  }
  tensors.insert(tensors.end(), extra.begin(), extra.end());
  test::build_safetensors(dir / "model.safetensors", tensors);
}

TEST(HfModel, SyntheticSingleFileModel) {
  test::TempDir dir("syn");
  write_synthetic(dir.path(), {{"model.layers.0.self_attn.rotary_emb.inv_freq", "F32", {2}, test::f32_bytes({1, 2})}});
  const auto m = HfModel::open(dir.path());  // inv_freq buffers are ignored
  const auto o = m.read_linear(0, LinearKind::kO);
  EXPECT_EQ(o.rows(), 8);
  EXPECT_EQ(o.cols(), 8);
  EXPECT_FLOAT_EQ(o(1, 2), 0.01f * 10);
  EXPECT_EQ(m.fingerprint().files.size(), 2u);
}

TEST(HfModel, UnexpectedTensorIsAnError) {
  test::TempDir dir("unexp");
  write_synthetic(dir.path(), {{"model.layers.0.self_attn.q_norm.weight", "F32", {4}, test::f32_bytes({1, 1, 1, 1})}});
  expect_error<IoError>([&] { HfModel::open(dir.path()); },
                        {"unexpected tensor 'model.layers.0.self_attn.q_norm.weight'", "model.safetensors"});
}

TEST(HfModel, IntegerWeightIsAnError) {
  test::TempDir dir("int");
  write_synthetic(dir.path(), {});
  // Re-write with the final norm as I32 (same byte size).
  std::vector<test::CraftTensor> tensors;
  const auto set = SafetensorsSet::open(dir.path());
  for (const auto& name : set.tensor_names()) {
    const auto& t = set.info(name);
    const auto raw = set.bytes(name);
    tensors.push_back({name, name == "model.norm.weight" ? "I32" : "F32", t.shape,
                       test::Bytes(reinterpret_cast<const uint8_t*>(raw.data()),
                                   reinterpret_cast<const uint8_t*>(raw.data()) + raw.size())});
  }
  test::build_safetensors(dir / "model2.safetensors", tensors);
  std::filesystem::rename(dir / "model2.safetensors", dir / "model.safetensors");
  expect_error<IoError>([&] { HfModel::open(dir.path()); }, {"model.norm.weight", "I32"});
}

TEST(HfModel, NaNWeightNamesFileAndTensor) {
  test::TempDir dir("nan");
  write_synthetic(dir.path(), {}, "model.layers.0.mlp.up_proj.weight");
  const auto m = HfModel::open(dir.path());  // weights are checked when read
  EXPECT_NO_THROW(m.read_linear(0, LinearKind::kGate));
  expect_error<IoError>([&] { m.read_linear(0, LinearKind::kUp); },
                        {(dir / "model.safetensors").string(), "model.layers.0.mlp.up_proj.weight", "non-finite"});
}

TEST(HfModel, MissingConfigOrDirectory) {
  test::TempDir dir("none");
  expect_error<IoError>([&] { HfModel::open(dir / "nope"); }, {"nope", "does not exist"});
  expect_error<IoError>([&] { HfModel::open(dir.path()); }, {"config.json"});
}

}  // namespace
}  // namespace caldera::io
