// Group min-max quantization and bit packing.
#include "quant/scalar.h"

#include <algorithm>

#include "core/error.h"

namespace caldera::quant {

void GroupQuantizer::validate() const {
  CALDERA_CHECK_AS(ConfigError, bits >= 1 && bits <= 8, "scalar quantizer: bits must be 1..8, got ", bits);
  CALDERA_CHECK_AS(ConfigError, group_size >= 0, "scalar quantizer: group_size must be >= 0 (0 = whole row), got ",
                   group_size);
}

linalg::ScalarFitSpec GroupQuantizer::fit_spec(int64_t cols) const {
  validate();
  linalg::ScalarFitSpec s;
  s.bits = bits;
  s.group_size = group_size == 0 ? std::max<int64_t>(cols, 1) : group_size;
  s.symmetry = symmetry;
  s.range = range;
  s.zero_point = zero_point;
  return s;
}

GroupQuantResult group_quantize(linalg::Backend& be, MatrixView<const float> x, const GroupQuantizer& quantizer) {
  const linalg::ScalarFitSpec spec = quantizer.fit_spec(x.cols);
  const int64_t ng = (x.cols + spec.group_size - 1) / spec.group_size;
  GroupQuantResult r;
  r.bits = spec.bits;
  r.group_size = spec.group_size;
  r.scale = be.make<float>(x.rows, ng, "group scale");
  r.zero = be.make<float>(x.rows, ng, "group zero");
  r.codes = be.make<uint8_t>(x.rows, x.cols, "group codes");
  r.xhat = be.make<float>(x.rows, x.cols, "group xhat");
  be.quant().scalar_fit(x, spec, r.scale.view(), r.zero.view());
  be.quant().scalar_quantize(x, r.grid(), r.codes.view(), r.xhat.view());
  return r;
}

HostMatrix<uint32_t> pack_bits(MatrixView<const uint8_t> codes, int bits) {
  CALDERA_CHECK(bits >= 1 && bits <= 8, "pack_bits: bits must be 1..8, got ", bits);
  const int64_t words = (codes.cols * bits + 31) / 32;
  HostMatrix<uint32_t> out(codes.rows, words);
  for (int64_t i = 0; i < codes.rows; ++i)
    for (int64_t j = 0; j < codes.cols; ++j) {
      const uint32_t c = codes(i, j);
      CALDERA_CHECK(c < (1u << bits), "pack_bits: code ", c, " at (", i, ", ", j, ") does not fit in ", bits, " bits");
      const int64_t bit = j * bits, w = bit / 32, off = bit % 32;
      out(i, w) |= c << off;
      if (off + bits > 32) out(i, w + 1) |= c >> (32 - off);
    }
  return out;
}

HostMatrix<uint8_t> unpack_bits(MatrixView<const uint32_t> packed, int bits, int64_t cols) {
  CALDERA_CHECK(bits >= 1 && bits <= 8, "unpack_bits: bits must be 1..8, got ", bits);
  const int64_t words = (cols * bits + 31) / 32;
  CALDERA_CHECK(packed.cols == words, "unpack_bits: ", words, " words per row expected for ", cols, " codes of ",
                bits, " bits, got ", packed.cols);
  HostMatrix<uint8_t> out(packed.rows, cols);
  const uint32_t mask = (1u << bits) - 1u;
  for (int64_t i = 0; i < packed.rows; ++i)
    for (int64_t j = 0; j < cols; ++j) {
      const int64_t bit = j * bits, w = bit / 32, off = bit % 32;
      uint32_t c = packed(i, w) >> off;
      if (off + bits > 32) c |= packed(i, w + 1) << (32 - off);
      out(i, j) = static_cast<uint8_t>(c & mask);
    }
  return out;
}

}  // namespace caldera::quant
