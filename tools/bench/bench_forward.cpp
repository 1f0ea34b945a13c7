// bench_forward: phase-1 throughput of one synthetic Llama decoder layer (forward pass plus the
// four fp64 Hessian accumulations of spec §6.2), on every available backend side by side, printed
// as a markdown table with achieved FLOP/s and the fraction of the GPU's peak.
//
// The weights are SYNTHETIC (model/synthetic_weights.h: independent normals, not a trained model)
// at Llama-2-7B's layer shape by default: hidden 4096, intermediate 11008, 32 heads of 128, no GQA.
// Timing: one warm-up step, then the median of --reps steps; each step is one forward_layer call on
// --seqs sequences of --seq-len tokens, synchronized; weights are uploaded once, outside the timing.
// Two variants per backend: forward only (fp32 work) and forward + taps (adds the fp64 Gram
// accumulations); their difference is attributed to the taps.
//
// FLOP counts (useful work only):
//   linear  2·T·(h·(q + 2kv) + q·h + 3·h·I)                      fp32
//   attn    2·2·heads·head_dim·Σ_seq L(L+1)/2   (causal half)     fp32
//   gram    Σ_inputs n(n+1)·T                   (syrk, one triangle) fp64
// Peaks (override with --peak-fp32-tflops / --peak-fp64-tflops): H100 SXM fp32 SIMT 67 TFLOP/s and
// fp64 tensor-core 67 TFLOP/s (H200 has the same compute). "overall" = (F32/peak32 + F64/peak64) /
// measured time, the fraction of the peak-bound time the step achieves.
//
// Usage: bench_forward [--hidden 4096] [--intermediate 11008] [--heads 32] [--kv-heads 32]
//          [--head-dim 128] [--seq-len 2048] [--seqs 1] [--cpu-seq-len 512] [--cpu-seqs 1]
//          [--reps 3] [--backends cpu,cuda] [--peak-fp32-tflops 67] [--peak-fp64-tflops 67]
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "core/matrix.h"
#include "core/timer.h"
#include "linalg/backend.h"
#include "model/forward.h"
#include "model/synthetic_weights.h"

#include "bench_common.h"

