// config.json parsing for the Llama family, and LlamaConfig's derived shapes and names.
#include <gtest/gtest.h>

#include "core/error.h"
#include "io/hf_config.h"
#include "io_test_util.h"
#include "test_util.h"

namespace caldera::io {
namespace {

using model::HessianInput;
using model::LinearKind;
using model::LinearShape;
using model::ModelType;
using model::RopeScalingType;
using test::expect_error;

std::filesystem::path config_dir() { return test::data_dir() / "configs"; }

/// A minimal valid llama config with `extra` fields merged in (JSON object members, no braces).
std::string llama_json(const std::string& extra = "") {
  std::string s = R"({"model_type":"llama","hidden_size":64,"intermediate_size":176,"num_hidden_layers":2,)"
                  R"("num_attention_heads":4,"num_key_value_heads":2,"vocab_size":100,"rms_norm_eps":1e-5,)"
                  R"("max_position_embeddings":512,"hidden_act":"silu")";
  if (!extra.empty()) s += "," + extra;
  return s + "}";
}

TEST(HfConfig, BundledTinyModel) {
  const auto c = read_hf_config(test::tiny_model_dir() / "config.json");
  EXPECT_EQ(c.model_type, ModelType::kLlama);
  EXPECT_EQ(c.hidden_size, 256);
  EXPECT_EQ(c.intermediate_size, 704);
  EXPECT_EQ(c.num_hidden_layers, 4);
  EXPECT_EQ(c.num_attention_heads, 4);
  EXPECT_EQ(c.num_key_value_heads, 2);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.vocab_size, 4096);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_DOUBLE_EQ(c.rope_theta, 10000.0);  // from rope_parameters (transformers 5.x layout)
  EXPECT_EQ(c.rope_scaling.type, RopeScalingType::kNone);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_FALSE(c.attention_bias);
  EXPECT_EQ(c.bos_token_id, 0);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int64_t>{1}));
  EXPECT_EQ(c.kv_group_size(), 2);
  EXPECT_EQ(c.linear_shape(LinearKind::kK), (LinearShape{128, 256}));
  EXPECT_EQ(c.num_parameters(), 5048576);  // the model card's parameter count
}

TEST(HfConfig, Llama2_7B) {
  const auto c = read_hf_config(config_dir() / "llama-2-7b.json");
  EXPECT_EQ(c.num_key_value_heads, 32);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_DOUBLE_EQ(c.rope_theta, 10000.0);
  EXPECT_EQ(c.rope_scaling.type, RopeScalingType::kNone);
  EXPECT_EQ(c.linear_shape(LinearKind::kDown), (LinearShape{4096, 11008}));
  EXPECT_EQ(c.hessian_input_dim(HessianInput::kDown), 11008);
  EXPECT_EQ(c.num_parameters(), 6738415616);  // Llama-2-7B's published parameter count
}

TEST(HfConfig, Llama31_8B_WithLlama3RopeScaling) {
  const auto c = read_hf_config(config_dir() / "llama-3.1-8b.json");
  EXPECT_EQ(c.num_key_value_heads, 8);
  EXPECT_DOUBLE_EQ(c.rope_theta, 500000.0);
  EXPECT_EQ(c.rope_scaling.type, RopeScalingType::kLlama3);
  EXPECT_DOUBLE_EQ(c.rope_scaling.factor, 8.0);
  EXPECT_DOUBLE_EQ(c.rope_scaling.low_freq_factor, 1.0);
  EXPECT_DOUBLE_EQ(c.rope_scaling.high_freq_factor, 4.0);
  EXPECT_EQ(c.rope_scaling.original_max_position_embeddings, 8192);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int64_t>{128001, 128008, 128009}));
  EXPECT_EQ(c.linear_shape(LinearKind::kK), (LinearShape{1024, 4096}));
  EXPECT_EQ(c.num_parameters(), 8030261248);  // Llama-3.1-8B's published parameter count
}

TEST(HfConfig, Mistral7B_SlidingWindow) {
  const auto c = read_hf_config(config_dir() / "mistral-7b.json");
  EXPECT_EQ(c.model_type, ModelType::kMistral);
  ASSERT_TRUE(c.sliding_window.has_value());
  EXPECT_EQ(*c.sliding_window, 4096);
  EXPECT_NO_THROW(c.check_sequence_length(4096));
  expect_error<ConfigError>([&] { c.check_sequence_length(8192); }, {"8192", "sliding_window", "4096"});
  EXPECT_EQ(c.num_parameters(), 7241732096);  // Mistral-7B-v0.1's published parameter count
}

