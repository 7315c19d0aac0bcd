// Fuzz target: byte-level BPE built from a fuzzed vocabulary, then encode/decode of fuzzed text.
//
// Input: [flags u8] [byte bitmap 32 B, when flag kDropBytes] [n_merges u8] [merge picks: 2 x u16 each,
// or length-prefixed strings with kRawMerges] [n_special u8] [special: type u8 + length-prefixed text]
// [special ids: 4 x u16] [token types u8 each, with kRandomTypes] then the text to encode.
//
// Oracle beyond "no crash": when the vocabulary is well formed (every byte has a token, merges are
// derived from the vocabulary, types are plain), decode(encode(text), render_special) == text; the same
// for encode_marked, which equals encode when its markup covers all of the text or none of it.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <unordered_set>
#include <vector>

#include "bitnet/base/error.h"
#include "bitnet/base/utf8.h"
#include "bitnet/text/byte_unicode.h"
#include "bitnet/text/tokenizer.h"
#include "fuzz_input.h"

namespace {

enum Flags : uint8_t {
  kSmaug = 1,         // merges always applied (else LLaMA-3: whole-piece lookup first)
  kRawMerges = 2,     // merge strings straight from the input (mostly invalid)
  kDropBytes = 4,     // some bytes have no one-character token
  kSpecials = 8,      // control / user-defined / unknown tokens with fuzzed texts
  kRandomTypes = 16,  // token types from the input (including invalid ones)
  kParseSpecial = 32,
  kAddBos = 64,
  kOddPre = 128,      // an unsupported tokenizer.ggml.pre
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace bitnet;
  fuzz::Input in(data, size);
  const uint8_t flags = in.u8();

  VocabData v;
  v.model = "gpt2";
  v.pre = flags & kOddPre ? std::string(in.bytes(8)) : flags & kSmaug ? "smaug-bpe" : "llama-bpe";
  std::unordered_set<std::string> have;
  auto add = [&](std::string text) {
    if (!have.insert(text).second) return false;
    v.tokens.push_back(std::move(text));
    return true;
  };

  uint8_t present[32];
  for (uint8_t& b : present) b = flags & kDropBytes ? in.u8() : 0xff;
  for (int b = 0; b < 256; ++b) {
    if (!(present[b / 8] & (1 << (b % 8)))) continue;
    std::string one;
    const char c = static_cast<char>(b);
    append_byte_level(std::string_view(&c, 1), one);
    add(std::move(one));
  }
  if (v.tokens.empty()) add("!");

  const int n_merges = in.u8() % 64;
  for (int m = 0; m < n_merges; ++m) {
    if (flags & kRawMerges) {
      v.merges.emplace_back(in.bytes(24));
      continue;
    }
    const std::string left = v.tokens[in.u16() % v.tokens.size()];
    const std::string right = v.tokens[in.u16() % v.tokens.size()];
    add(left + right);
    v.merges.push_back(left + " " + right);
  }

  if (flags & kSpecials) {
    const int n = in.u8() % 6;
    for (int k = 0; k < n; ++k) {
      const uint8_t t = in.u8();
      if (add(std::string(in.bytes(16)))) {
        v.token_types.resize(v.tokens.size(), static_cast<int32_t>(TokenType::kNormal));
        v.token_types.back() = static_cast<int32_t>(t % 3 == 0   ? TokenType::kControl
                                                    : t % 3 == 1 ? TokenType::kUserDefined
                                                                 : TokenType::kUnknown);
      }
    }
  }
  const auto n = static_cast<uint32_t>(v.tokens.size());
  v.token_types.resize(n, static_cast<int32_t>(TokenType::kNormal));
  for (int32_t* id : {&v.bos_id, &v.eos_id, &v.eot_id, &v.unk_id})
    *id = static_cast<int32_t>(in.u16() % (n + 1)) - 1;  // -1 or a valid id
  if (flags & kRandomTypes) {
    for (int32_t& t : v.token_types) {  // 7 and negatives are invalid
      t = in.u8() % 8;
      if (in.u8() == 0xff) t -= 8;
    }
  }
  v.add_bos = flags & kAddBos;

  std::unique_ptr<Tokenizer> tok;
  try {
    tok = Tokenizer::create(v);
  } catch (const Error&) {
    return 0;
  }
  const std::string_view text = in.rest();
  const bool parse_special = flags & kParseSpecial;
  std::vector<int32_t> ids;
  try {
    ids = tok->encode(text, flags & kAddBos, parse_special);
  } catch (const Error&) {
    return 0;  // BOS requested without one
  }
  for (int32_t id : ids)
    if (id < 0 || id >= tok->n_vocab()) std::abort();  // encode must only produce valid ids
  const std::string plain = tok->decode(ids);
  const std::string full = tok->decode(ids, true);

  TokenStreamDecoder stream(*tok, true);
  std::string streamed;
  for (int32_t id : ids) streamed += stream.feed(id);
  streamed += stream.flush();

  // The stream is always valid UTF-8, and equals the plain concatenation of token bytes when that is.
  std::string concat;
  for (int32_t id : ids) concat += tok->token_bytes(id, true);
  if (!utf8_valid(streamed)) std::abort();
  if (utf8_valid(concat) && streamed != concat) std::abort();

  const bool well_formed = !(flags & (kRawMerges | kDropBytes | kRandomTypes | kOddPre | kAddBos));
  if (well_formed && full != text) std::abort();

  // encode_marked: markup over all of the text is encode with parse_special, none is encode without, and
  // any range (here the middle third) gives valid ids that decode back to the text.
  const std::vector<Tokenizer::Range> all = {{0, text.size()}}, none = {}, middle = {{text.size() / 3, 2 * text.size() / 3}};
  if (tok->encode_marked(text, parse_special ? all : none, flags & kAddBos) != ids) std::abort();
  const std::vector<int32_t> marked = tok->encode_marked(text, middle, flags & kAddBos);
  for (int32_t id : marked)
    if (id < 0 || id >= tok->n_vocab()) std::abort();
  if (well_formed && tok->decode(marked, true) != text) std::abort();
  for (int32_t id = 0; id < tok->n_vocab(); ++id) {
    (void)tok->token_bytes(id, id & 1);
    (void)tok->is_eog(id);
    if (tok->find_token(tok->vocab_text(id)) < 0) std::abort();
  }
  return 0;
}
