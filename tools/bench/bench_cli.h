// Command-line helpers shared by the benchmark programs of tools/bench. They parse argv by hand
// (no Boost.Program_options, so they also build on a GPU machine that lacks it).
#pragma once

#include <cstdint>
#include <exception>
#include <iostream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"

namespace caldera::bench {

/// The non-empty items of a comma-separated list.
inline std::vector<std::string> split_commas(std::string_view text) {
  std::vector<std::string> parts;
  std::string item;
  std::istringstream in{std::string(text)};
  while (std::getline(in, item, ','))
    if (!item.empty()) parts.push_back(item);
  return parts;
}

/// `text` as an integer >= min_value; otherwise a ConfigError naming `option`.
inline int64_t parse_int(std::string_view option, std::string_view text, int64_t min_value) {
  try {
    size_t used = 0;
    const long long v = std::stoll(std::string(text), &used);
    if (used == text.size() && v >= min_value) return v;
  } catch (const std::exception&) {
    // reported below with the option's name
  }
  raise<ConfigError>(option, ": expected an integer >= ", min_value, ", got '", text, "'");
}

/// Runs a program's body: its exit code, or "<program>: <message>" on stderr and 2 for bad
/// options (ConfigError), 1 for any other error.
template <class Body>
int guarded_main(const char* program, Body&& body) {
  try {
    return body();
  } catch (const ConfigError& e) {
    std::cerr << program << ": " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << program << ": " << e.what() << "\n";
    return 1;
  }
}

}  // namespace caldera::bench
