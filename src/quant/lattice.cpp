// Lattice quantization wrappers, QUANT_FACTOR (§2.4) and index packing (§5.5).
#include "quant/lattice.h"

#include <cmath>

#include "core/error.h"

namespace caldera::quant {

using linalg::Backend;
using linalg::Matrix;

void lattice_quantize(Backend& be, MatrixView<const float> x, LatticeCodebook codebook, float residual_scale,
                      MatrixView<float> xhat, MatrixView<uint32_t> codes) {
  be.quant().lattice_quantize(x, codebook, residual_scale, xhat, codes);
}

double rms(Backend& be, MatrixView<const float> x) {
  if (x.empty()) return 0.0;
  return std::sqrt(be.sum_squares(x) / static_cast<double>(x.size()));
}

FactorQuant quant_factor(Backend& be, MatrixView<const float> x, LatticeCodebook codebook) {
  CALDERA_CHECK(x.cols % 8 == 0, "quant_factor: columns must be a multiple of 8, got ", x.rows, "x", x.cols);
  FactorQuant out;
  out.scale = static_cast<float>(rms(be, x));
  out.xhat = be.clone(x, "quant_factor xhat");
  if (out.scale > 0.0f) be.scale(out.xhat.view(), 1.0f / out.scale);
  out.codes = be.make<uint32_t>(x.rows, x.cols / 8, "quant_factor codes");
  be.quant().lattice_quantize(out.xhat.cview(), codebook, lattice_default_residual_scale(codebook), out.xhat.view(),
                              out.codes.view());
  be.scale(out.xhat.view(), out.scale);
  return out;
}

namespace {

void check_pack_shape(int64_t rows, int64_t cols, const char* op) {
  CALDERA_CHECK(rows % 16 == 0 && cols % 64 == 0 && rows > 0 && cols > 0, op,
                ": E8P packing needs rows % 16 == 0 and cols % 64 == 0 (spec §5.5), got ", rows, "x", cols);
}

/// §5.5 for one matrix of 16-bit codes: out is rows × cols/32 int64.
void pack_e8p(MatrixView<const uint32_t> codes, int shift, MatrixView<int64_t> out) {
  const int64_t rows = codes.rows, cols = codes.cols * 8;
  const int64_t wcols = cols / 16;  // words per word-row
  auto code = [&](int64_t r, int64_t b) { return (codes(r, b) >> shift) & 0xFFFFu; };
  for (int64_t a = 0; a < rows / 2; ++a)
    for (int64_t b = 0; b < wcols; ++b) {
      const uint32_t c[4] = {code(2 * a, 2 * b), code(2 * a + 1, 2 * b), code(2 * a, 2 * b + 1),
                             code(2 * a + 1, 2 * b + 1)};
      uint32_t abs32 = 0, sign32 = 0;
      for (int q = 0; q < 4; ++q) {
        abs32 |= (c[q] >> 8) << (8 * q);
        for (int j = 0; j < 8; ++j) sign32 |= ((c[q] >> j) & 1u) << (4 * j + q);
      }
      const uint64_t word = (static_cast<uint64_t>(sign32) << 32) | abs32;
      // Tile (A, B) of 8 word-rows × 4 word-cols, stored (rows/16, cols/64, 8, 4).
      const int64_t ta = a / 8, r8 = a % 8, tb = b / 4, c4 = b % 4;
      const int64_t flat = ((ta * (cols / 64) + tb) * 8 + r8) * 4 + c4;
      out.data[(flat / out.cols) * out.ld + flat % out.cols] = static_cast<int64_t>(word);
    }
}

void unpack_e8p(MatrixView<const int64_t> in, int shift, MatrixView<uint32_t> codes) {
  const int64_t rows = codes.rows, cols = codes.cols * 8;
  const int64_t wcols = cols / 16;
  for (int64_t a = 0; a < rows / 2; ++a)
    for (int64_t b = 0; b < wcols; ++b) {
      const int64_t ta = a / 8, r8 = a % 8, tb = b / 4, c4 = b % 4;
      const int64_t flat = ((ta * (cols / 64) + tb) * 8 + r8) * 4 + c4;
      const auto word = static_cast<uint64_t>(in.data[(flat / in.cols) * in.ld + flat % in.cols]);
      const auto abs32 = static_cast<uint32_t>(word), sign32 = static_cast<uint32_t>(word >> 32);
      const int64_t rr[4] = {2 * a, 2 * a + 1, 2 * a, 2 * a + 1}, bb[4] = {2 * b, 2 * b, 2 * b + 1, 2 * b + 1};
      for (int q = 0; q < 4; ++q) {
        uint32_t c = ((abs32 >> (8 * q)) & 0xFFu) << 8;
        for (int j = 0; j < 8; ++j) c |= ((sign32 >> (4 * j + q)) & 1u) << j;
        codes(rr[q], bb[q]) |= c << shift;
      }
    }
}

}  // namespace

HostMatrix<int64_t> pack_lattice_codes(MatrixView<const uint32_t> codes, LatticeCodebook codebook) {
  const int64_t rows = codes.rows, cols = codes.cols * 8;
  check_pack_shape(rows, cols, "pack_lattice_codes");
  const uint32_t limit = codebook == LatticeCodebook::kE8P12 ? 0xFFFFu : 0xFFFFFFFFu;
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t b = 0; b < codes.cols; ++b) {
      const uint32_t c = codes(i, b);
      CALDERA_CHECK(c <= limit && (codebook != LatticeCodebook::kE8P12RVQ3B || (c & 0xFF00u) == 0),
                    "pack_lattice_codes: code ", c, " at (", i, ", ", b, ") does not fit the codebook's layout");
    }
  const int64_t e8 = cols / 32;
  switch (codebook) {
    case LatticeCodebook::kE8P12: {
      HostMatrix<int64_t> out(rows, e8);
      pack_e8p(codes, 0, out.view());
      return out;
    }
    case LatticeCodebook::kE8P12RVQ4B: {
      HostMatrix<int64_t> out(rows, 2 * e8);
      pack_e8p(codes, 16, out.view().cols_range(0, e8));
      pack_e8p(codes, 0, out.view().cols_range(e8, e8));
      return out;
    }
    case LatticeCodebook::kE8P12RVQ3B: {
      HostMatrix<int64_t> out(rows, e8 + cols / 64);
      pack_e8p(codes, 16, out.view().cols_range(0, e8));
      // E81B part: the codes of blocks 8t..8t+7 of a row in one int64, block 8t+q in bits [8q, 8q+8).
      for (int64_t i = 0; i < rows; ++i)
        for (int64_t t = 0; t < cols / 64; ++t) {
          uint64_t word = 0;
          for (int q = 0; q < 8; ++q) word |= static_cast<uint64_t>(codes(i, 8 * t + q) & 0xFFu) << (8 * q);
          out(i, e8 + t) = static_cast<int64_t>(word);
        }
      return out;
    }
  }
  raise<Error>("pack_lattice_codes: unknown codebook");
}

