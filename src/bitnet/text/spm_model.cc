#include "bitnet/text/spm_model.h"

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include "bitnet/base/error.h"
#include "bitnet/base/utf8.h"

namespace bitnet {
namespace {

// A protobuf message: a sequence of (field number, wire type, value) records.
class ProtoReader {
 public:
  ProtoReader(std::string_view data, size_t base, std::string_view source, const char* message)
      : d_(data), base_(base), source_(source), message_(message) {}

  struct Field {
    uint32_t number;
    uint32_t wire;           // 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32
    uint64_t varint;         // wire 0
    uint32_t fixed32;        // wire 5
    std::string_view bytes;  // wire 2
    size_t offset;           // of the value, from the start of the file
  };

  // Next field, or false at the end of the message.
  bool next(Field& f) {
    if (pos_ >= d_.size()) return false;
    const uint64_t key = varint();
    f.number = static_cast<uint32_t>(key >> 3);
    f.wire = static_cast<uint32_t>(key & 7);
    f.offset = base_ + pos_;
    if (f.number == 0) bad("field number 0");
    switch (f.wire) {
      case 0:
        f.varint = varint();
        break;
      case 1:
        need(8);
        pos_ += 8;
        break;
      case 2: {
        const uint64_t n = varint();
        if (n > d_.size() - pos_)
          bad(fmt::format("a {}-byte field runs past the end ({} bytes left)", n, d_.size() - pos_));
        f.bytes = d_.substr(pos_, static_cast<size_t>(n));
        pos_ += static_cast<size_t>(n);
        break;
      }
      case 5:
        need(4);
        std::memcpy(&f.fixed32, d_.data() + pos_, 4);  // little-endian, as x86 and ARM Linux
        pos_ += 4;
        break;
      default:
        bad(fmt::format("wire type {} (groups are not used by sentencepiece_model.proto)", f.wire));
    }
    return true;
  }

  [[noreturn]] void bad(const std::string& what) const {
    fail("{}: malformed protobuf in {} at byte {}: {}", source_, message_, base_ + pos_, what);
  }

 private:
  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      need(1);
      const uint8_t b = static_cast<uint8_t>(d_[pos_++]);
      v |= static_cast<uint64_t>(b & 0x7F) << shift;
      if ((b & 0x80) == 0) return v;
    }
    bad("a varint longer than 10 bytes");
  }
  void need(size_t n) const {
    if (d_.size() - pos_ < n) bad("the message ends inside a field");
  }

  std::string_view d_;
  size_t base_, pos_ = 0;
  std::string_view source_;
  const char* message_;
};

size_t offset_in(std::string_view whole, std::string_view part) {
  return static_cast<size_t>(part.data() - whole.data());
}

}  // namespace