TEST(HfConfig, Qwen2_7B_Biases) {
  const auto c = read_hf_config(config_dir() / "qwen2-7b.json");
  EXPECT_EQ(c.model_type, ModelType::kQwen2);
  EXPECT_TRUE(c.has_bias(LinearKind::kQ));
  EXPECT_TRUE(c.has_bias(LinearKind::kK));
  EXPECT_TRUE(c.has_bias(LinearKind::kV));
  EXPECT_FALSE(c.has_bias(LinearKind::kO));
  EXPECT_FALSE(c.has_bias(LinearKind::kUp));
  EXPECT_FALSE(c.sliding_window.has_value());  // use_sliding_window: false
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-6);
  EXPECT_EQ(c.num_parameters(), 7615616512);  // Qwen2-7B's published parameter count
  bool found_bias = false;
  for (const auto& t : model::expected_tensors(c))
    if (t.name == "model.layers.27.self_attn.v_proj.bias") {
      found_bias = true;
      EXPECT_EQ(t.shape, (std::vector<int64_t>{512}));
    }
  EXPECT_TRUE(found_bias);
}

TEST(HfConfig, LlamaAttentionBiasCoversAllFourProjections) {
  const auto c = parse_hf_config(llama_json(R"("attention_bias":true,"mlp_bias":true)"), "x");
  for (LinearKind k : model::kAllLinearKinds) EXPECT_TRUE(c.has_bias(k)) << model::to_string(k);
}

TEST(HfConfig, RopeThetaLocations) {
  EXPECT_DOUBLE_EQ(parse_hf_config(llama_json(R"("rope_theta":123.0)"), "x").rope_theta, 123.0);
  EXPECT_DOUBLE_EQ(
      parse_hf_config(llama_json(R"("rope_parameters":{"rope_type":"default","rope_theta":77.0})"), "x").rope_theta, 77.0);
  EXPECT_DOUBLE_EQ(parse_hf_config(llama_json(R"("rope_parameters":{"rope_theta":55.0})"), "x").rope_theta, 55.0);
  expect_error<ConfigError>(
      [] { parse_hf_config(llama_json(R"("rope_parameters":{"rope_theta":5.0,"partial_rotary_factor":0.5})"), "c"); },
      {"rope_parameters.partial_rotary_factor", "unsupported"});
  expect_error<ConfigError>([] { parse_hf_config(llama_json(R"("rope_scaling":{"factor":2.0})"), "c"); },
                            {"rope_scaling.rope_type", "missing"});
  expect_error<ConfigError>(
      [] { parse_hf_config(llama_json(R"("rope_theta":1.0,"rope_parameters":{"rope_type":"default","rope_theta":2.0})"), "cfg.json"); },
      {"cfg.json", "rope_theta", "contradicts"});
  // transformers 5.x puts llama3 scaling into rope_parameters.
  const auto c = parse_hf_config(
      llama_json(R"("rope_parameters":{"rope_type":"llama3","rope_theta":5e5,"factor":32.0,"low_freq_factor":1.0,)"
                 R"("high_freq_factor":4.0,"original_max_position_embeddings":8192})"),
      "x");
  EXPECT_EQ(c.rope_scaling.type, RopeScalingType::kLlama3);
  EXPECT_DOUBLE_EQ(c.rope_scaling.factor, 32.0);
  EXPECT_DOUBLE_EQ(c.rope_theta, 5e5);
}