namespace {

using namespace caldera;

struct BenchOptions {
  int64_t hidden = 4096, intermediate = 11008, heads = 32, kv_heads = 32, head_dim = 128;
  int64_t seq_len = 2048, seqs = 1, cpu_seq_len = 512, cpu_seqs = 1, reps = 3;
  std::string backends = "cpu,cuda";
  double peak_fp32_tflops = 67.0, peak_fp64_tflops = 67.0;
};

BenchOptions parse(int argc, char** argv) {
  BenchOptions o;
  std::map<std::string, int64_t*> ints = {{"--hidden", &o.hidden},       {"--intermediate", &o.intermediate},
                                          {"--heads", &o.heads},         {"--kv-heads", &o.kv_heads},
                                          {"--head-dim", &o.head_dim},   {"--seq-len", &o.seq_len},
                                          {"--seqs", &o.seqs},           {"--cpu-seq-len", &o.cpu_seq_len},
                                          {"--cpu-seqs", &o.cpu_seqs},   {"--reps", &o.reps}};
  std::map<std::string, double*> reals = {{"--peak-fp32-tflops", &o.peak_fp32_tflops},
                                          {"--peak-fp64-tflops", &o.peak_fp64_tflops}};
  for (int i = 1; i < argc; ++i) {
    const std::string key = argv[i];
    if (key == "--help" || key == "-h") {
      std::puts("bench_forward: see the comment at the top of tools/bench/bench_forward.cpp for options");
      std::exit(0);
    }
    CALDERA_CHECK_AS(ConfigError, i + 1 < argc, key, ": missing value");
    const std::string value = argv[++i];
    if (auto it = ints.find(key); it != ints.end()) {
      *it->second = std::stoll(value);
      CALDERA_CHECK_AS(ConfigError, *it->second > 0, key, " must be > 0, got ", value);
    } else if (auto jt = reals.find(key); jt != reals.end()) {
      *jt->second = std::stod(value);
    } else if (key == "--backends") {
      o.backends = value;
    } else {
      raise<ConfigError>("unknown option ", key);
    }
  }
  return o;
}

struct Flops {
  double fp32 = 0, fp64 = 0;
};

Flops step_flops(const model::LlamaConfig& c, int64_t seq_len, int64_t seqs) {
  const auto T = static_cast<double>(seq_len * seqs);
  const auto h = static_cast<double>(c.hidden_size), q = static_cast<double>(c.q_dim()),
             kv = static_cast<double>(c.kv_dim()), inter = static_cast<double>(c.intermediate_size);
  Flops f;
  f.fp32 = 2.0 * T * (h * (q + 2 * kv) + q * h + 3 * h * inter);
  f.fp32 += 4.0 * static_cast<double>(c.num_attention_heads * c.head_dim) * static_cast<double>(seqs) *
            static_cast<double>(seq_len) * static_cast<double>(seq_len + 1) / 2.0;
  for (model::HessianInput in : model::kAllHessianInputs) {
    const auto n = static_cast<double>(c.hessian_input_dim(in));
    f.fp64 += n * (n + 1) * T;
  }
  return f;
}

struct Row {
  std::string backend;
  int64_t seq_len = 0, seqs = 0;
  double fwd_s = 0, taps_s = 0;
  Flops flops;
  double peak_mib = 0;
};

Row run_backend(linalg::BackendKind kind, const model::SyntheticWeightSource& src, int64_t seq_len, int64_t seqs,
                int64_t reps) {
  const auto& c = src.config();
  auto be = linalg::make_backend(kind);
  std::fprintf(stderr, "bench_forward: %s, %lld x %lld tokens...\n", be->description().c_str(),
               static_cast<long long>(seqs), static_cast<long long>(seq_len));
  const auto weights = model::LayerWeights::load(*be, src, 0);
  const int64_t tokens = seq_len * seqs;
  auto input = be->make<float>(tokens, c.hidden_size, "bench input");
  be->fill_normal(input.view(), Rng(11).stream({1}).key());
  auto hidden = be->make<float>(tokens, c.hidden_size, "bench hidden");
  model::HessianTaps taps(*be, c);
  be->synchronize();
  be->reset_peak_memory();

  auto time_step = [&](model::HessianTaps* t) {
    be->copy(input.cview(), hidden.view());  // same input every step (the copy is ~0.1% of a step)
    be->synchronize();
    Stopwatch w;
    model::forward_layer(*be, c, weights, hidden.view(), seq_len, t);
    be->synchronize();
    return w.elapsed_s();
  };
  std::vector<double> fwd, with_taps;
  time_step(nullptr);  // warm-up: allocator pools, cuBLAS heuristics
  time_step(&taps);
  for (int64_t r = 0; r < reps; ++r) {
    fwd.push_back(time_step(nullptr));
    with_taps.push_back(time_step(&taps));
  }
  Row row;
  row.backend = std::string(linalg::to_string(kind));
  row.seq_len = seq_len;
  row.seqs = seqs;
  row.fwd_s = caldera::bench::median(fwd);
  row.taps_s = caldera::bench::median(with_taps);
  row.flops = step_flops(c, seq_len, seqs);
  row.peak_mib = static_cast<double>(be->memory_stats().peak_bytes) / (1 << 20);
  return row;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const BenchOptions o = parse(argc, argv);
    model::LlamaConfig c;
    c.hidden_size = o.hidden;
    c.intermediate_size = o.intermediate;
    c.num_hidden_layers = 1;
    c.num_attention_heads = o.heads;
    c.num_key_value_heads = o.kv_heads;
    c.head_dim = o.head_dim;
    c.vocab_size = 32000;
    c.rms_norm_eps = 1e-5;
    c.max_position_embeddings = std::max(o.seq_len, o.cpu_seq_len);
    const model::SyntheticWeightSource src(c, 2024);

    std::vector<Row> rows;
    std::stringstream list(o.backends);
    for (std::string name; std::getline(list, name, ',');) {
      const auto kind = linalg::parse_backend_kind(name);
      if (!linalg::backend_available(kind)) {
        std::fprintf(stderr, "bench_forward: backend %s unavailable here, skipped\n", name.c_str());
        continue;
      }
      const bool cpu = kind == linalg::BackendKind::kCpu;
      rows.push_back(run_backend(kind, src, cpu ? o.cpu_seq_len : o.seq_len, cpu ? o.cpu_seqs : o.seqs, o.reps));
    }

    std::printf("## Phase-1 step, one synthetic decoder layer (hidden %lld, intermediate %lld, %lld/%lld heads x %lld)\n\n",
                static_cast<long long>(o.hidden), static_cast<long long>(o.intermediate),
                static_cast<long long>(o.heads), static_cast<long long>(o.kv_heads),
                static_cast<long long>(o.head_dim));
    std::printf("Synthetic random weights (not a trained model); median of %lld reps after warm-up; CPU threads: %u.\n",
                static_cast<long long>(o.reps), std::thread::hardware_concurrency());
    std::printf("GPU peaks assumed: fp32 %.0f TFLOP/s (SIMT), fp64 %.0f TFLOP/s (tensor core) - H100 SXM.\n\n",
                o.peak_fp32_tflops, o.peak_fp64_tflops);
    std::printf("| backend | seq_len x seqs | forward s | forward+taps s | phase-1 tokens/s | fp32 TFLOP/s | "
                "fp32 %% peak | taps fp64 TFLOP/s | fp64 %% peak | overall %% peak | peak mem MiB |\n");
    std::printf("|---|---|---|---|---|---|---|---|---|---|---|\n");
    for (const Row& r : rows) {
      const double tokens = static_cast<double>(r.seq_len * r.seqs);
      const double f32 = r.flops.fp32 / r.fwd_s / 1e12;
      const double taps_time = std::max(r.taps_s - r.fwd_s, 1e-9);
      const double f64 = r.flops.fp64 / taps_time / 1e12;
      const bool gpu = r.backend == "cuda";
      const double ideal = r.flops.fp32 / (o.peak_fp32_tflops * 1e12) + r.flops.fp64 / (o.peak_fp64_tflops * 1e12);
      auto pct = [&](double v) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.1f", v * 100.0);
        return gpu ? std::string(buf) : std::string("n/a");
      };
      std::printf("| %s | %lld x %lld | %.4f | %.4f | %.0f | %.3f | %s | %.3f | %s | %s | %.0f |\n", r.backend.c_str(),
                  static_cast<long long>(r.seq_len), static_cast<long long>(r.seqs), r.fwd_s, r.taps_s,
                  tokens / r.taps_s, f32, pct(f32 / o.peak_fp32_tflops).c_str(), f64,
                  pct(f64 / o.peak_fp64_tflops).c_str(), pct(ideal / r.taps_s).c_str(), r.peak_mib);
    }
    if (rows.size() == 2) {
      const double cpu_tps = static_cast<double>(rows[0].seq_len * rows[0].seqs) / rows[0].taps_s;
      const double gpu_tps = static_cast<double>(rows[1].seq_len * rows[1].seqs) / rows[1].taps_s;
      std::printf("\nCUDA / CPU phase-1 tokens/s: %.1fx (CPU at seq_len %lld, CUDA at %lld).\n", gpu_tps / cpu_tps,
                  static_cast<long long>(rows[0].seq_len), static_cast<long long>(rows[1].seq_len));
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_forward: %s\n", e.what());
    return 1;
  }
}