VocabData vocab_from_sentencepiece(std::string_view proto, std::string_view source) {
  VocabData v;
  v.model = "llama";
  int64_t model_type = 1;  // UNIGRAM unless the trainer spec says otherwise (the proto default)
  bool byte_fallback = false, whitespace_suffix = false, remove_extra_whitespaces = true;
  int64_t unk = 0, bos = 1, eos = 2, pad = -1;
  std::string normalizer = "nmt_nfkc";  // the proto default name
  bool has_charsmap = false;

  ProtoReader model(proto, 0, source, "ModelProto");
  ProtoReader::Field f;
  while (model.next(f)) {
    if (f.number == 1 && f.wire == 2) {  // SentencePiece
      ProtoReader piece(f.bytes, offset_in(proto, f.bytes), source, "SentencePiece");
      ProtoReader::Field g;
      std::string text;
      float score = 0.0f;
      int64_t type = 1;
      bool has_text = false;
      while (piece.next(g)) {
        if (g.number == 1 && g.wire == 2) {
          text.assign(g.bytes);
          has_text = true;
        } else if (g.number == 2 && g.wire == 5) {
          std::memcpy(&score, &g.fixed32, 4);
        } else if (g.number == 3 && g.wire == 0) {
          type = static_cast<int64_t>(g.varint);
        }
      }
      if (!has_text) piece.bad(fmt::format("piece #{} has no text", v.tokens.size()));
      if (type < 1 || type > 6)
        piece.bad(fmt::format("piece #{} '{}' has type {}, not 1-6", v.tokens.size(),
                              escape_for_message(text), type));
      v.tokens.push_back(std::move(text));
      v.scores.push_back(score);
      v.token_types.push_back(static_cast<int32_t>(type));
    } else if (f.number == 2 && f.wire == 2) {  // TrainerSpec
      ProtoReader spec(f.bytes, offset_in(proto, f.bytes), source, "TrainerSpec");
      ProtoReader::Field g;
      while (spec.next(g)) {
        if (g.wire != 0) continue;
        const auto as_int32 =
            static_cast<int64_t>(static_cast<int32_t>(g.varint));  // negative ids: 10-byte varints
        switch (g.number) {
          case 3:
            model_type = as_int32;
            break;
          case 24:
            whitespace_suffix = g.varint != 0;
            break;
          case 35:
            byte_fallback = g.varint != 0;
            break;
          case 40:
            unk = as_int32;
            break;
          case 41:
            bos = as_int32;
            break;
          case 42:
            eos = as_int32;
            break;
          case 43:
            pad = as_int32;
            break;
          default:
            break;
        }
      }
    } else if (f.number == 3 && f.wire == 2) {  // NormalizerSpec
      ProtoReader spec(f.bytes, offset_in(proto, f.bytes), source, "NormalizerSpec");
      ProtoReader::Field g;
      while (spec.next(g)) {
        if (g.number == 1 && g.wire == 2)
          normalizer.assign(g.bytes);
        else if (g.number == 2 && g.wire == 2)
          has_charsmap = !g.bytes.empty();
        else if (g.number == 3 && g.wire == 0)
          v.add_space_prefix = g.varint != 0;
        else if (g.number == 4 && g.wire == 0)
          remove_extra_whitespaces = g.varint != 0;
      }
    }
  }

  if (v.tokens.empty()) fail("{}: no pieces: not a SentencePiece model", source);
  static constexpr const char* kTypes[] = {"?", "Unigram", "BPE", "word", "char"};
  if (model_type != 2)
    fail(
        "{}: a SentencePiece {} model is not supported, only BPE (LLaMA-2's kind): its scores are not merge "
        "priorities",
        source, model_type >= 1 && model_type <= 4 ? kTypes[model_type] : "unknown-type");
  if (normalizer != "identity" && has_charsmap)
    fail("{}: SentencePiece normalizer '{}' (a precompiled character map) is not supported, only 'identity'",
         source, escape_for_message(normalizer));
  if (remove_extra_whitespaces)
    fail(
        "{}: remove_extra_whitespaces is set: SentencePiece would collapse runs of spaces, which is not "
        "supported",
        source);
  if (whitespace_suffix) fail("{}: treat_whitespace_as_suffix is not supported", source);
  if (byte_fallback) {
    bool have[256] = {};
    for (size_t i = 0; i < v.tokens.size(); ++i) {
      const std::string& t = v.tokens[i];
      if (v.token_types[i] == 6 && t.size() == 6 && t.starts_with("<0x") && t[5] == '>') {
        const unsigned long b = std::strtoul(t.substr(3, 2).c_str(), nullptr, 16);
        if (b < 256) have[b] = true;
      }
    }
    for (int b = 0; b < 256; ++b)
      if (!have[b]) fail("{}: byte_fallback is set but there is no byte piece <0x{:02X}>", source, b);
  }
  const auto id = [&](int64_t x, const char* what) -> int32_t {
    if (x < -1 || x >= static_cast<int64_t>(v.tokens.size()))
      fail("{}: {} = {} is outside the {} pieces", source, what, x, v.tokens.size());
    return static_cast<int32_t>(x);
  };
  v.unk_id = id(unk, "unk_id");
  v.bos_id = id(bos, "bos_id");
  v.eos_id = id(eos, "eos_id");
  v.pad_id = id(pad, "pad_id");
  v.add_bos = v.bos_id >= 0;
  return v;
}

VocabData load_sentencepiece_model(const std::filesystem::path& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail("cannot open '{}'", path.string());
  std::ostringstream ss;
  ss << f.rdbuf();
  if (f.bad()) fail("cannot read '{}'", path.string());
  return vocab_from_sentencepiece(ss.str(), path.string());
}

}  // namespace bitnet
