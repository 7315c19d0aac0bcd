// Fuzz target: the real LLaMA-3 tokenizer (tokenizer.json from $BITNET_SHARED_DATA, loaded once) on
// fuzzed text: the 128k-token vocabulary, 280k merges and the PCRE2 pre-tokenizer regex.
//
// Input: [flags u8: bit0 parse_special, bit1 add_bos] then the text.
// Oracle: byte-level BPE is lossless, so decode(encode(text), render_special) == text (BOS aside).
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "bitnet/base/error.h"
#include "bitnet/base/utf8.h"
#include "bitnet/text/hf_tokenizer_json.h"
#include "bitnet/text/tokenizer.h"
#include "fuzz_input.h"

namespace {

std::unique_ptr<bitnet::Tokenizer> g_tok;
std::string g_skip;

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* env = std::getenv("BITNET_SHARED_DATA");
  const std::filesystem::path root = env && *env ? env : BITNET_DEFAULT_SHARED_DATA;
  const std::filesystem::path json = root / "tokenizer/llama3/tokenizer.json";
  if (!std::filesystem::exists(json)) {
    g_skip = json.string() + " not found (set BITNET_SHARED_DATA)";
    return 0;
  }
  g_tok = bitnet::Tokenizer::create(bitnet::load_hf_tokenizer_json(json));
  return 0;
}

extern "C" const char* bitnet_fuzz_skip_reason() { return g_tok ? nullptr : g_skip.c_str(); }

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (!g_tok) return 0;
  bitnet::fuzz::Input in(data, size);
  const uint8_t flags = in.u8();
  const std::string_view text = in.rest();
  const bool add_bos = flags & 2;
  const auto ids = g_tok->encode(text, add_bos, flags & 1);  // LLaMA-3 has a BOS: nothing may throw
  for (int32_t id : ids)
    if (id < 0 || id >= g_tok->n_vocab()) std::abort();
  const std::string back = g_tok->decode(std::span(ids).subspan(add_bos ? 1 : 0), true);
  if (back != text) std::abort();
  bitnet::TokenStreamDecoder stream(*g_tok);
  std::string streamed;
  for (int32_t id : ids) streamed += stream.feed(id);
  streamed += stream.flush();
  if (!bitnet::utf8_valid(streamed)) std::abort();
  return 0;
}
