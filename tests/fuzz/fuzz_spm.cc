// Fuzz target: SentencePiece (llama.cpp's greedy merge by score + <0xNN> byte fallback) built from a
// fuzzed vocabulary, then encode/decode of fuzzed text.
//
// Input: [flags u8] [byte bitmap 32 B, with kDropBytes] [n_pieces u8] [pieces: marker u8 + length-prefixed
// text] [n_special u8] [special: type u8 + text] [scores: u32 bits per token, with kScores] [special
// ids 4 x u16] [token types u8 each, with kRandomTypes] then the text.
//
// Oracle: with a well-formed vocabulary (every byte token, plain types, no special tokens) and a text
// without U+2581 (nor a "<unk>" parsed as the special token), decode(encode(text)) == text.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <unordered_set>
#include <vector>

#include "bitnet/base/error.h"
#include "bitnet/base/utf8.h"
#include "bitnet/text/tokenizer.h"
#include "fuzz_input.h"

namespace {

enum Flags : uint8_t {
  kDropBytes = 1,     // some <0xNN> tokens missing
  kUnk = 2,           // an <unk> token (required when a byte token is missing)
  kSpecials = 4,
  kRandomTypes = 8,
  kNoTypes = 16,      // token_type absent: the tokenizer infers byte / control tokens itself
  kScores = 32,       // scores from the input (NaN and infinities included), else by length
  kSpacePrefix = 64,  // add_space_prefix
  kParseSpecial = 128,
};

constexpr std::string_view kSpace = "\xE2\x96\x81";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace bitnet;
  fuzz::Input in(data, size);
  const uint8_t flags = in.u8();

  VocabData v;
  v.model = "llama";
  std::unordered_set<std::string> have;
  auto add = [&](std::string text, TokenType t) {
    if (!have.insert(text).second) return false;
    v.tokens.push_back(std::move(text));
    v.token_types.push_back(static_cast<int32_t>(t));
    return true;
  };
  if (flags & kUnk) {
    add("<unk>", TokenType::kUnknown);
    v.unk_id = 0;
  }
  uint8_t present[32];
  for (uint8_t& b : present) b = flags & kDropBytes ? in.u8() : 0xff;
  for (int b = 0; b < 256; ++b) {
    if (!(present[b / 8] & (1 << (b % 8)))) continue;
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    add(name, TokenType::kByte);
  }
  add(std::string(kSpace), TokenType::kNormal);  // without it a space decodes as the bytes of U+2581
  const int n_pieces = in.u8() % 96;
  for (int k = 0; k < n_pieces; ++k) {
    const uint8_t marker = in.u8();
    std::string piece(in.bytes(12));
    if (marker & 1) piece.insert(0, kSpace);  // word-initial piece, as SentencePiece stores them
    if (marker & 2) piece += kSpace;
    if (!piece.empty()) add(std::move(piece), TokenType::kNormal);
  }
  if (flags & kSpecials) {
    const int n = in.u8() % 6;
    for (int k = 0; k < n; ++k) {
      const uint8_t t = in.u8();
      add(std::string(in.bytes(16)), t % 3 == 0   ? TokenType::kControl
                                     : t % 3 == 1 ? TokenType::kUserDefined
                                                  : TokenType::kUnknown);
    }
  }
  if (v.tokens.empty()) add("a", TokenType::kNormal);
  const auto n = static_cast<uint32_t>(v.tokens.size());

  v.scores.resize(n);
  for (uint32_t i = 0; i < n; ++i) {
    if (flags & kScores) {
      const uint32_t bits = in.u32();
      std::memcpy(&v.scores[i], &bits, 4);
    } else {
      v.scores[i] = static_cast<float>(v.tokens[i].size()) - static_cast<float>(i) * 1e-3f;
    }
  }
  for (int32_t* id : {&v.bos_id, &v.eos_id, &v.eot_id, &v.pad_id})
    *id = static_cast<int32_t>(in.u16() % (n + 1)) - 1;
  if (flags & kRandomTypes)
    for (int32_t& t : v.token_types) t = in.u8() % 8;  // 7 is invalid
  if (flags & kNoTypes) v.token_types.clear();
  v.add_space_prefix = flags & kSpacePrefix;
  v.add_bos = true;

  std::unique_ptr<Tokenizer> tok;
  try {
    tok = Tokenizer::create(v);
  } catch (const Error&) {
    return 0;
  }
  const std::string_view text = in.rest();
  std::vector<int32_t> ids;
  try {
    ids = tok->encode(text, false, flags & kParseSpecial);
    if (tok->bos_id() >= 0) (void)tok->encode(text.substr(0, 16), true, true);
  } catch (const Error&) {
    std::abort();  // nothing here may fail: BOS is only requested when it exists
  }
  for (int32_t id : ids)
    if (id < 0 || id >= tok->n_vocab()) std::abort();
  const std::string full = tok->decode(ids, true);
  (void)tok->decode(ids, false);

  TokenStreamDecoder stream(*tok, true);
  std::string streamed;
  for (int32_t id : ids) streamed += stream.feed(id);
  streamed += stream.flush();

  // The stream is always valid UTF-8, and equals the plain concatenation of token bytes when that is.
  std::string concat;
  for (int32_t id : ids) concat += tok->token_bytes(id, true);
  if (!utf8_valid(streamed)) std::abort();
  if (utf8_valid(concat) && streamed != concat) std::abort();

  // A "<unk>" written in the text and matched as the special token (kUnk with kParseSpecial) is followed,
  // like every special token, by SentencePiece's space prefix (llama.cpp does the same), so the text
  // does not come back byte for byte.
  const bool unk_in_text = (flags & kUnk) && (flags & kParseSpecial) && text.find("<unk>") != std::string_view::npos;
  const bool well_formed = !(flags & (kDropBytes | kSpecials | kRandomTypes | kNoTypes)) &&
                           text.find(kSpace) == std::string_view::npos && !unk_in_text;
  if (well_formed && full != text) std::abort();
  for (int32_t id = 0; id < tok->n_vocab(); ++id) {
    (void)tok->token_bytes(id, id & 1);
    (void)tok->is_eog(id);
  }
  return 0;
}