TEST(HfConfig, UnsupportedRopeScalingNamesFieldAndValue) {
  for (const char* type : {"linear", "dynamic", "yarn", "longrope"}) {
    expect_error<ConfigError>(
        [&] { parse_hf_config(llama_json(std::string(R"("rope_scaling":{"type":")") + type + R"(","factor":2.0})"), "cfg.json"); },
        {"cfg.json", "rope_scaling.type", std::string("\"") + type + "\""});
    expect_error<ConfigError>(
        [&] {
          parse_hf_config(llama_json(std::string(R"("rope_scaling":{"rope_type":")") + type + R"(","factor":2.0})"), "cfg.json");
        },
        {"rope_scaling.rope_type", type});
  }
  expect_error<ConfigError>(
      [] { parse_hf_config(llama_json(R"("rope_scaling":{"rope_type":"llama3","factor":8.0})"), "cfg.json"); },
      {"rope_scaling.low_freq_factor", "missing"});
}

TEST(HfConfig, UnknownModelType) {
  expect_error<ConfigError>(
      [] { parse_hf_config(R"({"model_type":"gpt_neox","hidden_size":64})", "/m/config.json"); },
      {"/m/config.json", "model_type", "gpt_neox"});
  expect_error<ConfigError>([] { parse_hf_config(R"({"hidden_size":64})", "c"); }, {"model_type", "missing"});
}

TEST(HfConfig, UnknownFieldIsNamed) {
  expect_error<ConfigError>([] { parse_hf_config(llama_json(R"("sliding_attention_layers":[1,2])"), "c.json"); },
                            {"c.json", "sliding_attention_layers", "unsupported field"});
}

TEST(HfConfig, WrongActivationAndTypes) {
  // A key given twice is malformed JSON here (nlohmann would silently keep the last one).
  expect_error<IoError>([] { parse_hf_config(llama_json(R"("hidden_act":"gelu")"), "c"); }, {"duplicate key", "hidden_act"});
  std::string j = llama_json();
  j.replace(j.find("\"silu\""), 6, "\"gelu\"");
  expect_error<ConfigError>([&] { parse_hf_config(j, "c"); }, {"hidden_act", "gelu"});
  std::string k = llama_json();
  k.replace(k.find("\"hidden_size\":64"), 16, "\"hidden_size\":\"64\"");
  expect_error<ConfigError>([&] { parse_hf_config(k, "c"); }, {"hidden_size", "integer"});
}

TEST(HfConfig, AllProblemsAreReportedAtOnce) {
  try {
    parse_hf_config(R"({"model_type":"llama","hidden_size":64,"intermediate_size":-1,"num_hidden_layers":2,)"
                    R"("num_attention_heads":4,"num_key_value_heads":3,"vocab_size":100,"foo":1,"bar":2})",
                    "c.json");
    ADD_FAILURE() << "accepted";
  } catch (const ConfigError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("'foo'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("'bar'"), std::string::npos) << msg;
  }
  try {
    parse_hf_config(R"({"model_type":"llama","hidden_size":64,"intermediate_size":-1,"num_hidden_layers":2,)"
                    R"("num_attention_heads":4,"num_key_value_heads":3,"vocab_size":100,"bos_token_id":100})",
                    "c.json");
    ADD_FAILURE() << "accepted";
  } catch (const ConfigError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("intermediate_size"), std::string::npos) << msg;
    EXPECT_NE(msg.find("num_key_value_heads (3)"), std::string::npos) << msg;
    EXPECT_NE(msg.find("bos_token_id"), std::string::npos) << msg;
  }
}

TEST(HfConfig, SlidingWindowRules) {
  expect_error<ConfigError>([] { parse_hf_config(llama_json(R"("sliding_window":4096)"), "c"); }, {"sliding_window"});
  std::string q = llama_json(R"("use_sliding_window":true,"sliding_window":256)");
  q.replace(q.find("\"llama\""), 7, "\"qwen2\"");
  const auto c = parse_hf_config(q, "c");
  EXPECT_EQ(c.sliding_window, 256);
  EXPECT_THROW(c.check_sequence_length(512), ConfigError);
}

TEST(HfConfig, MalformedFileIsIoError) {
  test::TempDir dir("cfg");
  test::write_text(dir / "config.json", "{\"model_type\": ");
  expect_error<IoError>([&] { read_hf_config(dir / "config.json"); }, {(dir / "config.json").string(), "malformed"});
  expect_error<IoError>([&] { read_hf_config(dir / "missing.json"); }, {"missing.json"});
  test::write_text(dir / "config.json", "[]");
  expect_error<IoError>([&] { read_hf_config(dir / "config.json"); }, {"JSON object"});
}

TEST(LlamaConfig, NamesAndHessianInputs) {
  EXPECT_EQ(model::linear_weight_name(3, LinearKind::kGate), "model.layers.3.mlp.gate_proj.weight");
  EXPECT_EQ(model::linear_bias_name(0, LinearKind::kV), "model.layers.0.self_attn.v_proj.bias");
  EXPECT_EQ(model::norm_weight_name(1, model::NormKind::kPostAttention), "model.layers.1.post_attention_layernorm.weight");
  EXPECT_EQ(model::hessian_input(LinearKind::kK), HessianInput::kQkv);
  EXPECT_EQ(model::hessian_input(LinearKind::kGate), HessianInput::kUp);
  EXPECT_EQ(model::hessian_input(LinearKind::kO), HessianInput::kO);
  EXPECT_EQ(model::hessian_input(LinearKind::kDown), HessianInput::kDown);
  EXPECT_EQ(model::to_string(HessianInput::kQkv), "qkv");
  // Every linear's `in` equals its Hessian input's dimension.
  const auto c = read_hf_config(config_dir() / "llama-3.1-8b.json");
  for (LinearKind k : model::kAllLinearKinds) EXPECT_EQ(c.linear_shape(k).in, c.hessian_input_dim(model::hessian_input(k)));
}

}  // namespace
}  // namespace caldera::io
