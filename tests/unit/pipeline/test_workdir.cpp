#include <gtest/gtest.h>

#include <fstream>
#include <unistd.h>

#include "core/error.h"
#include "pipeline/run_record.h"
#include "pipeline/stop_signal.h"
#include "pipeline/workdir.h"
#include "test_util.h"

#include <csignal>

namespace caldera::pipeline {
namespace {

namespace fs = std::filesystem;

TEST(Workdir, LayoutAndLeftoverCleanup) {
  Workdir w(test::make_temp_dir("wd"));
  w.create_layout();
  EXPECT_TRUE(fs::is_directory(w.task_dir()));
  EXPECT_EQ(w.hessian_file(7).filename(), "layer_007.h5");
  EXPECT_EQ(w.log_file(12).filename(), "rank-0012.jsonl");
  EXPECT_FALSE(w.has_results());
  std::ofstream(w.task_file("L000.mlp.up_proj")) << "x";
  std::ofstream(w.task_dir() / "L001.mlp.up_proj.h5.tmp.123") << "half";
  std::ofstream(w.hessian_dir() / "layer_002.h5.tmp.9") << "half";
  EXPECT_EQ(w.remove_leftovers(), 2);
  EXPECT_TRUE(fs::exists(w.task_file("L000.mlp.up_proj")));
  EXPECT_TRUE(w.has_results());
  w.clear_results();
  EXPECT_FALSE(w.has_results());
  EXPECT_TRUE(fs::exists(w.log_dir()));
}

TEST(WorkdirLock, ExclusiveUnlessSameJobOrDeadOwner) {
  Workdir w(test::make_temp_dir("lock"));
  w.create_layout();
  const LockOwner me{"hostA", static_cast<long>(::getpid()), "100"};
  {
    WorkdirLock lock(w, me, false);
    EXPECT_TRUE(lock.held());
    // Another live process on this host, another job: refused, naming the owner.
    const LockOwner other{"hostA", static_cast<long>(::getpid()), "200"};
    try {
      WorkdirLock second(w, other, false);
      FAIL();
    } catch (const IoError& e) {
      EXPECT_NE(std::string(e.what()).find("job 100"), std::string::npos) << e.what();
    }
    // The same SLURM job (a requeue) takes over.
    WorkdirLock requeued(w, LockOwner{"hostB", 1, "100"}, false);
    EXPECT_TRUE(requeued.held());
  }
  EXPECT_FALSE(fs::exists(w.lock_file()));
  // A dead owner on this host is taken over.
  std::ofstream(w.lock_file()) << "host hostA\npid 999999999\njob -\n";
  WorkdirLock taken(w, LockOwner{"hostA", 5, ""}, false);
  EXPECT_TRUE(taken.held());
}

io::JsonValue record(int rank, int world, const std::string& hash) {
  io::JsonValue j = io::JsonValue::object();
  j.set("format_version", kRunRecordFormatVersion);
  io::JsonValue s = io::JsonValue::object();
  s.set("method", "caldera");
  s.set("rank", rank);
  j.set("settings", s);
  io::JsonValue m = io::JsonValue::object();
  m.set("header_sha256", hash);
  j.set("model", m);
  j.set("world_size", world);
  return j;
}

TEST(RunRecord, DifferencesIgnoreWorldSizeAndNameEveryChange) {
  EXPECT_TRUE(run_record_differences(record(64, 1, "aa"), record(64, 8, "aa")).empty());
  const auto d = run_record_differences(record(64, 1, "aa"), record(32, 1, "bb"));
  ASSERT_EQ(d.size(), 2u);
  EXPECT_NE(d[0].find("settings.rank: 64"), std::string::npos) << d[0];
  EXPECT_NE(d[1].find("model.header_sha256"), std::string::npos) << d[1];
}

TEST(RunRecord, PhaseSectionsPresentOnOneSideOnlyAreNotDifferences) {
  io::JsonValue a = record(64, 1, "aa");
  io::JsonValue b = a;
  io::JsonValue p2 = io::JsonValue::object();
  p2.set("method", "caldera");
  b.set("phase2", p2);
  EXPECT_TRUE(run_record_differences(a, b).empty());
  EXPECT_TRUE(run_record_differences(b, a).empty());
  io::JsonValue c = b;
  p2.set("method", "rtn");
  c.set("phase2", p2);
  EXPECT_EQ(run_record_differences(b, c).size(), 1u);
  const io::JsonValue merged = merge_run_records(a, b);
  EXPECT_TRUE(merged.contains("phase2"));
}

TEST(RunRecord, ResumeDecisions) {
  const io::JsonValue none;
  EXPECT_EQ(decide_resume(ResumeMode::kAuto, none, record(1, 1, "a"), false, "w"), ResumeAction::kStartFresh);
  EXPECT_THROW(decide_resume(ResumeMode::kRequired, none, record(1, 1, "a"), false, "w"), ConfigError);
  EXPECT_THROW(decide_resume(ResumeMode::kAuto, none, record(1, 1, "a"), true, "w"), ConfigError);
  EXPECT_EQ(decide_resume(ResumeMode::kAuto, record(1, 2, "a"), record(1, 3, "a"), false, "w"), ResumeAction::kResume);
  EXPECT_EQ(decide_resume(ResumeMode::kRequired, record(1, 2, "a"), record(1, 3, "a"), false, "w"),
            ResumeAction::kResume);
  try {
    decide_resume(ResumeMode::kAuto, record(1, 1, "a"), record(2, 1, "a"), false, "w");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("settings.rank"), std::string::npos) << e.what();
  }
  EXPECT_EQ(decide_resume(ResumeMode::kNever, record(1, 1, "a"), record(2, 1, "a"), false, "w"),
            ResumeAction::kClearAndStartFresh);
  EXPECT_THROW(parse_resume_mode("sometimes"), ConfigError);
}

TEST(StopSignal, Usr1AndTermSetTheFlag) {
  install_stop_handlers();
  set_stop_signal_for_testing(0);
  EXPECT_FALSE(stop_signal_received());
  std::raise(SIGUSR1);
  EXPECT_TRUE(stop_signal_received());
  EXPECT_EQ(stop_signal_number(), SIGUSR1);
  set_stop_signal_for_testing(0);
  std::raise(SIGTERM);
  EXPECT_EQ(stop_signal_number(), SIGTERM);
  set_stop_signal_for_testing(0);
}

}  // namespace
}  // namespace caldera::pipeline
