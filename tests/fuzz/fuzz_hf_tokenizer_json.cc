// Fuzz target: a Hugging Face tokenizer.json (+ tokenizer_config.json) from a stranger, read into a
// vocabulary and built into a tokenizer that encodes a little text.
//
// Input: the tokenizer.json text, optionally followed by "\n\x01\n" and a tokenizer_config.json text.
// Only bitnet::Error may come out (JSON errors are turned into it by the loader).
#include <cstdint>
#include <string>
#include <string_view>

#include "bitnet/base/error.h"
#include "bitnet/text/hf_tokenizer_json.h"
#include "bitnet/text/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace bitnet;
  const std::string_view all(reinterpret_cast<const char*>(data), size);
  constexpr std::string_view kSep = "\n\x01\n";
  const size_t cut = all.find(kSep);
  const std::string_view json = all.substr(0, cut);
  const std::string_view config = cut == std::string_view::npos ? std::string_view() : all.substr(cut + kSep.size());
  try {
    const VocabData v = vocab_from_hf_tokenizer_json(json, config, "fuzz/tokenizer.json");
    const auto tok = Tokenizer::create(v);
    const auto ids = tok->encode("Hello world, <|eot_id|> 123 \xf0\x9f\x98\x80", tok->add_bos_default(), true);
    (void)tok->decode(ids, true);
  } catch (const Error&) {
  }
  return 0;
}
