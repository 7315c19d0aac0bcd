#include "bitnet/format/ggml_types.h"

#include <array>
#include <cctype>

#include "bitnet/base/checked.h"

namespace bitnet {

namespace {

constexpr const char* kTlAdvice =
    "TL1/TL2 store weights in a kernel-tiled order tied to one bitnet.cpp build; re-create the file as "
    "I2_S (bitnet.cpp: llama-quantize --allow-requantize IN OUT I2_S 1) or convert the Hugging Face "
    "checkpoint with `bitnet convert`";
constexpr const char* kMxfp4Advice = "MXFP4 is not supported by bitnet";

// Geometry facts from ggml's type traits (ggml.c / ggml-common.h).
constexpr std::array kTypes = {
    TypeTraits{TensorType::F32, 0, "F32", 1, 4, false, true, nullptr},
    TypeTraits{TensorType::F16, 1, "F16", 1, 2, false, true, nullptr},
    TypeTraits{TensorType::Q4_0, 2, "Q4_0", 32, 18, false, true, nullptr},
    TypeTraits{TensorType::Q4_1, 3, "Q4_1", 32, 20, false, false, nullptr},
    TypeTraits{TensorType::Q5_0, 6, "Q5_0", 32, 22, false, false, nullptr},
    TypeTraits{TensorType::Q5_1, 7, "Q5_1", 32, 24, false, false, nullptr},
    TypeTraits{TensorType::Q8_0, 8, "Q8_0", 32, 34, false, true, nullptr},
    TypeTraits{TensorType::Q8_1, 9, "Q8_1", 32, 36, false, false, nullptr},
    TypeTraits{TensorType::Q2_K, 10, "Q2_K", 256, 84, false, false, nullptr},
    TypeTraits{TensorType::Q3_K, 11, "Q3_K", 256, 110, false, false, nullptr},
    TypeTraits{TensorType::Q4_K, 12, "Q4_K", 256, 144, false, false, nullptr},
    TypeTraits{TensorType::Q5_K, 13, "Q5_K", 256, 176, false, false, nullptr},
    TypeTraits{TensorType::Q6_K, 14, "Q6_K", 256, 210, false, true, nullptr},
    TypeTraits{TensorType::Q8_K, 15, "Q8_K", 256, 292, false, false, nullptr},
    TypeTraits{TensorType::IQ2_XXS, 16, "IQ2_XXS", 256, 66, false, false, nullptr},
    TypeTraits{TensorType::IQ2_XS, 17, "IQ2_XS", 256, 74, false, false, nullptr},
    TypeTraits{TensorType::IQ3_XXS, 18, "IQ3_XXS", 256, 98, false, false, nullptr},
    TypeTraits{TensorType::IQ1_S, 19, "IQ1_S", 256, 50, false, false, nullptr},
    TypeTraits{TensorType::IQ4_NL, 20, "IQ4_NL", 32, 18, false, false, nullptr},
    TypeTraits{TensorType::IQ3_S, 21, "IQ3_S", 256, 110, false, false, nullptr},
    TypeTraits{TensorType::IQ2_S, 22, "IQ2_S", 256, 82, false, false, nullptr},
    TypeTraits{TensorType::IQ4_XS, 23, "IQ4_XS", 256, 136, false, false, nullptr},
    TypeTraits{TensorType::I8, 24, "I8", 1, 1, false, false, nullptr},
    TypeTraits{TensorType::I16, 25, "I16", 1, 2, false, false, nullptr},
    TypeTraits{TensorType::I32, 26, "I32", 1, 4, false, false, nullptr},
    TypeTraits{TensorType::I64, 27, "I64", 1, 8, false, false, nullptr},
    TypeTraits{TensorType::F64, 28, "F64", 1, 8, false, false, nullptr},
    TypeTraits{TensorType::IQ1_M, 29, "IQ1_M", 256, 56, false, false, nullptr},
    TypeTraits{TensorType::BF16, 30, "BF16", 1, 2, false, true, nullptr},
    TypeTraits{TensorType::TQ1_0, 34, "TQ1_0", 256, 54, true, true, nullptr},
    TypeTraits{TensorType::TQ2_0, 35, "TQ2_0", 256, 66, true, true, nullptr},
    TypeTraits{TensorType::I2_S, 36, "I2_S", 128, 0, true, true, nullptr},
    TypeTraits{TensorType::TL1, 38, "TL1", 4, 0, true, false, kTlAdvice},
    TypeTraits{TensorType::TL2, 39, "TL2", 4, 0, true, false, kTlAdvice},
    TypeTraits{TensorType::MXFP4, 39, "MXFP4", 32, 17, false, false, kMxfp4Advice},
};

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  return true;
}

}  // namespace

const TypeTraits& type_traits(TensorType t) {
  for (const auto& row : kTypes)
    if (row.type == t) return row;
  return kTypes[0];  // unreachable for valid enum values
}

bool is_bitnet_cpp_arch(std::string_view arch) { return arch == "bitnet-b1.58" || arch == "bitnet-25"; }

std::optional<TensorType> resolve_type(uint32_t file_id, std::string_view arch) {
  const bool fork = is_bitnet_cpp_arch(arch);
  // 36 is I2_S in every architecture bitnet.cpp writes it for (its Falcon3 and Llama3-8B-1.58 files are
  // arch llama); mainline ggml retired the id (IQ4_NL_4_4 was a load-time repacking, never stored in files).
  if (file_id == 36) return TensorType::I2_S;
  if (file_id == 38) return fork ? std::optional(TensorType::TL1) : std::nullopt;
  if (file_id == 39) return fork ? TensorType::TL2 : TensorType::MXFP4;
  for (const auto& row : kTypes)
    if (row.file_id == file_id && row.type != TensorType::MXFP4) return row.type;
  return std::nullopt;
}

std::optional<TensorType> type_from_name(std::string_view name) {
  for (const auto& row : kTypes)
    if (iequals(row.name, name)) return row.type;
  return std::nullopt;
}

bool tensor_nbytes(TensorType t, uint64_t n, uint64_t* out) {
  const TypeTraits& tr = type_traits(t);
  if (tr.type == TensorType::I2_S || tr.type == TensorType::TL1) {
    if (n % tr.block_size != 0) return false;
    return checked_add(n / 4, 32, out);
  }
  if (tr.type == TensorType::TL2) return false;  // size depends on the shape; never computed (refused)
  if (n % tr.block_size != 0) return false;
  return checked_mul(n / tr.block_size, tr.block_bytes, out);
}

bool row_nbytes(TensorType t, uint64_t n, uint64_t* out) {
  const TypeTraits& tr = type_traits(t);
  if (tr.block_bytes == 0 || n % tr.block_size != 0) return false;
  return checked_mul(n / tr.block_size, tr.block_bytes, out);
}

}  // namespace bitnet