HostMatrix<uint32_t> unpack_lattice_codes(MatrixView<const int64_t> packed, LatticeCodebook codebook, int64_t cols) {
  const int64_t rows = packed.rows;
  check_pack_shape(rows, cols, "unpack_lattice_codes");
  const int64_t e8 = cols / 32;
  const int64_t expect = codebook == LatticeCodebook::kE8P12 ? e8
                         : codebook == LatticeCodebook::kE8P12RVQ4B ? 2 * e8
                                                                    : e8 + cols / 64;
  CALDERA_CHECK(packed.cols == expect, "unpack_lattice_codes: ", rows, "x", expect, " packed words expected for ",
                cols, " columns, got ", packed.rows, "x", packed.cols);
  HostMatrix<uint32_t> codes(rows, cols / 8);
  switch (codebook) {
    case LatticeCodebook::kE8P12: unpack_e8p(packed, 0, codes.view()); break;
    case LatticeCodebook::kE8P12RVQ4B:
      unpack_e8p(packed.cols_range(0, e8), 16, codes.view());
      unpack_e8p(packed.cols_range(e8, e8), 0, codes.view());
      break;
    case LatticeCodebook::kE8P12RVQ3B:
      unpack_e8p(packed.cols_range(0, e8), 16, codes.view());
      for (int64_t i = 0; i < rows; ++i)
        for (int64_t t = 0; t < cols / 64; ++t) {
          const auto word = static_cast<uint64_t>(packed(i, e8 + t));
          for (int q = 0; q < 8; ++q) codes(i, 8 * t + q) |= static_cast<uint32_t>((word >> (8 * q)) & 0xFFu);
        }
      break;
  }
  return codes;
}

}  // namespace caldera::quant
