#include "io/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/error.h"
#include "core/log.h"
#include "io/sha256.h"

namespace caldera::io {
namespace {

void fsync_path(const std::filesystem::path& path, int flags, const char* what) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) raise<IoError>("cannot open ", what, " '", path.string(), "' to fsync it: ", std::strerror(errno));
  if (::fsync(fd) != 0) {
    const int err = errno;
    ::close(fd);
    raise<IoError>("fsync of ", what, " '", path.string(), "' failed: ", std::strerror(err));
  }
  ::close(fd);
}

bool is_temp_name(const std::string& name) {
  const auto pos = name.rfind(".tmp.");
  if (pos == std::string::npos || pos + 5 >= name.size()) return false;
  for (std::size_t i = pos + 5; i < name.size(); ++i)
    if (name[i] < '0' || name[i] > '9') return false;
  return true;
}

}  // namespace

std::filesystem::path temp_path_for(const std::filesystem::path& final_path) {
  return std::filesystem::path(final_path.string() + ".tmp." + std::to_string(::getpid()));
}

PublishedFile publish_atomically(const std::filesystem::path& final_path,
                                 const std::function<void(const std::filesystem::path& tmp)>& write_file) {
  namespace fs = std::filesystem;
  const fs::path dir = final_path.has_parent_path() ? final_path.parent_path() : fs::path(".");
  if (!fs::is_directory(dir))
    raise<IoError>("cannot publish '", final_path.string(), "': directory '", dir.string(), "' does not exist");
  const fs::path tmp = temp_path_for(final_path);
  PublishedFile out;
  out.path = final_path;
  try {
    write_file(tmp);
    if (!fs::is_regular_file(tmp))
      raise<IoError>("publishing '", final_path.string(), "': the writer did not create '", tmp.string(), "'");
    fsync_path(tmp, O_RDONLY, "file");
    out.size_bytes = static_cast<int64_t>(fs::file_size(tmp));
    out.sha256 = sha256_file(tmp);
    if (::rename(tmp.c_str(), final_path.c_str()) != 0)
      raise<IoError>("cannot rename '", tmp.string(), "' to '", final_path.string(), "': ", std::strerror(errno));
  } catch (...) {
    std::error_code ec;
    fs::remove(tmp, ec);
    throw;
  }
  fsync_path(dir, O_RDONLY | O_DIRECTORY, "directory");
  return out;
}

int remove_stale_temp_files(const std::filesystem::path& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec) raise<IoError>("cannot list '", dir.string(), "': ", ec.message());
  int removed = 0;
  for (const auto& entry : it) {
    if (!entry.is_regular_file() || !is_temp_name(entry.path().filename().string())) continue;
    if (fs::remove(entry.path(), ec)) {
      ++removed;
      log_info("removed leftover temp file '", entry.path().string(), "'");
    }
  }
  return removed;
}

}  // namespace caldera::io
