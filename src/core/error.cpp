#include "core/error.h"

#include <cstdio>
#include <cstdlib>
#include <mutex>

namespace caldera {
namespace {
std::mutex g_fatal_mutex;
FatalHandler& fatal_handler() {
  static FatalHandler handler;
  return handler;
}
}  // namespace

namespace detail {
void fail_check(const char* expr, const std::source_location& loc, const std::string& msg) {
  std::string file = loc.file_name();
  if (auto pos = file.rfind("/src/"); pos != std::string::npos) file = file.substr(pos + 1);
  throw Error(concat(file, ":", loc.line(), ": check `", expr, "` failed", msg.empty() ? "" : ": ", msg));
}
}  // namespace detail

void set_fatal_handler(FatalHandler handler) {
  std::lock_guard lock(g_fatal_mutex);
  fatal_handler() = std::move(handler);
}

void fatal(std::string_view message) {
  FatalHandler handler;
  {
    std::lock_guard lock(g_fatal_mutex);
    handler = fatal_handler();
  }
  if (handler) handler(message);
  std::fprintf(stderr, "caldera: fatal: %.*s\n", static_cast<int>(message.size()), message.data());
  std::fflush(stderr);
  std::abort();
}

}  // namespace caldera
