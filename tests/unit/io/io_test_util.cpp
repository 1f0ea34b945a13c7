#include "io_test_util.h"

#include "test_util.h"

namespace caldera::test {

TempDir::TempDir(const std::string& prefix) : path_(make_temp_dir("caldera-io-" + prefix)) {}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

}  // namespace caldera::test
