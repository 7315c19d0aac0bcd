// The tensor type table: ggml type ids as they appear in GGUF files, with block geometry.
//
// Id 36 is ambiguous between engines: bitnet.cpp's fork stores I2_S there (2-bit ternary codes plus one
// float32 scale per tensor), while mainline llama.cpp once used 36 for IQ4_NL_4_4 and now leaves it
// unused. Likewise 38/39 are TL1/TL2 in bitnet.cpp and 39 is MXFP4 in mainline. The reader resolves the
// id with the file's architecture (resolve_type), so the table has one row per meaning.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace bitnet {

enum class TensorType : uint32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
  Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
  IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19, IQ4_NL = 20, IQ3_S = 21, IQ2_S = 22, IQ4_XS = 23,
  I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, IQ1_M = 29, BF16 = 30,
  TQ1_0 = 34, TQ2_0 = 35,
  I2_S = 36,   // bitnet.cpp only (BitNet architectures)
  TL1 = 38,    // bitnet.cpp only: ARM LUT layout, refused
  TL2 = 39,    // bitnet.cpp only: x86 LUT layout, refused
  MXFP4 = 1039,  // mainline id 39; internal number to keep it distinct from TL2
};

struct TypeTraits {
  TensorType type;
  uint32_t file_id;      // id written in GGUF files
  const char* name;
  uint32_t block_size;   // elements per block (1 for plain types)
  uint32_t block_bytes;  // bytes per block; I2_S: 0 (size is per tensor, see tensor_nbytes)
  bool ternary;          // holds only -1/0/+1 times scale(s)
  bool computable;       // the engine can dequantize it
  const char* refusal;   // non-null: readable but refused, with this advice
};

// Row for a resolved type. Never null for a TensorType value.
const TypeTraits& type_traits(TensorType t);

// True when `arch` is one of bitnet.cpp's architectures, where id 36 means I2_S and 38/39 mean TL1/TL2.
bool is_bitnet_cpp_arch(std::string_view arch);

// Map a file id to a type for a file of architecture `arch`. nullopt: unknown id.
std::optional<TensorType> resolve_type(uint32_t file_id, std::string_view arch);

// Type by name ("i2_s", "TQ2_0", ...), case-insensitive.
std::optional<TensorType> type_from_name(std::string_view name);

// Bytes of a tensor of n_elements; false when n_elements does not fit the block size or overflows.
// I2_S: n/4 packed bytes + 32 (float32 scale then 28 bytes of padding), n a multiple of 128 (the
// 128-element/32-byte block of bitnet.cpp's layout).
bool tensor_nbytes(TensorType t, uint64_t n_elements, uint64_t* out);

// Bytes of one row of `n` elements for row-blocked types (not I2_S, whose scale is per tensor).
bool row_nbytes(TensorType t, uint64_t n, uint64_t* out);

}  // namespace bitnet
