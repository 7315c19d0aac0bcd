// Ternary weight codecs: bitnet.cpp's I2_S and ggml's TQ2_0 / TQ1_0, between int8 values {-1,0,+1} and
// file bytes. These are the reference encoders/decoders; kernels read the packed bytes directly.
//
// I2_S (BITNET_FORMATS.md §1.2-1.4): the row-major [M][K] matrix is cut into 128-element blocks of 32
// bytes. Element j of a block is in byte j%32, bits [7-2g:6-2g] with g = j/32 (MSB-first groups).
// Codes 0,1,2 = -1,0,+1; 3 is invalid. One float32 scale follows the n/4 code bytes, then 28 pad bytes.
// TQ2_0 (§2): 256-element blocks of 66 bytes {qs[64], fp16 d}; element h*128+k*32+m of the block is in
// qs[h*32+m] bits [2k+1:2k] (LSB-first groups). Same code mapping.
// TQ1_0 (§2): 256-element blocks of 54 bytes {qs[48], qh[4], fp16 d}; five trits per byte (qh: four),
// stored as ceil(v*256/243) of the base-3 number v with the first trit most significant.
#pragma once

#include <array>
#include <cstdint>

namespace bitnet {

constexpr uint64_t kI2sBlock = 128;     // elements per I2_S block
constexpr uint64_t kI2sBlockBytes = 32;
constexpr uint64_t kQK = 256;           // elements per TQ block
constexpr uint64_t kTq2BlockBytes = 66;
constexpr uint64_t kTq1BlockBytes = 54;

// Counts of decoded values: [0] = -1, [1] = 0, [2] = +1, [3] = invalid codes / non-canonical bytes.
using CodeHistogram = std::array<uint64_t, 4>;

// I2_S. n is a multiple of 128; dst/src hold n/4 + 32 bytes.
void i2s_encode(const int8_t* w, uint64_t n, float scale, uint8_t* dst);
void i2s_decode(const uint8_t* src, uint64_t n, int8_t* w);  // invalid code 3 decodes as +2
float i2s_scale(const uint8_t* src, uint64_t n);
void i2s_histogram(const uint8_t* src, uint64_t n, CodeHistogram& h);

// TQ2_0 / TQ1_0, one 256-element block at a time. d is the block's fp16 scale bits.
void tq2_encode_block(const int8_t* w, uint16_t d, uint8_t* dst);
void tq2_decode_block(const uint8_t* src, int8_t* w);  // invalid code 3 decodes as +2
void tq1_encode_block(const int8_t* w, uint16_t d, uint8_t* dst);
void tq1_decode_block(const uint8_t* src, int8_t* w);
uint16_t tq_block_scale(const uint8_t* block, uint64_t block_bytes);  // the fp16 bits of d
void tq2_histogram_block(const uint8_t* src, CodeHistogram& h);
void tq1_histogram_block(const uint8_t* src, CodeHistogram& h);

}  // namespace bitnet
