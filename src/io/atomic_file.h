// Atomic publication of result files (DESIGN §3): a file appears under its final name only by
// rename() of a fully written, flushed temp file, so a crash never leaves a half-written file
// under a final name. Every writer in the project (safetensors, HDF5, JSON) goes through here.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>

namespace caldera::io {

/// A file that was published: its final path, size and whole-file SHA-256 (lowercase hex), to be
/// recorded by the caller (e.g. in run state) and checked on resume.
struct PublishedFile {
  std::filesystem::path path;
  int64_t size_bytes = 0;
  std::string sha256;
};

/// "<final>.tmp.<pid>": the temp name publish_atomically writes to (same directory, so the rename
/// stays within one filesystem).
std::filesystem::path temp_path_for(const std::filesystem::path& final_path);

/// Calls `write_file(tmp)`, which must create the file at `tmp`, write it completely and close it;
/// then fsyncs it, hashes it, renames it over `final_path` (replacing any older file) and fsyncs the
/// directory. The parent directory must exist. If anything throws, the temp file is removed and
/// the exception propagates (`final_path` is then untouched). Throws IoError naming the file for
/// filesystem failures.
PublishedFile publish_atomically(const std::filesystem::path& final_path,
                                 const std::function<void(const std::filesystem::path& tmp)>& write_file);

/// Removes leftovers of interrupted publications in `dir` (files named "<anything>.tmp.<digits>",
/// not recursive) and returns how many were removed. Call only when no other process of the run
/// is writing into `dir` (at start-up). Throws IoError if `dir` cannot be listed.
int remove_stale_temp_files(const std::filesystem::path& dir);

}  // namespace caldera::io
